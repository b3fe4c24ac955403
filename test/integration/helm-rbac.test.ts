// RBAC sufficiency and limits, for real: deploy/kube-l2tp.yaml (the rendered chart) is applied to a real
// kube-apiserver, and the operator and the node agents run under the chart's own ServiceAccounts with
// real ServiceAccount tokens (TokenRequest; the agents' tokens bound to the datapath pods the operator
// created, as the kubelet would mount them). A full reconcile - allocation, node states, datapath pods,
// NetworkAttachmentDefinitions, leader election, cookie Secrets, status roll-up, teardown through
// finalizers - must see no 403. Then the negative side: the agent identity cannot touch another node's
// state (the chart's ValidatingAdmissionPolicy, since RBAC cannot tell agents apart), nor specs, Secrets
// or pods; the operator cannot list Secrets or act outside its namespace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import YAML from 'yaml';
import { join } from 'node:path';
import { AGENT_SA, OPERATOR_SA } from '../../lib/api/rbac.js';
import type { L2TPNodeState, NodeStateStatus, Pseudowire } from '../../lib/api/schemas.js';
import { silentLogger } from '../../lib/log.js';
import { runCapture } from '../../lib/exec.js';
import { kubeNodeStateSource, type NodeStateSource } from '../../datapath/agent/nodestate-source.js';
import { ApiError, KubeClient } from '../../lib/kube/client.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import { freePort, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { until, within } from '../harness/wait.js';
import { healthyStatus } from './operator-env.js';

const root = join(import.meta.dirname, '..', '..', '..');
const NS = 'kube-l2tp';
const GV = '/apis/l2tp.kube-l2tp.io/v1alpha1';
const NODES = { 'node-a': '10.99.0.1', 'node-b': '10.99.0.2' } as const;
type NodeName = keyof typeof NODES;

/** Polls with a longer default than the other suites: a full reconcile under RBAC on a loaded machine. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 45_000) =>
  until(what, fn, ms);

/** What a healthy agent reports: everything in its spec is up (the operator suites' simulated agent). */
const healthy = (ns: L2TPNodeState): NodeStateStatus => healthyStatus(ns);

