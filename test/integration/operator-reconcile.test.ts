// The operator against a real kube-apiserver, running as its own ServiceAccount identity (RBAC on):
// node states and datapath pods, status roll-up from a simulated agent, deletion with finalizers,
// Node deletion, restart stability of IDs, Multus NADs, and leader election with fail-over.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_VERSION, type L2TPNodeState, type L2TPTunnel, type Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, isNotFound } from '../../lib/kube/client.js';
import type { RunningOperator } from '../../operator/operator.js';
import type { PodObject } from '../../operator/render.js';
import {
  agentReport,
  createNode,
  type Env,
  eventually,
  nodeStatePath,
  NS,
  operator,
  pseudowirePath,
  setupEnv,
  tunnelPath,
} from './operator-env.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..');

const pwPath = (n?: string) => pseudowirePath('default', n);
const podPath = (node: string) => `/api/v1/namespaces/${NS}/pods/kube-l2tp-datapath-${node}`;
type WithConds = {
  status?:
    { conditions?: { type: string; status: string; reason?: string | undefined }[] | undefined } | undefined;
};
const ready = (o: WithConds) => o.status?.conditions?.find((c) => c.type === 'Ready');
// a new pseudowire's or tunnel's waiting status is held back while no agent reports (up to a minute
// by default); these tests often have no agent reporting, and wait for that status
const SHORT_HOLD = { controller: { pendingHoldMs: 2000 } };

