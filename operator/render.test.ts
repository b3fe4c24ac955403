import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { L2TPNodeState, Pseudowire } from '../lib/api/schemas.js';
import {
  DEFAULT_POD_CONFIG,
  desiredDatapathPod,
  desiredNAD,
  desiredNodeState,
  ifnameFor,
  mayRoll,
  renderNodeState,
  rollupPseudowire,
} from './render.js';
import { setCondition } from '../lib/api/conditions.js';
import { LABEL_NODE } from '../lib/api/node-shards.js';
import { pseudowireObject, tunnelObject } from '../test/fakes/objects.js';

const tunnel = tunnelObject('t', {
  tunnelID: 42,
  peerTunnelID: 45,
  udpPort: 5000,
  peerUDPPort: 5001,
  localAddress: '10.0.0.1',
  peerAddress: '10.0.0.2',
});
const pw = pseudowireObject(
  'red',
  {
    tunnelRef: { name: 't' },
    l2SpecificSublayer: 'None',
    attachment: { mode: 'Exclusive' },
    mtu: 1400,
  },
  { uid: 'u1', status: { sessionID: 128, peerSessionID: 5196755 } },
);
const cookies = (_p: Pseudowire, w: 'cookie' | 'peerCookie') =>
  w === 'cookie' ? 'aaaaaaaa' : 'bbbbbbbbbbbbbbbb';

describe('renderNodeState', () => {
  it('renders the local side as recorded and the peer side reversed (Host 1 / Host 2)', () => {
    const a = renderNodeState('a', [tunnel], [pw], cookies);
    const b = renderNodeState('b', [tunnel], [pw], cookies);
    assert.deepEqual(a, {
      nodeName: 'a',
      tunnels: [
        {
          name: 't', tunnelId: 42, peerTunnelId: 45, encap: 'udp', local: '10.0.0.1', remote: '10.0.0.2',
          udpSourcePort: 5000, udpDestinationPort: 5001, udpChecksum: false,
          sessions: [
            {
              pseudowire: { namespace: 'lab', name: 'red' }, sessionId: 128, peerSessionId: 5196755, ifname: 'l2tpeth128',
              cookie: 'aaaaaaaa', peerCookie: 'bbbbbbbbbbbbbbbb', l2specType: 'none', sendSequence: false,
              requireSequence: false, reorderTimeoutMs: 0, mtu: 1400, mode: 'exclusive',
            },
          ],
        },
      ],
    }); // prettier-ignore
    const tb = b.tunnels[0]!;
    assert.deepEqual(
      [tb.tunnelId, tb.peerTunnelId, tb.udpSourcePort, tb.udpDestinationPort, tb.local, tb.remote],
      [45, 42, 5001, 5000, '10.0.0.2', '10.0.0.1'],
    );
    assert.deepEqual([tb.sessions[0]!.sessionId, tb.sessions[0]!.peerSessionId], [5196755, 128]);
    assert.deepEqual([tb.sessions[0]!.cookie, tb.sessions[0]!.peerCookie], ['bbbbbbbbbbbbbbbb', 'aaaaaaaa']);
    assert.equal(tb.sessions[0]!.ifname, 'l2tpeth5196755');
    assert.deepEqual(renderNodeState('c', [tunnel], [pw], cookies).tunnels, []);
  });

  it('leaves out unallocated and deleting objects', () => {
    const noIds = { ...tunnel, status: {} };
    assert.deepEqual(renderNodeState('a', [noIds], [pw], cookies).tunnels, []);
    const deleting = { ...pw, metadata: { ...pw.metadata, deletionTimestamp: '2025-01-01T00:00:00Z' } };
    assert.deepEqual(renderNodeState('a', [tunnel], [deleting], cookies).tunnels[0]!.sessions, []);
  });

  it('names interfaces within 15 bytes', () => {
    assert.equal(ifnameFor(7), 'l2tpeth7');
    assert.equal(ifnameFor(4294967295), 'l2tpffffffff');
    assert.ok(ifnameFor(4294967295).length <= 15);
  });
});

