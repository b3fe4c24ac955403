// Tenant isolation, played by the attacker against the real kube-apiserver and the real operator:
// namespace tn-alpha (user alice) owns a Pseudowire on an L2TPTunnel an admin shared with tn-alpha
// only; namespace tn-beta (user bob, with the rights a tenant usually gets in their own namespace)
// tries every way onto that wire. The CNI side runs the real shim against an agent (the dev agent in
// a network namespace playing node tn-n1) that serves exactly what the operator rendered into the
// node's L2TPNodeState. Each attempt is printed with its outcome; each fails with a clear message and
// nothing of alice's (tunnel, pseudowire, node states, NAD, node links, her pod) changes.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { API_VERSION, type L2TPNodeState, type L2TPTunnel, type Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, KubeClient } from '../../lib/kube/client.js';
import type { RunningOperator } from '../../operator/operator.js';
import { Agent, CniRig, buildShim, cniError, type PseudowireEntry } from '../harness/cnitool.js';
import { Lab, ipIn, requireRoot } from '../harness/netns.js';
import {
  agentReport,
  createNode,
  type Env,
  eventually,
  nodeStatePath,
  operator,
  pseudowirePath,
  setupEnv,
  tunnelPath,
} from './operator-env.js';

const REPO = join(import.meta.dirname, '../../..');
const ALPHA = 'tn-alpha';
const BETA = 'tn-beta';
const [N1, N2] = ['tn-n1', 'tn-n2'];
const NODE_NETNS = 'tn-adv-n1';
const nadPath = (ns: string, n?: string) =>
  `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions${n ? `/${n}` : ''}`;
const ready = (p: Pseudowire) => p.status?.conditions?.find((c) => c.type === 'Ready');

/** What a tenant gets in its own namespace, and read access to the cluster's tunnels. */
const tenantRbac = (user: string, ns: string) => [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `tn-tenant-${user}`, namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tn-tenant' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: `tn-tunnel-reader-${user}` },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tn-tunnel-reader' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  },
];
const clusterRoles = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'tn-tenant' },
    rules: [
      { apiGroups: ['l2tp.kube-l2tp.io'], resources: ['pseudowires'], verbs: ['*'] },
      { apiGroups: ['k8s.cni.cncf.io'], resources: ['network-attachment-definitions'], verbs: ['*'] },
      { apiGroups: [''], resources: ['secrets', 'pods', 'events'], verbs: ['*'] },
    ],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'tn-tunnel-reader' },
    rules: [
      { apiGroups: ['l2tp.kube-l2tp.io'], resources: ['l2tptunnels'], verbs: ['get', 'list', 'watch'] },
    ],
  },
];