describe('operator on a real apiserver', () => {
  let env: Env;
  let op: RunningOperator | undefined;
  before(async () => {
    env = await setupEnv();
    await createNode(env.admin, 'n1', '10.0.0.1');
    await createNode(env.admin, 'n2', '10.0.0.2');
    await createNode(env.admin, 'n3', '10.0.0.3');
    op = await operator(env, SHORT_HOLD);
  });
  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  it('renders mirrored node states and one datapath pod per node with endpoints', async () => {
    await env.admin.create(tunnelPath(), {
      apiVersion: API_VERSION,
      kind: 'L2TPTunnel',
      metadata: { name: 't12' },
      spec: { local: { node: 'n1' }, peer: { node: 'n2' }, allowedNamespaces: ['default'] },
    });
    await env.admin.create(pwPath(), {
      apiVersion: API_VERSION,
      kind: 'Pseudowire',
      metadata: { name: 'red' },
      spec: {
        tunnelRef: { name: 't12' },
        cookie: { value: '0BADCAFE' },
        peerCookie: { value: '0102030405060708' },
      },
    });
    const t = await eventually('tunnel IDs', async () => {
      const x = await env.admin.get<L2TPTunnel>(tunnelPath('t12'));
      return x.status?.tunnelID && x.status.udpPort ? x : undefined;
    });
    assert.deepEqual(t.metadata.finalizers, ['l2tp.kube-l2tp.io/teardown']);
    assert.equal(t.status?.localAddress, '10.0.0.1');
    assert.equal(t.status?.peerAddress, '10.0.0.2');
    const n1 = await eventually('n1 state with the session', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return x.spec?.tunnels[0]?.sessions.length === 1 ? x : undefined;
    });
    const n2 = await eventually('n2 state with the session', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n2'));
      return x.spec?.tunnels[0]?.sessions.length === 1 ? x : undefined;
    });
    // the node states carry the session before the pseudowire's status does: its waiting status is
    // held back (no agent reports here), then written with the same IDs
    const p = await eventually('the Pending status with the IDs', async () => {
      const x = await env.admin.get<Pseudowire>(pwPath('red'));
      return x.status?.sessionID ? x : undefined;
    });
    const [a, b] = [n1.spec!.tunnels[0]!, n2.spec!.tunnels[0]!];
    // Host 1 / Host 2: everything reversed at the peer
    assert.equal(a.tunnelId, b.peerTunnelId);
    assert.equal(a.peerTunnelId, b.tunnelId);
    assert.equal(a.udpSourcePort, b.udpDestinationPort);
    assert.equal(a.udpDestinationPort, b.udpSourcePort);
    assert.deepEqual(
      [a.local, a.remote, b.local, b.remote],
      ['10.0.0.1', '10.0.0.2', '10.0.0.2', '10.0.0.1'],
    );
    const [sa, sb] = [a.sessions[0]!, b.sessions[0]!];
    assert.equal(sa.sessionId, p.status?.sessionID);
    assert.equal(sa.sessionId, sb.peerSessionId);
    assert.equal(sa.peerSessionId, sb.sessionId);
    assert.notEqual(sa.sessionId, 0);
    assert.deepEqual(
      [sa.cookie, sa.peerCookie, sb.cookie, sb.peerCookie],
      ['0badcafe', '0102030405060708', '0102030405060708', '0badcafe'],
    );
    assert.equal(sa.ifname, `l2tpeth${sa.sessionId}`);
    assert.equal(sa.mode, 'bridge');
    assert.equal(sa.l2specType, 'default');
    for (const node of ['n1', 'n2']) {
      const pod = await eventually(`pod on ${node}`, () => env.admin.get<PodObject>(podPath(node)));
      assert.equal(pod.spec.nodeName, node);
      assert.equal(pod.spec.hostNetwork, true);
      const c = (
        pod.spec.containers as { command: string[]; securityContext: { capabilities: { add: string[] } } }[]
      )[0]!;
      assert.deepEqual(c.command, ['kube-l2tp-datapath', 'agent', '--node-name', '$(NODE_NAME)']);
      assert.deepEqual(c.securityContext.capabilities.add, ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']);
      assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'L2TPNodeState');
      assert.match(pod.metadata.annotations['l2tp.kube-l2tp.io/template-hash'] ?? '', /^[0-9a-f]{10}$/);
    }
    await assert.rejects(env.admin.get(nodeStatePath('n3')), (e) => isNotFound(e));
    await assert.rejects(env.admin.get(podPath('n3')), (e) => isNotFound(e));
    assert.equal(ready(p)?.reason, 'Pending');
  });

  it('rolls a simulated agent status up to Ready, and the agent identity cannot write spec or read Secrets', async () => {
    await agentReport(env, 'n1');
    await agentReport(env, 'n2');
    const p = await eventually('pseudowire Ready', async () => {
      const x = await env.admin.get<Pseudowire>(pwPath('red'));
      return ready(x)?.status === 'True' ? x : undefined;
    });
    assert.equal(p.status?.endpoints?.length, 2);
    assert.ok(p.status?.endpoints?.every((e) => e.state === 'Up' && e.interface?.startsWith('l2tpeth')));
    assert.equal(p.status?.mtu, 1446);
    assert.equal(p.status?.observedGeneration, p.metadata.generation);
    await eventually(
      'tunnel Ready',
      async () => ready(await env.admin.get<L2TPTunnel>(tunnelPath('t12')))?.status === 'True',
    );
    // degraded when one side reports a different MTU
    await agentReport(env, 'n2', (s) => (s.sessions![0]!.mtu = 1400));
    await eventually('Degraded MTUMismatch', async () => {
      const x = await env.admin.get<Pseudowire>(pwPath('red'));
      return x.status?.conditions?.find((c) => c.type === 'Degraded')?.reason === 'MTUMismatch';
    });
    await agentReport(env, 'n2');
    // RBAC: the agent writes status only
    await assert.rejects(
      env.agent.patch(nodeStatePath('n1'), { spec: { tunnels: [] } }),
      (e) => e instanceof ApiError && e.status === 403,
    );
    await assert.rejects(
      env.agent.get('/api/v1/namespaces/default/secrets'),
      (e) => e instanceof ApiError && e.status === 403,
    );
  });

  it('keeps every ID across an operator restart and allocates new ones around them', async () => {
    const before = await env.admin.get<Pseudowire>(pwPath('red'));
    const tBefore = await env.admin.get<L2TPTunnel>(tunnelPath('t12'));
    const nsBefore = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
    await op!.stop();
    op = undefined;
    // a pseudowire created while no operator runs
    await env.admin.create(pwPath(), {
      apiVersion: API_VERSION,
      kind: 'Pseudowire',
      metadata: { name: 'blue' },
      spec: { tunnelRef: { name: 't12' } },
    });
    op = await operator(env, SHORT_HOLD);
    const blue = await eventually('blue allocated', async () => {
      const x = await env.admin.get<Pseudowire>(pwPath('blue'));
      return x.status?.sessionID ? x : undefined;
    });
    await eventually('n1 has both sessions', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return x.spec?.tunnels[0]?.sessions.length === 2;
    });
    const after = await env.admin.get<Pseudowire>(pwPath('red'));
    const tAfter = await env.admin.get<L2TPTunnel>(tunnelPath('t12'));
    assert.equal(after.status?.sessionID, before.status?.sessionID);
    assert.equal(after.status?.peerSessionID, before.status?.peerSessionID);
    assert.deepEqual(
      [
        tAfter.status?.tunnelID,
        tAfter.status?.peerTunnelID,
        tAfter.status?.udpPort,
        tAfter.status?.peerUDPPort,
      ],
      [
        tBefore.status?.tunnelID,
        tBefore.status?.peerTunnelID,
        tBefore.status?.udpPort,
        tBefore.status?.peerUDPPort,
      ],
    );
    assert.notEqual(blue.status?.sessionID, after.status?.sessionID);
    const nsAfter = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
    const red = (s: L2TPNodeState) => s.spec!.tunnels[0]!.sessions.find((x) => x.pseudowire.name === 'red');
    assert.deepEqual(red(nsAfter), red(nsBefore));
  });

  it('generates a Multus NetworkAttachmentDefinition per pseudowire when that CRD exists', async () => {
    // Multus's CRD, the same fixture the local lab installs
    await env.cp.kubectl(['apply', '-f', join(REPO, 'test/fixtures/multus-nad-crd.json')]);
    await op!.stop();
    op = await operator(env, SHORT_HOLD); // discovery happens at start (and every nadCheckIntervalMs)
    const nad = await eventually('NAD for red', () =>
      env.admin.get<{ spec: { config: string }; metadata: { ownerReferences: { kind: string }[] } }>(
        '/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/red',
      ),
    );
    assert.deepEqual(JSON.parse(nad.spec.config), {
      cniVersion: '1.0.0',
      type: 'kube-l2tp',
      pseudowire: { namespace: 'default', name: 'red' },
    });
    assert.equal(nad.metadata.ownerReferences[0]?.kind, 'Pseudowire');
    await eventually(
      'status names the NAD',
      async () =>
        (await env.admin.get<Pseudowire>(pwPath('red'))).status?.networkAttachmentDefinition === 'red',
    );
  });

  it('tears the datapath state down before a pseudowire goes, then removes node states and pods with the tunnel', async () => {
    await agentReport(env, 'n1');
    await agentReport(env, 'n2');
    await env.admin.delete(pwPath('blue'));
    await eventually('blue left the node state spec', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return x.spec?.tunnels[0]?.sessions.length === 1;
    });
    // the agents still report the session: the finalizer holds the object
    await new Promise((r) => setTimeout(r, 1500));
    const held = await env.admin.get<Pseudowire>(pwPath('blue'));
    assert.ok(held.metadata.deletionTimestamp);
    await agentReport(env, 'n1');
    await agentReport(env, 'n2');
    await eventually('blue gone', async () =>
      env.admin.get(pwPath('blue')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    await env.admin.delete(pwPath('red'));
    await eventually('red left the node state spec', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return x.spec?.tunnels[0]?.sessions.length === 0;
    });
    await agentReport(env, 'n1');
    await agentReport(env, 'n2');
    await eventually('red gone', async () =>
      env.admin.get(pwPath('red')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    await eventually('its NAD gone', async () =>
      env.admin.get('/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/red').then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    await env.admin.delete(tunnelPath('t12'));
    await eventually(
      'tunnel left the spec',
      async () => (await env.admin.get<L2TPNodeState>(nodeStatePath('n1'))).spec?.tunnels.length === 0,
    );
    await agentReport(env, 'n1');
    await agentReport(env, 'n2');
    for (const n of ['n1', 'n2']) {
      await eventually(`node state ${n} removed`, async () =>
        env.admin.get(nodeStatePath(n)).then(
          () => false,
          (e: unknown) => isNotFound(e),
        ),
      );
      await eventually(`pod ${n} removed`, async () =>
        env.admin.get(podPath(n)).then(
          () => false,
          (e: unknown) => isNotFound(e),
        ),
      );
    }
  });

  it('handles Node deletion: node state and pod go, the tunnel reports NodeNotFound', async () => {
    await env.admin.create(tunnelPath(), {
      apiVersion: API_VERSION,
      kind: 'L2TPTunnel',
      metadata: { name: 't23' },
      spec: { local: { node: 'n2' }, peer: { node: 'n3' } },
    });
    await eventually('pod on n3', () => env.admin.get(podPath('n3')));
    await env.admin.delete('/api/v1/nodes/n3');
    await eventually('n3 state removed', async () =>
      env.admin.get(nodeStatePath('n3')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    await eventually('n3 pod removed', async () =>
      env.admin.get(podPath('n3')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    const t = await eventually('NodeNotFound', async () => {
      const x = await env.admin.get<L2TPTunnel>(tunnelPath('t23'));
      return ready(x)?.reason === 'NodeNotFound' ? x : undefined;
    });
    assert.equal(ready(t)?.status, 'False');
  });

  it('two replicas elect one leader and fail over', async () => {
    await op!.stop();
    op = undefined;
    const a = await operator(env, { ...SHORT_HOLD, leaderElection: { identity: 'replica-a' } });
    const b = await operator(env, { ...SHORT_HOLD, leaderElection: { identity: 'replica-b' } });
    try {
      await eventually('one leader', async () => a.isLeader() !== b.isLeader());
      await new Promise((r) => setTimeout(r, 1000));
      assert.notEqual(a.isLeader(), b.isLeader(), 'exactly one leader');
      const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
      await leader.stop();
      await eventually('standby takes over', async () => standby.isLeader(), 15_000);
      // the new leader reconciles: a new tunnel gets allocated
      await env.admin.create(tunnelPath(), {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 't12b' },
        spec: { local: { node: 'n1' }, peer: { node: 'n2' } },
      });
      await eventually(
        'new leader allocates',
        async () => (await env.admin.get<L2TPTunnel>(tunnelPath('t12b'))).status?.tunnelID,
      );
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