describe('desiredDatapathPod', () => {
  it('is a least-privilege host-network pod with a stable template hash', () => {
    const pod = desiredDatapathPod('node-1', DEFAULT_POD_CONFIG, { name: 'node-1', uid: 'uid-1' });
    const spec = pod.spec as Record<string, unknown> & {
      containers: Record<string, unknown>[];
      volumes: { name: string; hostPath: { path: string } }[];
    };
    assert.equal(pod.metadata.name, 'kube-l2tp-datapath-node-1');
    assert.equal(pod.metadata.namespace, 'kube-l2tp');
    assert.equal(spec.nodeName, 'node-1');
    assert.equal(spec.hostNetwork, true);
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    const c = spec.containers[0]!;
    assert.deepEqual(c.command, ['kube-l2tp-datapath', 'agent', '--node-name', '$(NODE_NAME)']);
    assert.deepEqual(c.securityContext, {
      privileged: false, runAsUser: 0, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
      seccompProfile: { type: 'Localhost', localhostProfile: 'kube-l2tp/datapath.json' },
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'] },
    }); // prettier-ignore
    // the init container writes the profile where the kubelet reads Localhost profiles, before the
    // runtime creates the agent container; it has that directory, no capability, the default filter
    assert.deepEqual(spec.initContainers, [
      {
        name: 'seccomp-profile',
        image: DEFAULT_POD_CONFIG.image,
        imagePullPolicy: 'IfNotPresent',
        command: ['kube-l2tp-datapath', 'seccomp-profile', '--dir', '/host/seccomp'],
        env: [{ name: 'LOG_LEVEL', value: 'info' }],
        securityContext: {
          privileged: false, runAsUser: 0, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
          seccompProfile: { type: 'RuntimeDefault' }, capabilities: { drop: ['ALL'] },
        },
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
        volumeMounts: [{ name: 'seccomp-profile', mountPath: '/host/seccomp' }],
      },
    ]); // prettier-ignore
    assert.deepEqual(spec.volumes, [
      { name: 'dev-net-tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } },
      { name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'Directory' } },
      { name: 'netns', hostPath: { path: '/var/run/netns', type: 'DirectoryOrCreate' } },
      { name: 'proc-sys-net', hostPath: { path: '/proc/sys/net', type: 'Directory' } },
      { name: 'cni-bin', hostPath: { path: '/opt/cni/bin', type: 'DirectoryOrCreate' } },
      { name: 'cni-conf', hostPath: { path: '/etc/cni/net.d', type: 'DirectoryOrCreate' } },
      { name: 'agent-socket', hostPath: { path: '/run/kube-l2tp', type: 'DirectoryOrCreate' } },
      { name: 'cni-data', hostPath: { path: '/var/lib/cni', type: 'DirectoryOrCreate' } },
      { name: 'seccomp-profile', hostPath: { path: '/var/lib/kubelet/seccomp/kube-l2tp', type: 'DirectoryOrCreate' } },
    ]); // prettier-ignore
    // read-only wherever the agent writes nothing; the rest it writes (pins, sysctls, the CNI binary
    // and config, its socket, IPAM state and attachment records, its seccomp profile's removal on
    // uninstall)
    assert.deepEqual(c.volumeMounts, [
      { name: 'dev-net-tun', mountPath: '/dev/net/tun', readOnly: true },
      { name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
      { name: 'netns', mountPath: '/var/run/netns', mountPropagation: 'HostToContainer', readOnly: true },
      { name: 'proc-sys-net', mountPath: '/host/proc/sys/net' },
      { name: 'cni-bin', mountPath: '/host/cni/bin' },
      { name: 'cni-conf', mountPath: '/host/cni/net.d' },
      { name: 'cni-conf', mountPath: '/etc/cni/net.d', readOnly: true },
      { name: 'agent-socket', mountPath: '/run/kube-l2tp' },
      { name: 'cni-data', mountPath: '/var/lib/cni' },
      { name: 'seccomp-profile', mountPath: '/host/seccomp' },
    ]);
    assert.ok(
      (c.env as { name: string; value?: string }[]).some(
        (e) => e.name === 'KUBE_L2TP_SECCOMP_DIR' && e.value === '/host/seccomp',
      ),
      'the agent removes its profile through the mount on uninstall',
    );
    assert.ok(
      (c.env as { name: string; value?: string }[]).some(
        (e) => e.name === 'KUBE_L2TP_PROC_SYS_NET' && e.value === '/host/proc/sys/net',
      ),
      'the agent writes device sysctls through the node mount',
    );
    const mounts = Object.fromEntries(
      (c.volumeMounts as { name: string; mountPath: string }[]).map((m) => [m.name, m.mountPath]),
    );
    // IPAM delegates run in this container: the node's /var/lib/cni where they expect it (host-local's
    // leases in /var/lib/cni/networks), holding the attachment records too
    assert.equal(mounts['cni-data'], '/var/lib/cni');
    assert.equal(mounts['cni-bin'], '/host/cni/bin');
    // the ebpf backend's pins live in the host's bpffs
    assert.equal(mounts.bpffs, '/sys/fs/bpf');
    assert.deepEqual(pod.metadata.ownerReferences, [
      { apiVersion: 'l2tp.kube-l2tp.io/v1alpha1', kind: 'L2TPNodeState', name: 'node-1', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
    ]); // prettier-ignore
    const h = pod.metadata.annotations['l2tp.kube-l2tp.io/template-hash'];
    assert.equal(
      desiredDatapathPod('node-1', DEFAULT_POD_CONFIG).metadata.annotations[
        'l2tp.kube-l2tp.io/template-hash'
      ],
      h,
    );
    const other = desiredDatapathPod('node-1', { ...DEFAULT_POD_CONFIG, image: 'x:2' });
    assert.notEqual(other.metadata.annotations['l2tp.kube-l2tp.io/template-hash'], h);
    assert.ok(desiredDatapathPod('n'.repeat(80), DEFAULT_POD_CONFIG).metadata.name.length <= 63);
  });

  it('renders a node state shard with no owner: the operator deletes it once its agent drained it', () => {
    assert.deepEqual(desiredNodeState('node-1', { nodeName: 'node-1', tunnels: [] }, 1), {
      apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
      kind: 'L2TPNodeState',
      metadata: {
        name: 'node-1.shard-1',
        labels: { 'app.kubernetes.io/managed-by': 'kube-l2tp-operator', [LABEL_NODE]: 'node-1' },
      },
      spec: { nodeName: 'node-1', tunnels: [] },
    });
  });

  it('labels the pod with the node as its node states are labelled, long names included', () => {
    for (const node of ['node-1', `${'n'.repeat(60)}.example.com`]) {
      const pod = desiredDatapathPod(node, DEFAULT_POD_CONFIG);
      const state = desiredNodeState(node, { nodeName: node, tunnels: [] }, 1);
      assert.equal(pod.metadata.labels[LABEL_NODE], state.metadata.labels?.[LABEL_NODE]);
      assert.ok(pod.metadata.labels[LABEL_NODE]!.length <= 63);
    }
  });

  it('runs the agent under the runtime default profile, without the init container, when told so', () => {
    const pod = desiredDatapathPod('n1', { ...DEFAULT_POD_CONFIG, seccompProfile: 'RuntimeDefault' });
    const spec = pod.spec as {
      initContainers?: unknown;
      containers: {
        securityContext: { seccompProfile: unknown };
        volumeMounts: { name: string }[];
        env: { name: string }[];
      }[];
      volumes: { name: string }[];
    };
    const c = spec.containers[0]!;
    assert.deepEqual(c.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(spec.initContainers, undefined);
    assert.ok(!spec.volumes.some((v) => v.name === 'seccomp-profile'), 'no host path it does not need');
    assert.ok(!c.volumeMounts.some((m) => m.name === 'seccomp-profile'));
    assert.ok(!c.env.some((e) => e.name === 'KUBE_L2TP_SECCOMP_DIR'), 'no profile of ours to remove');
    assert.notEqual(
      pod.metadata.annotations['l2tp.kube-l2tp.io/template-hash'],
      desiredDatapathPod('n1', DEFAULT_POD_CONFIG).metadata.annotations['l2tp.kube-l2tp.io/template-hash'],
      'changing the profile rolls the pods',
    );
  });

  it('gives the attachment records a volume of their own only outside the CNI data dir', () => {
    const pod = desiredDatapathPod('n1', {
      ...DEFAULT_POD_CONFIG,
      cniDataDir: '/var/lib/cni',
      cniStateDir: '/var/lib/kube-l2tp/cni',
    });
    const spec = pod.spec as {
      containers: { volumeMounts: { name: string; mountPath: string }[] }[];
      volumes: { name: string; hostPath: { path: string } }[];
    };
    const vols = Object.fromEntries(spec.volumes.map((v) => [v.name, v.hostPath.path]));
    assert.equal(vols['cni-data'], '/var/lib/cni');
    assert.equal(vols['cni-state'], '/var/lib/kube-l2tp/cni');
    const mounts = spec.containers[0]!.volumeMounts.map((m) => m.mountPath);
    assert.ok(mounts.includes('/var/lib/cni') && mounts.includes('/var/lib/kube-l2tp/cni'));
  });

  it('rolls one node at a time', () => {
    const pod = (hash: string, readyStatus: string, deleting = false) => ({
      ...desiredDatapathPod('n', DEFAULT_POD_CONFIG),
      metadata: {
        ...desiredDatapathPod('n', DEFAULT_POD_CONFIG).metadata,
        annotations: { 'l2tp.kube-l2tp.io/template-hash': hash },
        ...(deleting ? { deletionTimestamp: 'x' } : {}),
      },
      status: { conditions: [{ type: 'Ready', status: readyStatus }] },
    });
    assert.equal(mayRoll([pod('old', 'True'), pod('old', 'True')], 'new'), true);
    assert.equal(mayRoll([pod('new', 'False'), pod('old', 'True')], 'new'), false);
    assert.equal(mayRoll([pod('new', 'True'), pod('old', 'True')], 'new'), true);
    assert.equal(mayRoll([pod('old', 'True', true), pod('old', 'True')], 'new'), false);
  });
});

describe('desiredNAD and roll-up', () => {
  it('writes the CNI config the plugin expects: IPAM from the spec, no mode (the Pseudowire decides it)', () => {
    const nad = desiredNAD({ ...pw, spec: { ...pw.spec, ipam: { type: 'static' } } });
    assert.deepEqual(JSON.parse((nad.spec as { config: string }).config), {
      cniVersion: '1.0.0', type: 'kube-l2tp', pseudowire: { namespace: 'lab', name: 'red' }, mtu: 1400, ipam: { type: 'static' },
    }); // prettier-ignore
  });

  it('copies nothing free-form into the NAD: the old IPAM annotation is not read', () => {
    const nad = desiredNAD({
      ...pw,
      metadata: {
        ...pw.metadata,
        annotations: { 'l2tp.kube-l2tp.io/ipam': '{"type":"x","agentSocket":"/tmp/x"}' },
      },
    });
    const config = JSON.parse((nad.spec as { config: string }).config) as Record<string, unknown>;
    assert.equal(config.ipam, undefined);
    assert.equal(JSON.stringify(config).includes('agentSocket'), false);
  });

  it('renders a Pseudowire only on a tunnel that allows its namespace, with whom it shares itself', () => {
    const shared = { ...pw, spec: { ...pw.spec, allowedNamespaces: ['guest'] } };
    const spec = renderNodeState('a', [tunnel], [shared], cookies);
    assert.deepEqual(spec.tunnels[0]!.sessions[0]!.allowedNamespaces, ['guest']);
    const other = { ...pw, metadata: { ...pw.metadata, namespace: 'intruder', name: 'x' } };
    const refused = renderNodeState('a', [tunnel], [other], cookies);
    assert.deepEqual(
      refused.tunnels[0]!.sessions,
      [],
      'a namespace the tunnel does not list gets no session',
    );
    const open = { ...tunnel, spec: { ...tunnel.spec, allowedNamespaces: ['*'] } };
    assert.equal(renderNodeState('a', [open], [other], cookies).tunnels[0]!.sessions.length, 1);
    const closed = { ...tunnel, spec: { ...tunnel.spec, allowedNamespaces: [] } };
    assert.equal(renderNodeState('a', [closed], [pw], cookies).tunnels[0]!.sessions.length, 0);
  });

  it('is Ready only when both agents report the session up at the current generation', () => {
    const ns = (node: string, sessionId: number, state: 'Up' | 'Down', observed = 1): L2TPNodeState => ({
      apiVersion: 'x', kind: 'L2TPNodeState', metadata: { name: node, generation: 1 },
      spec: renderNodeState(node, [tunnel], [pw], cookies),
      status: { observedGeneration: observed, sessions: [{ pseudowire: { namespace: 'lab', name: 'red' }, tunnelId: 1, sessionId, ifname: 'x', state, mtu: 1400 }] },
    }); // prettier-ignore
    const up = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', 128, 'Up')],
        ['b', ns('b', 5196755, 'Up')],
      ]),
    );
    assert.equal(up.ready.status, 'True');
    assert.equal(up.degraded.status, 'False');
    const stale = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', 128, 'Up', 0)],
        ['b', ns('b', 5196755, 'Up')],
      ]),
    );
    assert.equal(stale.ready.reason, 'Pending');
    const down = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', 128, 'Up')],
        ['b', ns('b', 5196755, 'Down')],
      ]),
    );
    assert.deepEqual([down.ready.status, down.degraded.reason], ['False', 'EndpointDown']);
  });

  it('reads the compact status of a large node (session IDs Up per tunnel) like the full list', () => {
    const ns = (node: string, ids: string, mtu: number): L2TPNodeState => {
      const spec = renderNodeState(node, [tunnel], [pw], cookies);
      const tunnelId = spec.tunnels[0]!.tunnelId;
      return {
        apiVersion: 'x',
        kind: 'L2TPNodeState',
        metadata: { name: node, generation: 1 },
        spec,
        status: {
          observedGeneration: 1,
          tunnels: [{ name: 't', tunnelId, state: 'Ready', up: [{ sessionIds: ids, mtu }] }],
          sessions: [],
        },
      };
    };
    const up = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', '100-200', 1400)],
        ['b', ns('b', '5196750-5196760', 1400)],
      ]),
    );
    assert.equal(up.ready.status, 'True');
    assert.deepEqual(
      up.endpoints.map((e) => [e.node, e.state, e.interface, e.mtu]),
      [
        ['a', 'Up', 'l2tpeth128', 1400],
        ['b', 'Up', ifnameFor(5196755), 1400],
      ],
    );
    const missing = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', '100-127,129', 1400)],
        ['b', ns('b', '5196755', 1400)],
      ]),
    );
    assert.equal(missing.ready.reason, 'Pending', 'a session in no range is not reported yet');
    const mismatch = rollupPseudowire(
      pw,
      tunnel,
      new Map([
        ['a', ns('a', '128', 1400)],
        ['b', ns('b', '5196755', 1446)],
      ]),
    );
    assert.equal(mismatch.degraded.reason, 'MTUMismatch');
  });

  it('keeps lastTransitionTime while a condition does not change', () => {
    const c1 = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Pending' }, 't1');
    const c2 = setCondition(c1, { type: 'Ready', status: 'False', reason: 'Other' }, 't2');
    assert.equal(c2[0]!.lastTransitionTime, 't1');
    assert.equal(
      setCondition(c2, { type: 'Ready', status: 'True', reason: 'Up' }, 't3')[0]!.lastTransitionTime,
      't3',
    );
  });
});