describe("tenant isolation: namespace tn-beta tries every way onto tn-alpha's wire", () => {
  const lab = new Lab();
  let env: Env;
  let op: RunningOperator | undefined;
  let alice: KubeClient;
  let bob: KubeClient;
  let rig: CniRig;
  let agent: Agent;
  let alicePod = '';
  let nadConfig: Record<string, unknown> = {};
  /** What the node's agent serves for alice's wire (from the node state the operator rendered). */
  let entry: PseudowireEntry;

  const attempt = (who: string, what: string, outcome: string) =>
    console.log(`  attempt [${who}] ${what}\n    -> ${outcome}`);

  /** Everything of alice's that no attempt may change. */
  const snapshot = async () => {
    const t = await env.admin.get<L2TPTunnel>(tunnelPath('tn-core'));
    const p = await env.admin.get<Pseudowire>(pseudowirePath(ALPHA, 'wire'));
    const states = await Promise.all([N1, N2].map((n) => env.admin.get<L2TPNodeState>(nodeStatePath(n))));
    const nad = await env.admin.get<{ spec: unknown }>(nadPath(ALPHA, 'wire'));
    return JSON.stringify({
      tunnel: { spec: t.spec, status: t.status, rv: t.metadata.resourceVersion },
      pw: { spec: p.spec, status: p.status, rv: p.metadata.resourceVersion },
      nodeStates: states.map((s) => ({ spec: s.spec, rv: s.metadata.resourceVersion })),
      nad: nad.spec,
      nodeLinks: await linkFacts(NODE_NETNS),
      podLinks: alicePod ? await linkFacts(alicePod) : [],
    });
  };
  /** The links of a netns as far as an attacker could change them (not carrier, DAD or link-local). */
  const linkFacts = async (netns: string) =>
    (
      JSON.parse(await ipIn(netns, '-j', 'addr', 'show')) as {
        ifname: string;
        master?: string;
        mtu: number;
        address?: string;
        addr_info: { local: string; prefixlen: number }[];
      }[]
    ).map((l) => ({
      ifname: l.ifname,
      master: l.master,
      mtu: l.mtu,
      mac: l.address,
      // the kernel adds an IPv6 link-local address on its own, a moment after the link comes up
      addrs: l.addr_info.filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`),
    }));
  let baseline = '';
  const assertNothingChanged = async (what: string) =>
    assert.equal(await snapshot(), baseline, `${what}: alice's objects, node links or pod changed`);

  /** A CNI command through the real shim, as the runtime runs it for pod `id` of `podNs`. */
  const cni = (command: string, podNs: string | undefined, id: string, netns: string, config: object) =>
    rig.shim(
      {
        CNI_COMMAND: command,
        CNI_CONTAINERID: id,
        CNI_NETNS: `/run/netns/${netns}`,
        CNI_IFNAME: 'net1',
        CNI_PATH: rig.bin,
        ...(podNs ? { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNs};K8S_POD_NAME=${id}` } : {}),
      },
      { name: 'tn-net', ...config },
    );
  /** An ADD for a new pod (its own netns). */
  const cniAdd = async (podNs: string | undefined, config: Record<string, unknown>, id: string) => {
    const netns = await lab.netns(`tn-adv-${id}`);
    return { r: await cni('ADD', podNs, id, netns, config), netns };
  };
  const podLinkNames = async (netns: string) =>
    (await ipIn(netns, '-o', 'link', 'show'))
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(': ')[1]!.split('@')[0]);

  before(async () => {
    requireRoot();
    await buildShim();
    env = await setupEnv();
    await createNode(env.admin, N1, '10.251.0.1');
    await createNode(env.admin, N2, '10.251.0.2');
    for (const ns of [ALPHA, BETA]) await env.cp.kubectl(['create', 'namespace', ns]);
    await env.cp.kubectl(['apply', '-f', '-'], {
      input: [...clusterRoles, ...tenantRbac('alice', ALPHA), ...tenantRbac('bob', BETA)]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    });
    alice = KubeClient.fromFile(await env.cp.kubeconfigFor({ user: 'alice' }));
    bob = KubeClient.fromFile(await env.cp.kubeconfigFor({ user: 'bob' }));
    await env.admin.create(tunnelPath(), {
      apiVersion: API_VERSION,
      kind: 'L2TPTunnel',
      metadata: { name: 'tn-core' },
      spec: { local: { node: N1 }, peer: { node: N2 }, allowedNamespaces: [ALPHA] },
    });
    await alice.create(`/api/v1/namespaces/${ALPHA}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cookies' },
      stringData: { cookie: '0a0b0c0d0e0f1011', peer: '1213141516171819' },
    });
    await alice.create(pseudowirePath(ALPHA), {
      apiVersion: API_VERSION,
      kind: 'Pseudowire',
      metadata: { name: 'wire' },
      spec: {
        tunnelRef: { name: 'tn-core' },
        cookie: { secretRef: { name: 'cookies', key: 'cookie' } },
        peerCookie: { secretRef: { name: 'cookies', key: 'peer' } },
        attachment: { mode: 'Bridge' },
        ipam: { type: 'static' },
      },
    });
    // Multus's NetworkAttachmentDefinition CRD: the operator generates NADs when it exists
    await env.cp.kubectl(['apply', '-f', join(REPO, 'test/fixtures/multus-nad-crd.json')]);
    await env.cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    op = await operator(env);
    const nad = await eventually("the NAD of alice's wire", () =>
      env.admin.get<{ spec: { config: string } }>(nadPath(ALPHA, 'wire')).catch(() => undefined),
    );
    nadConfig = JSON.parse(nad.spec.config) as Record<string, unknown>;
    await eventually("alice's wire rendered on both nodes", async () => {
      const s = await Promise.all([N1, N2].map((n) => env.admin.get<L2TPNodeState>(nodeStatePath(n))));
      return s.every((x) => x.spec?.tunnels[0]?.sessions.length === 1);
    });
    for (const n of [N1, N2]) await agentReport(env, n);
    await eventually('tunnel tn-core Ready', async () => {
      const t = await env.admin.get<L2TPTunnel>(tunnelPath('tn-core'));
      return t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    });
    await eventually("alice's wire Ready", async () =>
      ready(await env.admin.get<Pseudowire>(pseudowirePath(ALPHA, 'wire')))?.status === 'True'
        ? true
        : undefined,
    );

    // node tn-n1: the session's device as a backend makes it, and an agent serving the node state
    const ns1 = await env.admin.get<L2TPNodeState>(nodeStatePath(N1));
    const s = ns1.spec!.tunnels[0]!.sessions[0]!;
    await lab.netns(NODE_NETNS);
    await ipIn(NODE_NETNS, 'tuntap', 'add', 'dev', s.ifname, 'mode', 'tap');
    await ipIn(NODE_NETNS, 'link', 'set', s.ifname, 'mtu', '1446', 'up');
    rig = await CniRig.create();
    lab.onCleanup(() => rig.cleanup());
    entry = {
      ifname: s.ifname,
      mtu: 1446,
      tunnelId: ns1.spec!.tunnels[0]!.tunnelId,
      sessionId: s.sessionId,
      up: true,
      mode: s.mode,
      ...(s.allowedNamespaces ? { allowedNamespaces: s.allowedNamespaces } : {}),
    };
    agent = await rig.agent(NODE_NETNS, true, { [`${ALPHA}/wire`]: entry });
    nadConfig.agentSocket = agent.socket; // what Multus hands the plugin, pointed at this node's agent

    // alice's own pod attaches: the legitimate path works
    const { r, netns } = await cniAdd(
      ALPHA,
      { ...nadConfig, ipam: { type: 'static', addresses: [{ address: '10.251.1.1/24' }] } },
      'tnalice1',
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    alicePod = netns;
    console.log(`  alice's pod ${ALPHA}/tnalice1 attached: net1 on ${s.ifname} (session ${s.sessionId})`);
    baseline = await snapshot();
  });

  after(async () => {
    await op?.stop();
    alice?.close();
    bob?.close();
    await lab.cleanup();
    await env?.stop();
  });

  it('item 3: a Pseudowire of tn-beta on the tunnel shared with tn-alpha only is refused, with a status and an event', async () => {
    const alicesIds = (await env.admin.get<Pseudowire>(pseudowirePath(ALPHA, 'wire'))).status!;
    for (const [name, extra, what] of [
      ['tap', {}, 'a Pseudowire of tn-beta on tunnel tn-core'],
      [
        'clash',
        { sessionID: alicesIds.sessionID, peerSessionID: alicesIds.peerSessionID },
        `the same, claiming alice's session IDs ${alicesIds.sessionID}/${alicesIds.peerSessionID}`,
      ],
    ] as const) {
      await bob.create(pseudowirePath(BETA), {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: { name },
        spec: { tunnelRef: { name: 'tn-core' }, ...extra },
      });
      const p = await eventually(`${name} refused`, async () => {
        const x = await bob.get<Pseudowire>(pseudowirePath(BETA, name));
        return ready(x)?.reason === 'TunnelNotAllowed' ? x : undefined;
      });
      const c = ready(p)!;
      attempt('bob', what, `Ready=${c.status} ${c.reason}: ${c.message}`);
      assert.equal(c.status, 'False');
      assert.equal(
        c.message,
        `L2TPTunnel tn-core is not shared with namespace ${BETA}: its spec.allowedNamespaces must list "${BETA}" (or "*"); the tunnel's owner (a cluster admin) sets it`,
      );
      assert.equal(p.status?.sessionID, undefined, 'no session ID claimed');
      const events = await bob.get<{ items: { reason: string; involvedObject: { name: string } }[] }>(
        `/api/v1/namespaces/${BETA}/events`,
      );
      assert.ok(
        events.items.some((e) => e.reason === 'TunnelNotAllowed' && e.involvedObject.name === name),
        'a Warning event on the refused Pseudowire',
      );
      await env.admin
        .get(nadPath(BETA, name))
        .then(() => assert.fail('a refused Pseudowire got a NAD'))
        .catch((e: unknown) => assert.equal((e as ApiError).status, 404));
      await assertNothingChanged(what);
    }
  });

  it('item 3: bob cannot widen the tunnel or make his own', async () => {
    const patch = await bob.patch(tunnelPath('tn-core'), { spec: { allowedNamespaces: [ALPHA, BETA] } }).then(
      () => 'allowed',
      (e: unknown) => `HTTP ${(e as ApiError).status}`,
    );
    attempt('bob', 'patch tunnel tn-core: spec.allowedNamespaces += tn-beta', patch);
    assert.equal(patch, 'HTTP 403');
    const create = await bob
      .create(tunnelPath(), {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 'bobs' },
        spec: { local: { node: N1 }, peer: { node: N2 }, allowedNamespaces: [BETA] },
      })
      .then(
        () => 'allowed',
        (e: unknown) => `HTTP ${(e as ApiError).status}`,
      );
    attempt('bob', 'create his own L2TPTunnel between the same nodes', create);
    assert.equal(create, 'HTTP 403');
    await assertNothingChanged('tunnel writes');
  });

  it("item 1: a pod of tn-beta whose network config names tn-alpha's wire gets no interface", async () => {
    // bob may write any NAD in his namespace: a copy of alice's, naming her wire
    await bob.create(nadPath(BETA), {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: 'borrowed' },
      spec: { config: JSON.stringify(nadConfig) },
    });
    const cases: [string, string | undefined, Record<string, unknown>, number, RegExp][] = [
      [
        'NAD in tn-beta naming tn-alpha/wire, pod of tn-beta',
        BETA,
        nadConfig,
        109,
        /^pseudowire tn-alpha\/wire is not shared with namespace tn-beta: a pod attaches only to pseudowires of its own namespace, or to one whose spec\.allowedNamespaces lists "tn-beta"$/,
      ],
      [
        'the same as "tn-alpha/wire" string form',
        BETA,
        { ...nadConfig, pseudowire: `${ALPHA}/wire` },
        109,
        /not shared with namespace tn-beta/,
      ],
      [
        'the runtime gives no K8S_POD_NAMESPACE (fail closed)',
        undefined,
        nadConfig,
        4,
        /^CNI_ARGS: K8S_POD_NAMESPACE is missing/,
      ],
      [
        'a bare name "wire": it means tn-beta/wire',
        BETA,
        { ...nadConfig, pseudowire: 'wire' },
        100,
        /^pseudowire tn-beta\/wire has no endpoint on this node/,
      ],
      [
        'a name that does not exist in tn-alpha: the same answer as a real one (no probing)',
        BETA,
        { ...nadConfig, pseudowire: { namespace: ALPHA, name: 'secret-project' } },
        109,
        /^pseudowire tn-alpha\/secret-project is not shared with namespace tn-beta/,
      ],
    ];
    let i = 0;
    for (const [what, podNs, config, code, re] of cases) {
      const { r, netns } = await cniAdd(podNs, config, `tnbob${++i}`);
      const e = cniError(r);
      attempt('bob', `CNI ADD: ${what}`, `code ${e?.code}: ${e?.msg}`);
      assert.equal(e?.code, code, r.stdout);
      assert.match(e!.msg, re);
      assert.deepEqual(await podLinkNames(netns), ['lo'], 'no interface in the pod');
      await assertNothingChanged(what);
    }
  });

  it("item 2: no network config takes the Bridge wire's device for one pod", async () => {
    // even a NAD in alice's own namespace (anyone there with NAD rights may write one)
    const { r, netns } = await cniAdd(ALPHA, { ...nadConfig, mode: 'exclusive' }, 'tnexcl');
    const e = cniError(r);
    attempt(
      `${ALPHA} NAD author`,
      'CNI ADD with "mode": "exclusive" on the Bridge wire',
      `code ${e?.code}: ${e?.msg}`,
    );
    assert.equal(e?.code, 7);
    assert.match(
      e!.msg,
      /mode: "exclusive", but pseudowire tn-alpha\/wire has spec\.attachment\.mode Bridge/,
    );
    assert.deepEqual(await podLinkNames(netns), ['lo']);
    await assertNothingChanged('exclusive on a bridge wire');
  });

  it('item 4: no network config redirects the root-run shim; no annotation reaches a NAD', async () => {
    for (const [what, config, code, re] of [
      [
        '"agentSocket": "/tmp/evil.sock"',
        { ...nadConfig, agentSocket: '/tmp/evil.sock' },
        7,
        /is not a path under \/run\/kube-l2tp\//,
      ],
      [
        '"agentSocket" escaping the directory',
        { ...nadConfig, agentSocket: '/run/kube-l2tp/../../tmp/evil.sock' },
        7,
        /is not a path under/,
      ],
    ] as const) {
      const { r } = await cniAdd(BETA, config, `tnsock${code}${what.length}`);
      const e = cniError(r);
      attempt('bob', `CNI ADD with ${what}`, `code ${e?.code}: ${e?.msg}`);
      assert.equal(e?.code, code);
      assert.match(e!.msg, re);
    }
    // a nested agentSocket is not the shim's key: the request goes to the real agent, which refuses
    const nested = { ...nadConfig, ipam: { type: 'static', agentSocket: '/tmp/evil.sock' } };
    const { r } = await cniAdd(BETA, nested, 'tnnested');
    const e = cniError(r);
    attempt('bob', 'CNI ADD with agentSocket nested in ipam', `code ${e?.code}: ${e?.msg}`);
    assert.equal(e?.code, 109, 'answered by the node agent, not by anything at /tmp');

    await bob.create(pseudowirePath(BETA), {
      apiVersion: API_VERSION,
      kind: 'Pseudowire',
      metadata: {
        name: 'annotated',
        annotations: {
          'l2tp.kube-l2tp.io/ipam': JSON.stringify({ type: 'x', agentSocket: '/tmp/evil.sock' }),
        },
      },
      spec: { tunnelRef: { name: 'tn-core' } },
    });
    const p = await eventually('annotated refused', async () => {
      const x = await bob.get<Pseudowire>(pseudowirePath(BETA, 'annotated'));
      return ready(x)?.reason === 'IPAMAnnotationIgnored' ? x : undefined;
    });
    attempt(
      'bob',
      'a Pseudowire carrying the old free-form IPAM annotation',
      `${ready(p)!.reason}: ${ready(p)!.message}`,
    );
    assert.match(ready(p)!.message!, /move its JSON to spec\.ipam/);
    await env.admin
      .get(nadPath(BETA, 'annotated'))
      .then(() => assert.fail('a NAD was generated'))
      .catch((e2: unknown) => assert.equal((e2 as ApiError).status, 404));
    await assertNothingChanged('socket and annotation');
  });

  it('item 5: a hand-written network config gets no IPAM a Pseudowire could not have', async () => {
    const stolen = join(rig.dir, 'stolen-ipam'); // where a dataDir would have put leases
    const configs: [string, Record<string, unknown>, RegExp][] = [
      [
        '"ipam": {"type": "bridge"} (a plugin in the node\'s bin dir, run by the agent)',
        { type: 'bridge', bridge: 'tn-evil0' },
        /^invalid network config: ipam\.type: "bridge" is not allowed: IPAM delegates run inside the kube-l2tp node agent, which runs only host-local, static, whereabouts, dhcp: name one of them$/,
      ],
      [
        '"ipam": host-local with "dataDir"',
        { type: 'host-local', dataDir: stolen, ranges: [[{ subnet: '10.251.9.0/24' }]] },
        /^invalid network config: ipam: dataDir and resolvConf name files on the node: the node agent keeps IPAM state in its own directory, remove them$/,
      ],
      [
        '"ipam": host-local with "ResolvConf" (Go\'s decoder ignores case)',
        { type: 'host-local', ResolvConf: '/etc/shadow', ranges: [[{ subnet: '10.251.9.0/24' }]] },
        /^invalid network config: ipam: dataDir and resolvConf name files on the node/,
      ],
      [
        '"ipam": whereabouts acting as another identity ("kubernetes": {"kubeconfig": <the admin\'s>})',
        {
          type: 'whereabouts',
          range: '10.251.9.0/24',
          kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' },
        },
        /^invalid network config: ipam: whereabouts: kubernetes \(its kubeconfig\), configuration_path, log_file and etcd_\*_file name files on the node: whereabouts takes them from its own configuration file on the node .*kept by the cluster admin\), remove them$/,
      ],
    ];
    const records = () => readdirSync(agent.stateDir, { recursive: true }).sort().join(',');
    const recordsBefore = records();
    let i = 0;
    for (const [what, ipam, re] of configs) {
      // the apiserver stores any NAD: its config is opaque JSON to it
      const name = `hand-written-${++i}`;
      await bob.create(nadPath(BETA), {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name },
        spec: { config: JSON.stringify({ ...nadConfig, ipam }) },
      });
      const config = JSON.parse(
        (await bob.get<{ spec: { config: string } }>(nadPath(BETA, name))).spec.config,
      ) as Record<string, unknown>;
      // a pod of tn-beta, and one of tn-alpha, where the wire would otherwise attach
      for (const podNs of [BETA, ALPHA]) {
        const { r, netns } = await cniAdd(podNs, config, `tnipam${i}${podNs === ALPHA ? 'a' : 'b'}`);
        const e = cniError(r);
        attempt(
          podNs === BETA ? 'bob' : `${ALPHA} NAD author`,
          `CNI ADD, NAD ${name}: ${what}`,
          `code ${e?.code}: ${e?.msg}`,
        );
        assert.equal(e?.code, 7, r.stdout);
        assert.match(e!.msg, re);
        assert.deepEqual(await podLinkNames(netns), ['lo'], 'no interface in the pod');
        assert.equal(existsSync(stolen), false, 'no delegate wrote to the dataDir');
        assert.equal(records(), recordsBefore, 'no attachment record');
        await assertNothingChanged(what);
      }
    }

    // spec.ipam: the CRD refuses dataDir as spelled; another spelling a plugin's decoder reads is stored,
    // and the operator refuses it in the Pseudowire's status (no NAD, nothing on a node)
    const odd = (name: string, ipam: Record<string, unknown>) =>
      bob.create(pseudowirePath(BETA), {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: { name },
        spec: { tunnelRef: { name: 'tn-core' }, ipam },
      });
    const denied = await odd('exact-datadir', { type: 'host-local', dataDir: '/etc' }).then(
      () => undefined,
      (e: unknown) => e as ApiError,
    );
    attempt('bob', 'a Pseudowire with spec.ipam.dataDir', `${denied?.status}: ${denied?.message}`);
    assert.equal(denied?.status, 422);
    assert.match(denied!.message, /dataDir and resolvConf name files on the node/);
    await odd('odd-ipam', { type: 'host-local', DataDir: '/etc', ranges: [[{ subnet: '10.251.9.0/24' }]] });
    const p = await eventually('odd-ipam refused', async () => {
      const x = await bob.get<Pseudowire>(pseudowirePath(BETA, 'odd-ipam'));
      return ready(x)?.reason === 'InvalidIPAM' ? x : undefined;
    });
    attempt('bob', 'a Pseudowire with spec.ipam.DataDir', `${ready(p)!.reason}: ${ready(p)!.message}`);
    assert.match(ready(p)!.message!, /^spec\.ipam: dataDir and resolvConf name files on the node/);
    await env.admin
      .get(nadPath(BETA, 'odd-ipam'))
      .then(() => assert.fail('a NAD was generated'))
      .catch((e2: unknown) => assert.equal((e2 as ApiError).status, 404));

    // the same for whereabouts' file keys: refused by the CRD as spelled, by the operator otherwise
    const kubeconfig = await odd('whereabouts-identity', {
      type: 'whereabouts',
      range: '10.251.9.0/24',
      kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' },
    }).then(
      () => undefined,
      (e: unknown) => e as ApiError,
    );
    attempt(
      'bob',
      'a Pseudowire with spec.ipam.kubernetes.kubeconfig (whereabouts)',
      `${kubeconfig?.status}: ${kubeconfig?.message}`,
    );
    assert.equal(kubeconfig?.status, 422);
    assert.match(kubeconfig!.message, /whereabouts: kubernetes \(its kubeconfig\).*name files on the node/);
    await odd('odd-whereabouts', { type: 'whereabouts', range: '10.251.9.0/24', Log_File: '/etc/passwd' });
    const w = await eventually('odd-whereabouts refused', async () => {
      const x = await bob.get<Pseudowire>(pseudowirePath(BETA, 'odd-whereabouts'));
      return ready(x)?.reason === 'InvalidIPAM' ? x : undefined;
    });
    attempt(
      'bob',
      'a Pseudowire with spec.ipam.Log_File (whereabouts)',
      `${ready(w)!.reason}: ${ready(w)!.message}`,
    );
    assert.match(
      ready(w)!.message!,
      /^spec\.ipam: whereabouts: kubernetes \(its kubeconfig\), configuration_path, log_file/,
    );
    await env.admin
      .get(nadPath(BETA, 'odd-whereabouts'))
      .then(() => assert.fail('a NAD was generated'))
      .catch((e2: unknown) => assert.equal((e2 as ApiError).status, 404));
    await assertNothingChanged('spec.ipam spellings');
  });

  it("alice's pod and wire are as they were; bob's objects go without a trace", async () => {
    for (const n of ['tap', 'clash', 'annotated', 'odd-ipam', 'odd-whereabouts'])
      await bob.delete(pseudowirePath(BETA, n));
    for (const n of ['borrowed', 'hand-written-1', 'hand-written-2', 'hand-written-3', 'hand-written-4'])
      await bob.delete(nadPath(BETA, n));
    await eventually("bob's pseudowires gone", async () =>
      (await bob.get<{ items: unknown[] }>(pseudowirePath(BETA))).items.length === 0 ? true : undefined,
    );
    await assertNothingChanged('after bob left');
    const ipam = { type: 'static', addresses: [{ address: '10.251.1.1/24' }] };
    const del = await cni('DEL', ALPHA, 'tnalice1', alicePod, { ...nadConfig, ipam });
    assert.equal(del.code, 0, del.stdout);
  });

  it("sharing is the owner's choice: once the wire lists tn-beta, bob's pod attaches", async () => {
    await alice.patch(pseudowirePath(ALPHA, 'wire'), { spec: { allowedNamespaces: [BETA] } });
    const shared = await eventually('the node state carries the share', async () => {
      const ns1 = await env.admin.get<L2TPNodeState>(nodeStatePath(N1));
      const x = ns1.spec?.tunnels[0]?.sessions[0];
      return x?.allowedNamespaces?.includes(BETA) ? x : undefined;
    });
    await agent.setPseudowires(true, {
      [`${ALPHA}/wire`]: { ...entry, allowedNamespaces: shared.allowedNamespaces! },
    });
    const ipam = { type: 'static', addresses: [{ address: '10.251.1.2/24' }] };
    const { r, netns } = await cniAdd(BETA, { ...nadConfig, ipam }, 'tnbobok');
    attempt(
      'bob',
      `CNI ADD after alice set spec.allowedNamespaces: [${BETA}] on her wire`,
      r.code === 0 ? 'attached: net1' : r.stdout,
    );
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(await podLinkNames(netns), ['lo', 'net1']);
    const del = await cni('DEL', BETA, 'tnbobok', netns, { ...nadConfig, ipam });
    assert.equal(del.code, 0, del.stdout);
  });
});