describe('the chart identities against a real apiserver', () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  let op: RunningOperator | undefined;
  const sources: NodeStateSource[] = [];
  const timers: NodeJS.Timeout[] = [];
  const clients: KubeClient[] = [];
  const agentKubeconfig = new Map<NodeName, string>();

  const kubectl = (args: string[], input?: string) => cp.kubectl(args, input === undefined ? {} : { input });
  /** A kubeconfig with a real ServiceAccount token from the TokenRequest API. */
  const tokenKubeconfig = (sa: string, boundPod?: string) =>
    cp.serviceAccountKubeconfig(NS, sa, boundPod ? { boundPod: { name: boundPod } } : {});
  const client = (kubeconfig: string) => {
    const c = KubeClient.fromFile(kubeconfig);
    clients.push(c);
    return c;
  };
  const status = async (
    c: KubeClient,
    method: () => Promise<unknown>,
  ): Promise<{ code: number; message: string }> => {
    void c;
    try {
      await method();
      return { code: 200, message: '' };
    } catch (e) {
      if (e instanceof ApiError) return { code: e.status, message: e.message };
      throw e;
    }
  };

  before(async () => {
    // OwnerReferencesPermissionEnforcement (on in OpenShift) checks blockOwnerDeletion against RBAC
    cp = await startControlPlane({
      apiserverArgs: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'],
    });
    await kubectl(['apply', '--server-side', '-f', join(root, 'deploy', 'kube-l2tp.yaml')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    // Multus's CRD (the operator generates NetworkAttachmentDefinitions when it exists)
    await kubectl(['apply', '-f', join(root, 'test/fixtures/multus-nad-crd.json')]);
    await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/network-attachment-definitions.k8s.cni.cncf.io',
    ]);
    admin = client(cp.adminKubeconfig);
    for (const [name, ip] of Object.entries(NODES)) {
      await admin.create('/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
      });
      await admin.patch(`/api/v1/nodes/${name}/status`, {
        status: { addresses: [{ type: 'InternalIP', address: ip }] },
      });
    }
  });
  after(async () => {
    for (const t of timers) clearInterval(t);
    for (const s of sources) s.stop();
    await op?.stop().catch(() => undefined);
    for (const c of clients) c.close();
    await cp?.stop();
  });

  it('the operator and two agents reconcile a tunnel end to end with no 403', async () => {
    const opKubeconfig = await tokenKubeconfig(OPERATOR_SA);
    op = await startOperator({
      kubeconfig: opKubeconfig,
      logger: silentLogger(),
      namespace: NS,
      controller: { podDeleteGraceSeconds: 0, teardownTimeoutMs: 60_000 },
      leaderElection: { enabled: true, leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 },
      http: false,
    });
    const running = op;
    await eventually('leadership', async () => running.isLeader());
    const lease = JSON.parse(
      await kubectl(['-n', NS, 'get', 'lease', 'kube-l2tp-operator', '-o', 'json']),
    ) as {
      spec: { holderIdentity: string };
    };
    assert.ok(lease.spec.holderIdentity);

    await kubectl(['create', 'namespace', 'rbac-demo']);
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 'cookies', namespace: 'rbac-demo' },
            stringData: { cookie: '0a0b0c0d' },
          },
          {
            apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
            kind: 'L2TPTunnel',
            metadata: { name: 'a-b' },
            spec: { local: { node: 'node-a' }, peer: { node: 'node-b' }, allowedNamespaces: ['rbac-demo'] },
          },
          {
            apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
            kind: 'Pseudowire',
            metadata: { name: 'wire', namespace: 'rbac-demo' },
            spec: {
              tunnelRef: { name: 'a-b' },
              cookie: { secretRef: { name: 'cookies' } },
              peerCookie: { secretRef: { name: 'cookies' } },
            },
          },
        ],
      }),
    );

    // the operator renders both node states and creates one datapath pod per node, as the chart's agent
    for (const node of Object.keys(NODES) as NodeName[]) {
      const ns = await eventually(`node state ${node} with a session`, async () => {
        const s = await admin.get<L2TPNodeState>(`${GV}/l2tpnodestates/${node}`).catch(() => undefined);
        return s?.spec?.tunnels[0]?.sessions.length === 1 ? s : undefined;
      });
      assert.equal(
        ns.spec?.tunnels[0]?.sessions[0]?.cookie?.toLowerCase(),
        '0a0b0c0d',
        'cookie resolved from the Secret',
      );
      const pod = await eventually(`datapath pod on ${node}`, async () => {
        const list = await admin.get<{
          items: { metadata: { name: string }; spec: Record<string, unknown> }[];
        }>(`/api/v1/namespaces/${NS}/pods?fieldSelector=spec.nodeName%3D${node}`);
        return list.items[0];
      });
      assert.equal(pod.spec.serviceAccountName, AGENT_SA, 'datapath pods run as the chart agent account');
      const caps = (pod.spec.containers as { securityContext: { capabilities: { add: string[] } } }[])[0]!
        .securityContext.capabilities.add;
      // docs/install.md and values.yaml name exactly these (and the namespace's Pod Security level)
      for (const c of caps)
        assert.ok(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'].includes(c), `undocumented capability ${c}`);
      agentKubeconfig.set(node, await tokenKubeconfig(AGENT_SA, pod.metadata.name));
    }

    // the agents, through the agent's own API code (list and watch by label, status merge patch): every
    // watch event and every 500 ms each reports its current spec as up, as a level-triggered agent does
    const agentErrors: string[] = [];
    for (const [node, kubeconfig] of agentKubeconfig) {
      const src = kubeNodeStateSource(KubeClient.fromFile(kubeconfig), node, silentLogger());
      sources.push(src);
      let busy = false;
      const report = async () => {
        if (busy) return;
        busy = true;
        try {
          for (const ns of await src.get()) await src.writeStatus(ns.metadata.name, healthy(ns));
        } catch (e) {
          agentErrors.push(`${node}: ${String(e)}`);
        } finally {
          busy = false;
        }
      };
      src.watch(() => void report());
      timers.push(setInterval(() => void report(), 500));
      await eventually(`first status of ${node}`, async () => {
        const [ns] = await src.get();
        return ns?.status?.observedGeneration !== undefined;
      });
    }

    // the token of node-a's real datapath pod cannot write node-b's state
    const agentA = client(agentKubeconfig.get('node-a')!);
    const cross = await status(agentA, () =>
      agentA.patch(`${GV}/l2tpnodestates/node-b/status`, { status: { agentVersion: 'spoofed' } }),
    );
    assert.equal(cross.code, 403, cross.message);

    const ready = await eventually('Pseudowire Ready', async () => {
      const p = await admin.get<Pseudowire>(`${GV}/namespaces/rbac-demo/pseudowires/wire`);
      return p.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
    });
    assert.equal(ready.status?.endpoints?.length, 2);
    await eventually('the generated NetworkAttachmentDefinition', () =>
      admin.get(`/apis/k8s.cni.cncf.io/v1/namespaces/rbac-demo/network-attachment-definitions/wire`),
    );

    // teardown: the finalizers wait for the agents to report the session and the tunnel gone
    await kubectl(['-n', 'rbac-demo', 'delete', 'pseudowire', 'wire', '--wait=false']);
    await eventually('Pseudowire deleted', async () => {
      const r = await status(admin, () => admin.get(`${GV}/namespaces/rbac-demo/pseudowires/wire`));
      return r.code === 404;
    });
    await kubectl(['delete', 'l2tptunnel', 'a-b', '--wait=false']);
    await eventually('L2TPTunnel deleted', async () => {
      const r = await status(admin, () => admin.get(`${GV}/l2tptunnels/a-b`));
      return r.code === 404;
    });

    // not one request of the operator or of the agents was refused
    assert.deepEqual(agentErrors, []);
    const metrics = await running.metrics.registry.getSingleMetricAsString('kube_l2tp_api_requests_total');
    assert.match(metrics, /code="20\d"/);
    assert.doesNotMatch(metrics, /code="40[13]"/, metrics);
  });

  it('an agent cannot write another node’s state, specs, Secrets or pods', async () => {
    // self-contained: the operator is stopped, two fresh nodes get hand-made node states, and the token
    // is bound to a stand-in datapath pod on node-c (what the kubelet mounts into the real one)
    await op?.stop();
    op = undefined;
    for (const node of ['node-c', 'node-d']) {
      await admin.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node } });
      await admin.create(`${GV}/l2tpnodestates`, {
        apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
        kind: 'L2TPNodeState',
        metadata: { name: node },
        spec: { nodeName: node, tunnels: [] },
      });
    }
    await admin.create(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agent-standin-c' },
      spec: {
        nodeName: 'node-c',
        serviceAccountName: AGENT_SA,
        containers: [{ name: 'agent', image: 'kube-l2tp' }],
      },
    });
    const a = client(await tokenKubeconfig(AGENT_SA, 'agent-standin-c'));
    const path = (node: string) => `${GV}/l2tpnodestates/${node}`;
    const own = await a.get<L2TPNodeState>(path('node-c'));
    const other = await a.get<L2TPNodeState>(path('node-d')); // reads are not limited: see docs/install.md

    const writeStatus = (name: string) =>
      status(a, () => a.patch(`${path(name)}/status`, { status: { agentVersion: 'x' } }));
    const refusedFor = async (name: string, other: string) => {
      const r = await writeStatus(name);
      assert.equal(r.code, 403, r.message);
      assert.match(
        r.message,
        new RegExp(`datapath agent on node node-c may not write the L2TPNodeState of node ${other}`),
      );
    };
    // its own status: allowed; another node's: refused by the chart's admission policy, with a
    // message that says why
    assert.equal((await writeStatus('node-c')).code, 200);
    await refusedFor('node-d', 'node-d');
    // a large node's further node states go by spec.nodeName, not by name: node-c may write its own
    // second one, not an object that only looks like one of its shards
    for (const [name, node] of [
      ['node-c.shard-1', 'node-c'],
      ['node-c.shard-2', 'node-d'],
    ] as const)
      await admin.create(`${GV}/l2tpnodestates`, {
        apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
        kind: 'L2TPNodeState',
        metadata: { name },
        spec: { nodeName: node, tunnels: [] },
      });
    assert.equal((await writeStatus('node-c.shard-1')).code, 200);
    await refusedFor('node-c.shard-2', 'node-d');
    const replaced = await status(a, () =>
      a.replace(`${path('node-d')}/status`, { ...other, status: { agentVersion: 'y' } }),
    );
    assert.equal(replaced.code, 403);

    // RBAC: no spec writes, no create or delete, not even for its own node
    for (const [what, call] of [
      [
        'update own spec',
        () => a.replace(path('node-c'), { ...own, spec: { nodeName: 'node-c', tunnels: [] } }),
      ],
      ['patch own spec', () => a.patch(path('node-c'), { spec: { tunnels: [] } })],
      ['delete own state', () => a.delete(path('node-c'))],
      [
        'create a state',
        () =>
          a.create(`${GV}/l2tpnodestates`, {
            apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
            kind: 'L2TPNodeState',
            metadata: { name: 'node-c' },
          }),
      ],
      ['read a Secret', () => a.get('/api/v1/namespaces/rbac-demo/secrets/cookies')],
      ['list Secrets', () => a.get('/api/v1/secrets')],
      ['list pods', () => a.get(`/api/v1/namespaces/${NS}/pods`)],
      [
        'create a pod',
        () =>
          a.create(`/api/v1/namespaces/${NS}/pods`, {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'x' },
          }),
      ],
      ['patch a tunnel', () => a.patch(`${GV}/l2tptunnels/a-b`, { metadata: { labels: { x: 'y' } } })],
      ['read pseudowires', () => a.get(`${GV}/pseudowires`)],
      ['patch a node', () => a.patch('/api/v1/nodes/node-c', { metadata: { labels: { x: 'y' } } })],
    ] as const) {
      const r = await status(a, call as () => Promise<unknown>);
      assert.equal(r.code, 403, `agent could ${what}: ${r.code} ${r.message}`);
    }

    // a token of the agent account that is not bound to a pod on a node writes nothing at all
    const unbound = client(await tokenKubeconfig(AGENT_SA));
    const r = await status(unbound, () =>
      unbound.patch(`${path('node-c')}/status`, { status: { agentVersion: 'z' } }),
    );
    assert.equal(r.code, 403);
    assert.match(r.message, /token bound to a pod on a node/);

    // and it is the admission policy, not RBAC, that stops the cross-node write: without the policy
    // binding, the same request by the same agent goes through
    await kubectl(['delete', 'validatingadmissionpolicybinding', 'kube-l2tp-agent-node-restriction']);
    await eventually('cross-node write once the policy is unbound', async () => {
      const w = await status(a, () => a.patch(`${path('node-d')}/status`, { status: { agentVersion: 'x' } }));
      return w.code === 200;
    });
  });

  it('the operator cannot list or watch Secrets, delete user objects, or act outside its namespace', async () => {
    const o = client(await tokenKubeconfig(OPERATOR_SA));
    assert.equal(
      (await status(o, () => o.get('/api/v1/namespaces/rbac-demo/secrets/cookies'))).code,
      200,
      'get one named Secret',
    );
    for (const [what, call] of [
      ['list Secrets', () => o.get('/api/v1/secrets')],
      ['list Secrets in a namespace', () => o.get('/api/v1/namespaces/rbac-demo/secrets')],
      [
        'create a Secret',
        () =>
          o.create('/api/v1/namespaces/rbac-demo/secrets', {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 'x' },
          }),
      ],
      ['delete a tunnel', () => o.delete(`${GV}/l2tptunnels/none`)],
      [
        'create a tunnel',
        () =>
          o.create(`${GV}/l2tptunnels`, {
            apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
            kind: 'L2TPTunnel',
            metadata: { name: 'x' },
          }),
      ],
      [
        'create a pod elsewhere',
        () =>
          o.create('/api/v1/namespaces/default/pods', {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'x' },
          }),
      ],
      ['list pods elsewhere', () => o.get('/api/v1/namespaces/default/pods')],
      [
        'write a Lease elsewhere',
        () =>
          o.create('/apis/coordination.k8s.io/v1/namespaces/default/leases', {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: 'x' },
          }),
      ],
      ['patch a node', () => o.patch('/api/v1/nodes/node-a', { metadata: { labels: { x: 'y' } } })],
      ['read ConfigMaps', () => o.get(`/api/v1/namespaces/${NS}/configmaps`)],
      [
        'escalate its own role',
        () => o.patch(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${OPERATOR_SA}`, { rules: [] }),
      ],
    ] as const) {
      const r = await status(o, call as () => Promise<unknown>);
      assert.equal(r.code, 403, `operator could ${what}: ${r.code} ${r.message}`);
    }
  });

  it('kubectl auth can-i agrees for every rule of both identities (and nothing more for the agent)', async () => {
    const can = async (sa: string, args: string[]) => {
      const r = await runCapture(join(cp.binDir, 'kubectl'), [
        '--kubeconfig', cp.adminKubeconfig, 'auth', 'can-i', `--as=system:serviceaccount:${NS}:${sa}`, ...args,
      ]); // prettier-ignore
      return r.stdout.trim();
    };
    assert.equal(await can(AGENT_SA, ['watch', 'l2tpnodestates.l2tp.kube-l2tp.io']), 'yes');
    assert.equal(
      await can(AGENT_SA, ['patch', 'l2tpnodestates.l2tp.kube-l2tp.io', '--subresource=status']),
      'yes',
    );
    assert.equal(await can(AGENT_SA, ['update', 'l2tpnodestates.l2tp.kube-l2tp.io']), 'no');
    assert.equal(await can(AGENT_SA, ['get', 'secrets', '-A']), 'no');
    assert.equal(await can(OPERATOR_SA, ['create', 'pods', '-n', NS]), 'yes');
    assert.equal(await can(OPERATOR_SA, ['create', 'pods', '-n', 'default']), 'no');
    assert.equal(await can(OPERATOR_SA, ['update', 'leases.coordination.k8s.io', '-n', NS]), 'yes');
    assert.equal(await can(OPERATOR_SA, ['list', 'secrets', '-A']), 'no');
  });

  it('the operator executable starts with the chart Deployment’s command, args and env, probes answer', async () => {
    // the Deployment exactly as deploy/kube-l2tp.yaml renders it
    const dep = YAML.parseAllDocuments(readFileSync(join(root, 'deploy', 'kube-l2tp.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind?: string; spec?: unknown } | null)
      .find((o) => o?.kind === 'Deployment') as {
      spec: {
        template: {
          spec: {
            containers: {
              image: string;
              command: string[];
              args: string[];
              env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
              ports: { name: string; containerPort: number }[];
              livenessProbe: { httpGet: { path: string; port: string } };
              readinessProbe: { httpGet: { path: string; port: string } };
              startupProbe: { httpGet: { path: string; port: string } };
            }[];
          };
        };
      };
    };
    const c = dep.spec.template.spec.containers[0]!;
    assert.deepEqual(c.command, ['kube-l2tp-operator']);
    const bin = (
      JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }
    ).bin;
    const main = join(root, bin['kube-l2tp-operator']!);
    // the pod's fields, as the kubelet resolves them; the listen address moves to 127.0.0.1 for the test
    const fields: Record<string, string> = {
      'metadata.name': 'kube-l2tp-operator-test',
      'metadata.namespace': NS,
    };
    const env: Record<string, string> = {};
    for (const e of c.env) env[e.name] = e.value ?? fields[e.valueFrom!.fieldRef.fieldPath]!;
    const port = await freePort();
    const metricsPort = c.ports.find((p) => p.name === 'metrics')!.containerPort;
    const args = c.args.map((a) => a.replace(`0.0.0.0:${metricsPort}`, `127.0.0.1:${port}`));
    assert.ok(
      args.some((a) => a === `--metrics-addr=127.0.0.1:${port}`),
      args.join(' '),
    );
    const kubeconfig = await tokenKubeconfig(OPERATOR_SA);
    const proc = spawn(process.execPath, [main, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    try {
      const get = async (path: string) => {
        const r = await fetch(`http://127.0.0.1:${port}${path}`);
        return { status: r.status, text: await r.text() };
      };
      for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
        assert.equal(probe.httpGet.port, 'metrics');
        await eventually(
          `${probe.httpGet.path} answers 200`,
          async () => (await get(probe.httpGet.path)).status === 200,
        );
      }
      assert.match((await get('/metrics')).text, /kube_l2tp_leader/);
      await eventually('the leader Lease', async () =>
        (await get('/metrics')).text.match(/^kube_l2tp_leader 1$/m),
      );

      // the datapath pods it creates run the chart's image (DATAPATH_IMAGE)
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
          kind: 'L2TPTunnel',
          metadata: { name: 'a-b-again' },
          spec: { local: { node: 'node-a' }, peer: { node: 'node-b' } },
        }),
      );
      const pod = await eventually('a datapath pod from the executable', async () => {
        const list = await admin.get<{ items: { spec: { containers: { image: string }[] } }[] }>(
          `/api/v1/namespaces/${NS}/pods?fieldSelector=spec.nodeName%3Dnode-a`,
        );
        return list.items[0];
      });
      assert.equal(pod.spec.containers[0]!.image, c.image);
      assert.doesNotMatch((await get('/metrics')).text, /code="40[13]"/);
    } finally {
      proc.kill('SIGTERM');
      const code = await within(exited, 15_000);
      if (code === 'timeout') proc.kill('SIGKILL');
      assert.equal(code, 0, `operator exit ${String(code)}:\n${output.slice(-3000)}`);
    }
  });
});
