// The controllers' glue against fake informers fed by an in-memory API: what a user's objects lead
// to (finalizers, allocated IDs and ports, node states, datapath pods, conditions, Events), and that
// each informer's events reach the reconcilers that depend on them. The builders are tested alone
// in render.test.ts; the real API server in test/integration/operator-reconcile.test.ts.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { L2TPNodeState, L2TPTunnel, NodeSessionSpec, Pseudowire } from '../lib/api/schemas.js';
import { silentLogger } from '../lib/log.js';
import { ApiError } from '../lib/kube/client.js';
import { MemoryApi } from '../test/fakes/memory-api.js';
import { pseudowireObject, tunnelObject } from '../test/fakes/objects.js';
import { Controller, DEFAULT_CONTROLLER } from './controller.js';
import type { ControllerConfig } from './reconcilers/context.js';
import { createMetrics } from './metrics.js';
import { DEFAULT_POD_CONFIG, FINALIZER, type PodObject } from './render.js';

const node = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});
const tunnel = tunnelObject('a-to-b');
const pw = (name: string, extra: Partial<Pseudowire['spec']> = {}): Pseudowire =>
  pseudowireObject(name, {
    tunnelRef: { name: 'a-to-b' },
    l2SpecificSublayer: 'Default',
    attachment: { mode: 'Bridge' },
    ...extra,
  });

const running: Controller[] = [];
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
});

/** A controller on `api` (made before anything is seeded: the memory API's objects live in its informers). */
function controllerOn(
  api: MemoryApi,
  cfg: Partial<ControllerConfig> = {},
  metrics = createMetrics(false),
): Controller {
  const ctrl = new Controller(
    api,
    {
      ...DEFAULT_CONTROLLER,
      pod: DEFAULT_POD_CONFIG,
      multus: false,
      workers: 2,
      writeSpacingMs: 500,
      ...cfg,
    },
    silentLogger(),
    metrics,
    api.informers,
  );
  running.push(ctrl);
  return ctrl;
}

async function start(seed: (api: MemoryApi) => void) {
  const api = new MemoryApi();
  const ctrl = controllerOn(api);
  seed(api);
  await ctrl.start();
  return { api, ctrl };
}

/** Waits until the queue has settled (delayed adds included) and the condition holds. */
async function settle(ok: () => boolean, ms = 5000) {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail('the controller did not settle');
}

/**
 * lab/red-wire's session in both nodes' states, reported by their agents, and the pseudowire Ready;
 * with readers of the node states and the pseudowire.
 */
async function redWireUp(api: MemoryApi) {
  const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
  const p = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
  const ready = () => p()?.status?.conditions?.find((c) => c.type === 'Ready');
  await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 1));
  for (const n of ['a', 'b']) await agentReport(api, n);
  await settle(() => ready()?.status === 'True');
  return { ns, p, ready };
}

/**
 * The node state was deleted before the datapath pod: an agent stopped by its pod's deletion then
 * finds no node state and removes the node's devices.
 */
function assertStateBeforePod(api: MemoryApi, n: string) {
  const deletes = api.writes.filter((w) => w.startsWith('delete '));
  const state = deletes.indexOf(`delete l2tpnodestates/${n}`);
  const pod = deletes.findIndex((w) => w.startsWith('delete pods/') && w.endsWith(`-datapath-${n}`));
  assert.ok(state >= 0 && state < pod, `node state deleted before the pod: ${deletes.join(', ')}`);
}

/** Nodes a and b and the tunnels given (default: the fixture's a-to-b, created long ago). */
const seedNodes = (api: MemoryApi, ...tunnels: L2TPTunnel[]) => {
  api.add('nodes', node('a', '10.0.0.1'));
  api.add('nodes', node('b', '10.0.0.2'));
  for (const t of tunnels.length ? tunnels : [tunnel]) api.add('l2tptunnels', t);
};

const seedPair = (api: MemoryApi) => {
  seedNodes(api);
  api.add('pseudowires', pw('red-wire'));
};

/** Created just now, as Kubernetes stamps it: young enough for its waiting status to be held back. */
const justNow = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const youngTunnel = (): L2TPTunnel => ({
  ...tunnel,
  metadata: { ...tunnel.metadata, creationTimestamp: justNow() },
});

/**
 * What an agent writes: node state `name` seen at its current generation, its tunnel Ready, and each
 * of `sessions` (default: every session of its spec) in the state `state` gives its pseudowire.
 */
async function agentReport(
  api: MemoryApi,
  name: string,
  state: (pw: string) => string = () => 'Up',
  sessions?: NodeSessionSpec[],
) {
  const o = api.object<L2TPNodeState>('l2tpnodestates', name)!;
  const t = o.spec!.tunnels[0];
  await api.patch(`/apis/l2tp.kube-l2tp.io/v1alpha1/l2tpnodestates/${name}/status`, {
    status: {
      observedGeneration: o.metadata.generation,
      tunnels: t ? [{ name: t.name, tunnelId: t.tunnelId, state: 'Ready' }] : [],
      sessions: (sessions ?? t?.sessions ?? []).map((x) => ({
        ...x,
        tunnelId: t?.tunnelId ?? 1,
        state: state(x.pseudowire.name),
        mtu: 1446,
      })),
    },
  });
}

describe('Controller glue', () => {
  it('a tunnel and a pseudowire between two nodes: finalizers, IDs, node states and datapath pods', async () => {
    const { api } = await start(seedPair);
    const t = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b');
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    await settle(
      () => ns('a') !== undefined && ns('b') !== undefined && p()?.status?.sessionID !== undefined,
    );
    assert.deepEqual(t()!.metadata.finalizers, [FINALIZER]);
    assert.deepEqual(p()!.metadata.finalizers, [FINALIZER]);
    const st = t()!.status!;
    assert.equal(st.tunnelID, st.peerTunnelID, 'an in-cluster pair gets one ID free on both nodes');
    assert.equal(st.udpPort, st.peerUDPPort);
    assert.equal(st.localAddress, '10.0.0.1');
    assert.equal(st.peerAddress, '10.0.0.2');
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 1));
    const a = ns('a')!.spec!.tunnels[0]!;
    const b = ns('b')!.spec!.tunnels[0]!;
    assert.equal(a.local, '10.0.0.1');
    assert.equal(b.local, '10.0.0.2', 'the peer side is reversed');
    assert.equal(a.sessions[0]!.sessionId, p()!.status!.sessionID);
    assert.deepEqual(a.sessions[0]!.pseudowire, { namespace: 'lab', name: 'red-wire' });
    await settle(() => api.byPlural.get('pods')!.list().length === 2);
    const pod = api.byPlural.get('pods')!.list()[0]!;
    assert.equal(pod.metadata.namespace, DEFAULT_POD_CONFIG.namespace);
    assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'L2TPNodeState');
  });

  it('a pseudowire whose tunnel is missing says so in its conditions and in a Warning Event', async () => {
    const { api } = await start((api) =>
      api.add('pseudowires', pw('orphan', { tunnelRef: { name: 'nope' } })),
    );
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/orphan');
    await settle(() => p()?.status?.conditions !== undefined);
    const ready = p()!.status!.conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.equal(ready.reason, 'TunnelNotFound');
    await settle(() => api.other.some((o) => o.plural === 'events'));
    const ev = api.other.find((o) => o.plural === 'events')!.obj as unknown as {
      reason: string;
      type: string;
      involvedObject: { name: string };
    };
    assert.deepEqual([ev.type, ev.reason, ev.involvedObject.name], ['Warning', 'TunnelNotFound', 'orphan']);
  });

  it('an explicit ID another tunnel holds is an IDConflict, not a second owner', async () => {
    const { api } = await start((api) => {
      const fixed = { ...tunnel.spec, local: { node: 'a', tunnelID: 7 } };
      seedNodes(
        api,
        { ...tunnel, metadata: { name: 'first' }, spec: fixed },
        { ...tunnel, metadata: { name: 'second' }, spec: fixed },
      );
    });
    const cond = (n: string) =>
      api.object<L2TPTunnel>('l2tptunnels', n)?.status?.conditions?.find((c) => c.type === 'Ready');
    await settle(() => cond('first') !== undefined && cond('second') !== undefined);
    const reasons = [cond('first')!.reason, cond('second')!.reason];
    assert.equal(reasons.filter((r) => r === 'IDConflict').length, 1, reasons.join(', '));
  });

  for (const [what, clash] of [
    ['tunnel ID', { tunnelID: 7 }],
    ['UDP port', { udpPort: 17500 }],
  ] as const) {
    it(`a newcomer asking for the ${what} a running tunnel holds is refused; the running one keeps its node states`, async () => {
      // the running tunnel holds the explicit ID (or port) on node a, with a pseudowire up on it
      const first = { ...tunnel, spec: { ...tunnel.spec, local: { node: 'a', ...clash } } };
      const { api } = await start((api) => {
        seedNodes(api, first);
        api.add('pseudowires', pw('red-wire'));
      });
      const { ns, ready } = await redWireUp(api);
      const running = (n: string) => ns(n)?.spec?.tunnels.find((t) => t.name === 'a-to-b');
      const before = ['a', 'b'].map((n) => running(n));
      assert.ok(before.every((t) => t?.sessions.length === 1));
      // a newcomer between a and another node asks for the same on node a
      api.add('nodes', node('c', '10.0.0.3'));
      api.add('l2tptunnels', {
        ...tunnel,
        metadata: { name: 'newcomer' },
        spec: { ...tunnel.spec, local: { node: 'a', ...clash }, peer: { node: 'c' } },
      });
      const cond = (n: string) =>
        api.object<L2TPTunnel>('l2tptunnels', n)?.status?.conditions?.find((c) => c.type === 'Ready');
      await settle(() => cond('newcomer') !== undefined);
      assert.equal(cond('newcomer')!.status, 'False');
      assert.equal(cond('newcomer')!.reason, 'IDConflict');
      assert.match(
        cond('newcomer')!.message ?? '',
        new RegExp(`${what} .* on node a is already used by L2TPTunnel a-to-b`),
      );
      await new Promise((r) => setTimeout(r, 1500));
      // the running tunnel is untouched: still in both node states with its session, still Ready
      assert.deepEqual(
        ['a', 'b'].map((n) => running(n)),
        before,
      );
      assert.equal(cond('a-to-b')!.status, 'True', cond('a-to-b')!.message);
      assert.equal(ready()!.status, 'True');
      // the newcomer reaches no node
      for (const n of ['a', 'c'])
        assert.equal(
          ns(n)?.spec?.tunnels.find((t) => t.name === 'newcomer'),
          undefined,
        );
    });
  }

  it('a running tunnel edited to an ID another holds keeps running as it was, as a pseudowire does', async () => {
    // "other" holds tunnel ID 7 and UDP port 17500 on node a
    const other = {
      ...tunnel,
      metadata: { name: 'other' },
      spec: { ...tunnel.spec, local: { node: 'a', tunnelID: 7, udpPort: 17500 }, peer: { node: 'c' } },
    };
    const { api } = await start((api) => {
      seedNodes(api, tunnel, other);
      api.add('nodes', node('c', '10.0.0.3'));
      api.add('pseudowires', pw('red-wire'));
    });
    const { ns, ready } = await redWireUp(api);
    const entry = (n: string) => ns(n)?.spec?.tunnels.find((t) => t.name === 'a-to-b');
    await settle(() => ['a', 'b'].every((n) => entry(n)?.sessions.length === 1));
    const before = ['a', 'b'].map(entry);
    const cond = (n: string) =>
      api.object<L2TPTunnel>('l2tptunnels', n)?.status?.conditions?.find((c) => c.type === 'Ready');
    for (const clash of [{ tunnelID: 7 }, { udpPort: 17500 }]) {
      await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
        spec: { local: { node: 'a', ...clash } },
      });
      await settle(() => cond('a-to-b')?.reason === 'IDConflict');
      assert.match(cond('a-to-b')!.message ?? '', /on node a is already used by L2TPTunnel other/);
      await new Promise((r) => setTimeout(r, 1500));
      // what it runs stays on its nodes, with the IDs it had; the holder keeps its own
      assert.deepEqual(['a', 'b'].map(entry), before, JSON.stringify(clash));
      assert.equal(ns('a')!.spec!.tunnels.find((t) => t.name === 'other')?.tunnelId, 7);
      assert.equal(cond('a-to-b')!.reason, 'IDConflict');
      assert.equal(ready()!.status, 'True', 'its pseudowire still runs');
      // edited back: Ready again, nothing moved
      await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
        spec: { local: { node: 'a', tunnelID: null, udpPort: null } },
      });
      await settle(() => cond('a-to-b')?.reason !== 'IDConflict');
      assert.deepEqual(['a', 'b'].map(entry), before);
    }
  });

  it('a running pseudowire edited to a session ID another holds keeps its session, and its status says which', async () => {
    const { api } = await start((api) => {
      seedPair(api);
      api.add('pseudowires', pw('blue-wire', { sessionID: 7, peerSessionID: 7 }));
    });
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
    const ready = () => p()?.status?.conditions?.find((c) => c.type === 'Ready');
    const red = (n: string) =>
      ns(n)?.spec?.tunnels[0]?.sessions.find((s) => s.pseudowire?.name === 'red-wire');
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 2));
    for (const n of ['a', 'b']) await agentReport(api, n);
    await settle(() => ready()?.status === 'True');
    const before = ['a', 'b'].map(red);
    const ids = [p()!.status!.sessionID, p()!.status!.peerSessionID];
    assert.ok(
      ids.every((x) => x !== undefined && x !== 7),
      JSON.stringify(ids),
    );
    await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/red-wire', {
      spec: { sessionID: 7 },
    });
    await settle(() => ready()?.reason === 'IDConflict');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(['a', 'b'].map(red), before, 'its session runs as it was');
    assert.deepEqual([p()!.status!.sessionID, p()!.status!.peerSessionID], ids, 'and its status names it');
  });

  describe('IDs an edit replaced', () => {
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const readyOf = (o: L2TPTunnel | Pseudowire | undefined) =>
      o?.status?.conditions?.find((c) => c.type === 'Ready');

    it('a session ID goes to the pseudowire refused it once the agents have removed the old session', async () => {
      const { api } = await start(seedPair);
      const { ns, p } = await redWireUp(api);
      const old = p()!.status!.sessionID!;
      assert.equal(p()!.status!.peerSessionID, old);
      const session = (n: string, name: string) =>
        ns(n)?.spec?.tunnels[0]?.sessions.find((s) => s.pseudowire.name === name);
      const blue = () => api.object<Pseudowire>('pseudowires', 'lab/blue-wire');
      api.add('pseudowires', pw('blue-wire', { sessionID: old, peerSessionID: old }));
      await settle(() => readyOf(blue())?.reason === 'IDConflict');
      await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/red-wire', {
        spec: { sessionID: 9, peerSessionID: 9 },
      });
      await settle(
        () =>
          p()?.status?.sessionID === 9 && ['a', 'b'].every((n) => session(n, 'red-wire')?.sessionId === 9),
      );
      // the agents have not applied the new spec: the old session may still run, whatever brings
      // the pseudowire to its reconciler meanwhile
      await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/red-wire', {
        metadata: { annotations: { touched: 'yes' } },
      });
      await wait(1000);
      assert.equal(readyOf(blue())?.reason, 'IDConflict');
      // applied, but the old session's removal has not succeeded on a: still listed there
      const stale = { ...session('a', 'red-wire')!, sessionId: old };
      await agentReport(api, 'a', undefined, [...ns('a')!.spec!.tunnels[0]!.sessions, stale]);
      await agentReport(api, 'b');
      await wait(1000);
      assert.equal(readyOf(blue())?.reason, 'IDConflict');
      assert.ok(['a', 'b'].every((n) => session(n, 'blue-wire') === undefined));
      // gone from every node: the waiting pseudowire takes the ID
      await agentReport(api, 'a');
      await settle(() => ['a', 'b'].every((n) => session(n, 'blue-wire')?.sessionId === old));
      await settle(() => readyOf(blue())?.reason !== 'IDConflict');
    });

    for (const what of ['tunnelID', 'udpPort'] as const) {
      it(`a tunnel's ${what} goes to the tunnel refused it once the node's agent has applied the edit`, async () => {
        const { api } = await start((api) => {
          seedPair(api);
          api.add('nodes', node('c', '10.0.0.3'));
        });
        const { ns } = await redWireUp(api);
        const t = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b');
        const entry = (n: string, name: string) => ns(n)?.spec?.tunnels.find((x) => x.name === name);
        const old = t()!.status![what]!;
        api.add('l2tptunnels', {
          ...tunnel,
          metadata: { name: 'newcomer' },
          spec: { ...tunnel.spec, local: { node: 'a', [what]: old }, peer: { node: 'c' } },
        });
        const newcomer = () => api.object<L2TPTunnel>('l2tptunnels', 'newcomer');
        await settle(() => readyOf(newcomer())?.reason === 'IDConflict');
        await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
          spec: { local: { node: 'a', tunnelID: 500, udpPort: 17500 } },
        });
        await settle(
          () =>
            t()?.status?.tunnelID === 500 &&
            t()?.status?.udpPort === 17500 &&
            entry('a', 'a-to-b')?.tunnelId === 500 &&
            entry('a', 'a-to-b')?.udpSourcePort === 17500,
        );
        // node a's agent has not applied it: the old tunnel and its socket may still be there (the
        // agent reports no ports: only its report on the new spec says the old one is closed).
        // Something else brings the tunnel to its reconciler meanwhile: that changes nothing.
        await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
          metadata: { annotations: { touched: 'yes' } },
        });
        await wait(1000);
        assert.equal(readyOf(newcomer())?.reason, 'IDConflict');
        assert.equal(entry('a', 'newcomer'), undefined);
        await agentReport(api, 'a');
        const got = () => entry('a', 'newcomer');
        await settle(() => (what === 'tunnelID' ? got()?.tunnelId : got()?.udpSourcePort) === old);
        await settle(() => readyOf(newcomer())?.reason !== 'IDConflict');
      });
    }

    it('a tunnel whose peer moved to another node lets its IDs on the node it left go', async () => {
      const { api } = await start((api) => {
        seedNodes(api);
        api.add('nodes', node('c', '10.0.0.3'));
      });
      const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
      const t = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b');
      await settle(() => ns('b')?.spec?.tunnels[0]?.name === 'a-to-b');
      await agentReport(api, 'b');
      const { peerTunnelID, peerUDPPort } = t()!.status!;
      // a tunnel from b asks for what a-to-b holds there
      api.add('l2tptunnels', {
        ...tunnel,
        metadata: { name: 'from-b' },
        spec: {
          ...tunnel.spec,
          local: { node: 'b', tunnelID: peerTunnelID, udpPort: peerUDPPort },
          peer: { node: 'c' },
        },
      });
      const fromB = () => api.object<L2TPTunnel>('l2tptunnels', 'from-b');
      await settle(() => readyOf(fromB())?.reason === 'IDConflict');
      await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
        spec: { peer: { node: 'c' } },
      });
      await settle(() => ns('c')?.spec?.tunnels.some((x) => x.name === 'a-to-b') === true);
      await settle(() => ns('b')?.spec?.tunnels.length === 0);
      await wait(1000);
      assert.equal(readyOf(fromB())?.reason, 'IDConflict', "b's agent still runs it");
      await agentReport(api, 'b');
      await settle(() => ns('b')?.spec?.tunnels.find((x) => x.name === 'from-b')?.tunnelId === peerTunnelID);
    });
  });

  it('a tunnel refused for an ID another holds takes it once that one is deleted', async () => {
    const fixed = (name: string, peer: string) => ({
      ...tunnel,
      metadata: { name },
      spec: { ...tunnel.spec, local: { node: 'a', tunnelID: 7 }, peer: { node: peer } },
    });
    const { api } = await start((api) => {
      seedNodes(api, fixed('first', 'b'));
      api.add('nodes', node('c', '10.0.0.3'));
    });
    const cond = (n: string) =>
      api.object<L2TPTunnel>('l2tptunnels', n)?.status?.conditions?.find((c) => c.type === 'Ready');
    const entry = (n: string, name: string) =>
      api.object<L2TPNodeState>('l2tpnodestates', n)?.spec?.tunnels.find((t) => t.name === name);
    await settle(() => entry('a', 'first')?.tunnelId === 7);
    api.add('l2tptunnels', fixed('second', 'c'));
    await settle(() => cond('second')?.reason === 'IDConflict');
    await api.delete('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/first');
    // its agent has removed it: the ID is free
    await settle(() => entry('a', 'first') === undefined);
    await agentReport(api, 'a');
    await settle(() => entry('a', 'second')?.tunnelId === 7);
    await settle(() => cond('second')?.reason !== 'IDConflict');
  });

  it('informer events reach the reconcilers: a node address change re-renders the node state', async () => {
    const { api } = await start(seedPair);
    const spec = () => api.object<L2TPNodeState>('l2tpnodestates', 'a')?.spec?.tunnels[0];
    await settle(() => spec()?.local === '10.0.0.1');
    api.byPlural
      .get('nodes')!
      .put('MODIFIED', { ...node('a', '10.0.0.9'), metadata: { name: 'a', uid: 'x' } });
    await settle(() => spec()?.local === '10.0.0.9');
  });

  it('a node with no endpoints left loses its node state, then its datapath pod', async () => {
    const { api } = await start(seedPair);
    await settle(() => api.byPlural.get('pods')!.list().length === 2);
    await api.delete('/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/red-wire');
    await api.delete('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b');
    await settle(
      () =>
        api.byPlural.get('pods')!.list().length === 0 &&
        api.byPlural.get('l2tpnodestates')!.list().length === 0 &&
        api.byPlural.get('l2tptunnels')!.list().length === 0,
    );
    assertStateBeforePod(api, 'a');
  });

  it('a deleted Node: its node state is emptied, and goes with its pod once the agent reports it drained', async () => {
    const { api } = await start(seedPair);
    const ns = () => api.object<L2TPNodeState>('l2tpnodestates', 'b');
    const podOfB = () =>
      api.byPlural
        .get('pods')!
        .list()
        .filter((p) => p.metadata.name.endsWith('-b'));
    await settle(() => podOfB().length === 1 && ns()?.spec?.tunnels.length === 1);
    await agentReport(api, 'b');
    await api.delete('/api/v1/nodes/b');
    await settle(() => ns()?.spec?.tunnels.length === 0);
    // the agent has not said yet that the devices are gone: nothing is deleted under it
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(ns(), 'the node state waits for its agent');
    assert.equal(podOfB().length, 1, 'the datapath pod waits for its agent');
    await agentReport(api, 'b');
    await settle(() => !ns() && podOfB().length === 0);
    assertStateBeforePod(api, 'b');
  });

  it('a deleted Node whose agent never reports: node state and pod go after the teardown timeout', async () => {
    const api = new MemoryApi();
    const ctrl = controllerOn(api, { teardownTimeoutMs: 500 });
    seedPair(api);
    await ctrl.start();
    const ns = () => api.object<L2TPNodeState>('l2tpnodestates', 'b');
    await settle(() => ns()?.spec?.tunnels.length === 1);
    await agentReport(api, 'b');
    const t0 = Date.now();
    await api.delete('/api/v1/nodes/b');
    await settle(() => !ns());
    assert.ok(Date.now() - t0 >= 500, `deleted after ${Date.now() - t0} ms`);
    assertStateBeforePod(api, 'b');
  });

  it('takes the Node owner off node states of earlier versions, so the garbage collector leaves them to it', async () => {
    const { api } = await start(seedPair);
    const ns = () => api.object<L2TPNodeState>('l2tpnodestates', 'a');
    await settle(() => ns()?.spec?.tunnels.length === 1);
    const owner = { apiVersion: 'v1', kind: 'Node', name: 'a', uid: 'uid-a' };
    await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tpnodestates/a', {
      metadata: { ownerReferences: [owner] },
    });
    await settle(() => ns()?.metadata.ownerReferences === undefined);
  });

  it('a new pseudowire is rendered before its status is written, and its status is written once', async () => {
    const young = pw('fresh');
    young.metadata.creationTimestamp = justNow();
    const { api } = await start((api) => {
      seedNodes(api);
      api.add('pseudowires', young);
    });
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const statusWrites = () => api.writes.filter((w) => w.startsWith('patch pseudowires/lab/fresh/status'));
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 1));
    assert.deepEqual(statusWrites(), [], 'the waiting status is held back');
    // both agents report the session up
    for (const n of ['a', 'b']) await agentReport(api, n);
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/fresh');
    await settle(() => p()?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    assert.equal(statusWrites().length, 1, statusWrites().join(', '));
    assert.equal(p()!.status!.sessionID, ns('a')!.spec!.tunnels[0]!.sessions[0]!.sessionId);
  });

  it('a new tunnel is rendered before its status is written, and its status is written once', async () => {
    const { api } = await start((api) => seedNodes(api, youngTunnel()));
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const t = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b')!;
    const statusWrites = () => api.writes.filter((w) => w === 'patch l2tptunnels/a-to-b/status');
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels.length === 1));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(statusWrites(), [], 'the waiting status is held back');
    for (const n of ['a', 'b']) await agentReport(api, n);
    await settle(() => t().status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(statusWrites().length, 1, statusWrites().join(', '));
    // what the status records is what the node states carry
    const [a, b] = ['a', 'b'].map((n) => ns(n)!.spec!.tunnels[0]!);
    const st = t().status!;
    assert.deepEqual(
      [st.tunnelID, st.peerTunnelID, st.udpPort, st.peerUDPPort, st.localAddress, st.peerAddress],
      [a!.tunnelId, b!.tunnelId, a!.udpSourcePort, b!.udpSourcePort, a!.local, b!.local],
    );
  });

  it('an operator restarted before a new tunnel has a status renders the IDs its node states carry', async () => {
    const api = new MemoryApi();
    const make = () => controllerOn(api, { writeSpacingMs: 50 });
    const first = make();
    seedNodes(api, tunnelObject('first'));
    await first.start();
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const entry = (n: string, name: string) => ns(n)?.spec?.tunnels.find((t) => t.name === name);
    await settle(() => entry('a', 'first')?.tunnelId === 1);
    api.add('l2tptunnels', youngTunnel());
    await settle(() => entry('a', 'a-to-b')?.tunnelId === 2 && entry('b', 'a-to-b')?.tunnelId === 2);
    assert.equal(api.object<L2TPTunnel>('l2tptunnels', 'a-to-b')!.status, undefined, 'held back');
    await first.stop();
    // while no operator runs, the first tunnel goes (and with it ID 1 on both nodes)
    api.byPlural.get('l2tptunnels')!.put('DELETED', api.object<L2TPTunnel>('l2tptunnels', 'first')!);
    for (const n of ['a', 'b']) {
      const o = ns(n)!;
      const tunnels = o.spec!.tunnels.filter((t) => t.name !== 'first');
      api.byPlural.get('l2tpnodestates')!.put('MODIFIED', { ...o, spec: { ...o.spec!, tunnels } });
    }
    const writes = api.writes.length;
    // a new operator: its informers list what the API holds
    const held = [...api.byPlural].map(([plural, inf]) => [plural, inf.list()] as const);
    const second = make();
    for (const [plural, objs] of held) for (const o of objs) api.byPlural.get(plural)!.put('ADDED', o);
    await second.start();
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      ['a', 'b'].map((n) => entry(n, 'a-to-b')?.tunnelId),
      [2, 2],
    );
    assert.deepEqual(
      api.writes.slice(writes).filter((w) => w.includes('l2tpnodestates')),
      [],
    );
  });

  it('a burst of pseudowires on a node is one node state write, made once the operator has reached them all', async () => {
    const { api } = await start((api) => seedNodes(api));
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const stateWrites = () => api.writes.filter((w) => /^\w+ l2tpnodestates\/a$/.test(w));
    await settle(() => ns('a') !== undefined);
    assert.equal(ns('a')!.spec!.tunnels.length, 1, 'created with its tunnel, never empty');
    assert.deepEqual(stateWrites(), ['create l2tpnodestates/a']);
    for (let i = 0; i < 40; i++) api.add('pseudowires', pw(`burst-${i}`));
    await settle(() => ns('a')?.spec?.tunnels[0]?.sessions.length === 40);
    assert.deepEqual(stateWrites(), ['create l2tpnodestates/a', 'patch l2tpnodestates/a']);
  });

  it('a tunnel applied with its pseudowires makes each node state once, with all of them', async () => {
    const { api } = await start((api) => seedNodes(api));
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    // the pseudowires come a moment after the tunnel's IDs are allocated (node states made at once
    // would carry the tunnel alone, and be patched again for the pseudowires)
    await settle(() => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b')?.status?.tunnelID !== undefined);
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 5; i++) api.add('pseudowires', pw(`wire-${i}`));
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 5));
    await new Promise((r) => setTimeout(r, 700));
    for (const n of ['a', 'b']) {
      const writes = api.writes.filter((w) => w.endsWith(` l2tpnodestates/${n}`));
      assert.deepEqual(writes, [`create l2tpnodestates/${n}`]);
    }
  });

  it('a Ready pseudowire and its tunnel stay Ready while the agents catch up with another change on their nodes', async () => {
    const { api } = await start(seedPair);
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
    const ready = () => p()?.status?.conditions?.find((c) => c.type === 'Ready');
    const statusWrites = () => api.writes.filter((w) => w === 'patch pseudowires/lab/red-wire/status');
    /** Each agent reports its node state's current generation, every session in it as `state`. */
    const report = async (state: (pw: string) => string) => {
      for (const n of ['a', 'b']) await agentReport(api, n, state);
    };
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 1));
    await report(() => 'Up');
    await settle(() => ready()?.status === 'True');
    const writes = statusWrites().length;
    // another pseudowire on the same nodes: both node states move to a newer generation that their
    // agents have not reported yet
    api.add('pseudowires', pw('blue-wire'));
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 2));
    const gens = ['a', 'b'].map((n) => ns(n)!.metadata.generation);
    assert.ok(['a', 'b'].every((n) => ns(n)!.status!.observedGeneration! < ns(n)!.metadata.generation!));
    // a change of their own metadata makes the first one and the tunnel reconcile during that lag
    const touch = { metadata: { annotations: { touched: 'yes' } } };
    await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/red-wire', touch);
    await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', touch);
    // the tunnel's roll-up (written once settled) takes the new count and stays Ready
    const tun = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b')!.status!;
    await settle(() => tun().pseudowires === 2);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(tun().conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(ready()?.status, 'True', ready()?.message);
    assert.equal(statusWrites().length, writes, statusWrites().join(', '));
    // a report of trouble still moves it
    await report((name) => (name === 'red-wire' ? 'Down' : 'Up'));
    await settle(() => ready()?.status === 'False');
    assert.equal(ready()!.reason, 'EndpointDown');
    assert.deepEqual(
      ['a', 'b'].map((n) => ns(n)!.metadata.generation),
      gens,
    );
  });

  it('a node beyond one node state spreads over more; one left with nothing goes once its agent reports it empty', async () => {
    const api = new MemoryApi();
    const limits = { ...DEFAULT_CONTROLLER.limits, nodeStateItems: 3, nodeStateShards: 3 };
    const ctrl = controllerOn(api, { writeSpacingMs: 50, limits });
    seedPair(api);
    api.add('pseudowires', pw('blue-wire'));
    api.add('pseudowires', pw('green-wire'));
    await ctrl.start();
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const names = (n: string) =>
      ns(n)?.spec?.tunnels.flatMap((t) => t.sessions.map((x) => x.pseudowire.name));
    // the tunnel and two sessions fill the first; the third session goes to a second, with its tunnel
    await settle(() => ns('a.shard-1')?.spec?.tunnels[0]?.sessions.length === 1 && names('a')?.length === 2);
    // a change that touches both (the node's address) writes them together, not one after another
    let inFlight = 0;
    let most = 0;
    const patch = api.patch.bind(api);
    api.patch = async <T>(path: string, body: unknown): Promise<T> => {
      if (!/l2tpnodestates\/a(\.shard-1)?$/.test(path)) return patch<T>(path, body);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 50));
      inFlight--;
      return patch<T>(path, body);
    };
    api.byPlural
      .get('nodes')!
      .put('MODIFIED', { ...node('a', '10.0.0.9'), metadata: { name: 'a', uid: 'x' } });
    await settle(() => ['a', 'a.shard-1'].every((n) => ns(n)?.spec?.tunnels[0]?.local === '10.0.0.9'));
    assert.equal(most, 2, 'both node states written at once');
    api.patch = patch;
    const second = ns('a.shard-1')!;
    assert.equal(second.spec!.nodeName, 'a');
    assert.equal(second.metadata.labels?.['l2tp.kube-l2tp.io/node'], 'a');
    const moved = second.spec!.tunnels[0]!.sessions[0]!;
    // its agent reports the session up there
    const report = (name: string, sessions: NodeSessionSpec[]) =>
      agentReport(api, name, () => 'Up', sessions);
    await report('a.shard-1', [moved]);
    await api.delete(`/apis/l2tp.kube-l2tp.io/v1alpha1/namespaces/lab/pseudowires/${moved.pseudowire.name}`);
    // emptied, but kept while its status still lists the session: the pseudowire's finalizer waits too
    await settle(() => ns('a.shard-1')?.spec?.tunnels.length === 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(ns('a.shard-1'), 'kept until the agent reports it empty');
    assert.ok(api.object<Pseudowire>('pseudowires', `lab/${moved.pseudowire.name}`), 'finalizer holds');
    await report('a.shard-1', []);
    await settle(
      () =>
        ns('a.shard-1') === undefined &&
        api.object<Pseudowire>('pseudowires', `lab/${moved.pseudowire.name}`) === undefined,
    );
    assert.equal(names('a')?.length, 2, 'the first node state keeps its sessions');
  });

  it('a NetworkAttachmentDefinition of its name that the operator did not make is reported, not taken for its own', async () => {
    const api = new MemoryApi();
    const ctrl = controllerOn(api, { multus: true, nadCheckIntervalMs: 200 });
    const nads = '/apis/k8s.cni.cncf.io/v1/namespaces/lab/network-attachment-definitions';
    // a user's macvlan network of the same name: the API holds it, the operator's cache (its own
    // NADs, by label) does not
    let theirs: object | undefined = {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: 'red-wire', namespace: 'lab' },
      spec: { config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}' },
    };
    const get = api.get.bind(api);
    const create = api.create.bind(api);
    api.get = async <T>(path: string): Promise<T> => {
      if (path === '/apis/k8s.cni.cncf.io/v1')
        return { resources: [{ name: 'network-attachment-definitions' }] } as T;
      if (path === `${nads}/red-wire` && theirs) return structuredClone(theirs) as T;
      return get<T>(path);
    };
    api.create = async <T>(path: string, obj: unknown): Promise<T> => {
      if (path === nads && theirs && (obj as Pseudowire).metadata.name === 'red-wire')
        throw new ApiError(409, 'AlreadyExists', 'network-attachment-definitions "red-wire" already exists');
      return create<T>(path, obj);
    };
    seedPair(api);
    await ctrl.start();
    const p = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
    const ready = () => p()?.status?.conditions?.find((c) => c.type === 'Ready');
    await settle(() => ready()?.reason === 'NADConflict');
    assert.match(
      ready()!.message!,
      /NetworkAttachmentDefinition lab\/red-wire exists and was not generated by kube-l2tp/,
    );
    assert.equal(p()!.status!.networkAttachmentDefinition, undefined);
    // the user deletes theirs: the operator makes its own
    theirs = undefined;
    await settle(
      () =>
        api.object('network-attachment-definitions', 'lab/red-wire') !== undefined &&
        p()?.status?.networkAttachmentDefinition === 'red-wire',
    );
  });

  it('a pseudowire its tunnel stops sharing keeps its session IDs until the agents have removed its session', async () => {
    const { api } = await start((api) =>
      seedNodes(api, { ...tunnel, spec: { ...tunnel.spec, allowedNamespaces: ['lab', 'other'] } }),
    );
    api.add('pseudowires', pw('red-wire'));
    const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
    const red = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire');
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 1));
    for (const n of ['a', 'b']) await agentReport(api, n);
    await settle(() => red()?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
    const id = red()!.status!.sessionID!;
    // the admin hands the tunnel to namespace "other", whose pseudowire comes while the agents still
    // run lab's session (its device, and the pods on it)
    await api.patch('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b', {
      spec: { allowedNamespaces: ['other'] },
    });
    await settle(
      () => red()?.status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'TunnelNotAllowed',
    );
    const blue = pw('blue-wire');
    api.add('pseudowires', { ...blue, metadata: { ...blue.metadata, namespace: 'other' } });
    const blueId = () => api.object<Pseudowire>('pseudowires', 'other/blue-wire')?.status?.sessionID;
    await settle(() => blueId() !== undefined);
    assert.notEqual(blueId(), id, "another namespace's pseudowire got a session ID a node still runs");
    // once the agents report lab's session gone, its ID is free again
    const only = (n: string, name: string) =>
      ns(n)
        ?.spec?.tunnels[0]?.sessions.map((x) => x.pseudowire.name)
        .join() === name;
    await settle(() => ['a', 'b'].every((n) => only(n, 'blue-wire')));
    for (const n of ['a', 'b']) await agentReport(api, n);
    await new Promise((r) => setTimeout(r, 1500)); // lab's pseudowire looks again within a second
    const green = pw('green-wire');
    api.add('pseudowires', { ...green, metadata: { ...green.metadata, namespace: 'other' } });
    await settle(() => api.object<Pseudowire>('pseudowires', 'other/green-wire')?.status?.sessionID === id);
  });

  it('a datapath pod that has ended (evicted, or shut down with its node) is replaced', async () => {
    const { api, ctrl } = await start(seedPair);
    const podOfA = () =>
      api.byPlural
        .get('pods')!
        .list()
        .find((p) => p.metadata.name.endsWith('-a'));
    await settle(() => podOfA() !== undefined);
    const ended = {
      phase: 'Failed',
      reason: 'Evicted',
      conditions: [{ type: 'Ready', status: 'False' }],
    };
    // what the operator's pod cache keeps of it: the kubelet does not restart a pod in a final phase
    const transform = (ctrl.pods as unknown as { opts: { transform: (o: object) => PodObject } }).opts
      .transform;
    assert.equal(transform({ ...podOfA()!, status: ended }).status?.phase, 'Failed');
    const uid = podOfA()!.metadata.uid;
    await api.patch(
      `/api/v1/namespaces/${DEFAULT_POD_CONFIG.namespace}/pods/${podOfA()!.metadata.name}/status`,
      {
        status: ended,
      },
    );
    await settle(() => podOfA() !== undefined && podOfA()!.metadata.uid !== uid);
    assert.equal((podOfA() as PodObject).status?.phase, undefined, 'a new pod');
    // one the kubelet refuses (not enough room on the node) ends at once: not replaced in a loop
    const second = podOfA()!.metadata.uid;
    await api.patch(
      `/api/v1/namespaces/${DEFAULT_POD_CONFIG.namespace}/pods/${podOfA()!.metadata.name}/status`,
      {
        status: { ...ended, reason: 'OutOfcpu' },
      },
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(podOfA()?.metadata.uid, second, 'replaced again only after a while');
  });

  it("a datapath pod the API server refuses is explained once in an Event on the node's state", async () => {
    const api = new MemoryApi();
    const create = api.create.bind(api);
    let refusals = 0;
    const refusal = 'pods "kube-l2tp-datapath-a" is forbidden: insufficient quota to match these scopes';
    api.create = async <T>(path: string, obj: unknown): Promise<T> => {
      if (path.endsWith('/pods')) {
        refusals++;
        throw new ApiError(403, 'Forbidden', refusal);
      }
      return create<T>(path, obj);
    };
    const ctrl = controllerOn(api);
    seedPair(api);
    await ctrl.start();
    // retried with the queue's backoff: the same reason is one Event
    await settle(() => refusals >= 3);
    const events = api.other
      .filter((o) => o.plural === 'events')
      .map(
        (o) =>
          o.obj as unknown as {
            reason: string;
            message: string;
            involvedObject: { kind: string; name: string };
          },
      )
      .filter((e) => e.reason === 'DatapathPodRefused');
    const onA = events.filter((e) => e.involvedObject.name === 'a');
    assert.equal(onA.length, 1, JSON.stringify(events));
    assert.equal(onA[0]!.involvedObject.kind, 'L2TPNodeState');
    assert.match(
      onA[0]!.message,
      /^datapath pod kube-l2tp\/kube-l2tp-datapath-a was not created: .*insufficient quota/,
    );
  });

  it('a tunnel for which a node has no UDP port left says so in its status', async () => {
    const api = new MemoryApi();
    const ctrl = controllerOn(api, { ranges: { ...DEFAULT_CONTROLLER.ranges, port: [17000, 17000] } });
    seedNodes(api, tunnelObject('first'), tunnelObject('second'));
    await ctrl.start();
    const ready = (n: string) =>
      api.object<L2TPTunnel>('l2tptunnels', n)?.status?.conditions?.find((c) => c.type === 'Ready');
    await settle(() => ready('first') !== undefined && ready('second') !== undefined);
    const full = [ready('first')!, ready('second')!].filter((c) => c.reason === 'IDsExhausted');
    assert.equal(full.length, 1, JSON.stringify([ready('first'), ready('second')]));
    assert.match(full[0]!.message!, /no UDP port is free on node a \(17000-17000 are all in use\)/);
  });

  it('a pseudowire whose tunnel went says TunnelNotFound once it is gone', async () => {
    const { api } = await start(seedPair);
    const { ns, p, ready } = await redWireUp(api);
    await api.delete('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b');
    // the agents remove the tunnel and its session, and say so
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels.length === 0));
    for (const n of ['a', 'b']) await agentReport(api, n);
    await settle(() => api.object('l2tptunnels', 'a-to-b') === undefined);
    await settle(() => ready()?.reason === 'TunnelNotFound');
    assert.deepEqual(p()!.status!.endpoints, undefined, 'endpoints of a session that is gone');
    assert.equal(p()!.status!.mtu, undefined);
  });

  it('a pseudowire whose session its agents removed stops saying it is up', async () => {
    // another controller's finalizer keeps the deleted tunnel after ours is gone
    const held = { ...tunnel, metadata: { ...tunnel.metadata, finalizers: ['example.com/hold'] } };
    const { api } = await start((api) => {
      seedNodes(api, held);
      api.add('pseudowires', pw('red-wire'));
    });
    const { ns, p, ready } = await redWireUp(api);
    await api.delete('/apis/l2tp.kube-l2tp.io/v1alpha1/l2tptunnels/a-to-b');
    await settle(() => ready()?.reason === 'TunnelDeleting');
    await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels.length === 0));
    for (const n of ['a', 'b']) await agentReport(api, n);
    const endpoints = () => p()!.status!.endpoints ?? [];
    await settle(() => endpoints().length === 2 && endpoints().every((e) => e.state === 'Pending'));
  });

  it('a tunnel between nodes of an IPv6-only cluster takes their IPv6 InternalIPs', async () => {
    const { api } = await start((api) => {
      api.add('nodes', node('a', 'fd00::1'));
      api.add('nodes', node('b', 'fd00::2'));
      api.add('l2tptunnels', tunnel);
    });
    const t = () => api.object<L2TPTunnel>('l2tptunnels', 'a-to-b');
    const ready = () => t()?.status?.conditions?.find((c) => c.type === 'Ready');
    await settle(() => ready() !== undefined);
    assert.notEqual(ready()!.reason, 'NoAddress', ready()!.message);
    assert.deepEqual([t()!.status!.localAddress, t()!.status!.peerAddress], ['fd00::1', 'fd00::2']);
  });

  describe('cookie Secrets (read on demand, never watched)', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secretPath = '/api/v1/namespaces/lab/secrets/wire-cookie';
    const secret = (cookie: string) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'wire-cookie', namespace: 'lab' },
      data: { cookie: b64(cookie) },
    });
    const withCookie = () =>
      pw('red-wire', {
        cookie: { secretRef: { name: 'wire-cookie', key: 'cookie' } },
        peerCookie: { value: 'cafef00d' },
      });
    /** A controller that re-reads Secrets every 200 ms; the memory API serves Secrets too. */
    async function startWithSecrets(seed: (api: MemoryApi) => void, metrics = createMetrics(false)) {
      const api = new MemoryApi();
      const ctrl = controllerOn(api, { secretRecheckMs: 200 }, metrics);
      api.informers({ path: '/api/v1/secrets', apiVersion: 'v1', kind: 'Secret' }, silentLogger());
      seed(api);
      await ctrl.start();
      return api;
    }
    const session = (api: MemoryApi, n: string) =>
      api.object<L2TPNodeState>('l2tpnodestates', n)?.spec?.tunnels[0]?.sessions[0];
    const ready = (api: MemoryApi) =>
      api
        .object<Pseudowire>('pseudowires', 'lab/red-wire')
        ?.status?.conditions?.find((c) => c.type === 'Ready');

    it('at rest, a Secret is read once a period and the pseudowires naming it are not reconciled again', async () => {
      const metrics = createMetrics(false);
      const gets: string[] = [];
      const api = await startWithSecrets((api) => {
        seedNodes(api);
        api.add('secrets', secret('0a0b0c0d'));
        for (let i = 0; i < 20; i++)
          api.add('pseudowires', { ...withCookie(), metadata: { name: `wire-${i}`, namespace: 'lab' } });
        const get = api.get.bind(api);
        api.get = <T>(path: string): Promise<T> => {
          if (path.includes('/secrets/')) gets.push(path);
          return get<T>(path);
        };
      }, metrics);
      const ns = (n: string) => api.object<L2TPNodeState>('l2tpnodestates', n);
      await settle(() => ['a', 'b'].every((n) => ns(n)?.spec?.tunnels[0]?.sessions.length === 20));
      for (const n of ['a', 'b']) await agentReport(api, n);
      const pws = () => api.byPlural.get('pseudowires')!.list() as Pseudowire[];
      const ready = () =>
        pws().filter((p) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True').length;
      await settle(() => ready() === 20);
      await new Promise((r) => setTimeout(r, 1000)); // the roll-ups settle
      const pwReconciles = async () =>
        (await metrics.reconciles.get()).values
          .filter((v) => v.labels.controller === 'pw')
          .reduce((s, v) => s + v.value, 0);
      const [r0, g0] = [await pwReconciles(), gets.length];
      // ten periods of the Secret read going stale; nothing changes
      await new Promise((r) => setTimeout(r, 2000));
      const [r1, g1] = [await pwReconciles(), gets.length];
      assert.equal(r1 - r0, 0, 'pseudowires reconciled again while their Secret stayed the same');
      assert.ok(
        g1 - g0 >= 3 && g1 - g0 <= 12,
        `one read of the Secret a period, not one per pseudowire: ${g1 - g0}`,
      );
      assert.ok(
        gets.every((g) => g === `${secretPath}?resourceVersion=0`),
        gets[0],
      );
      // a rotation reaches every pseudowire naming it
      await api.patch(secretPath, { data: { cookie: b64('0102030405060708') } });
      await settle(
        () =>
          ns('a')!.spec!.tunnels[0]!.sessions.every((x) => x.cookie === '0102030405060708') &&
          ns('b')!.spec!.tunnels[0]!.sessions.every((x) => x.peerCookie === '0102030405060708'),
      );
    });

    it('a Pseudowire applied before its Secret comes up once the Secret exists', async () => {
      const api = await startWithSecrets((api) => {
        seedNodes(api);
        api.add('pseudowires', withCookie());
      });
      await settle(() => ready(api)?.reason === 'CookieUnavailable');
      // the agents report the tunnel (no session yet): nothing else is going to change on these nodes
      await settle(() => ['a', 'b'].every((n) => api.object('l2tpnodestates', n)));
      for (const n of ['a', 'b']) await agentReport(api, n);
      api.add('secrets', secret('0a0b0c0d'));
      await settle(
        () => session(api, 'a')?.cookie === '0a0b0c0d' && session(api, 'b')?.peerCookie === '0a0b0c0d',
      );
      assert.equal(session(api, 'a')!.peerCookie, 'cafef00d');
      await settle(() => ready(api)?.reason !== 'CookieUnavailable');
    });

    it('a rotated Secret reaches both node states; a deleted one takes the session off, saying why', async () => {
      const api = await startWithSecrets((api) => {
        seedNodes(api);
        api.add('secrets', secret('0a0b0c0d'));
        api.add('pseudowires', withCookie());
      });
      await settle(
        () => session(api, 'a')?.cookie === '0a0b0c0d' && session(api, 'b')?.peerCookie === '0a0b0c0d',
      );
      // the agents report the session up, and then nothing more (a node whose counters are not in
      // its status, or whose status has not changed, writes none)
      for (const n of ['a', 'b']) await agentReport(api, n);
      await settle(() => ready(api)?.status === 'True');
      await api.patch(secretPath, { data: { cookie: b64('0102030405060708') } });
      await settle(
        () =>
          session(api, 'a')?.cookie === '0102030405060708' &&
          session(api, 'b')?.peerCookie === '0102030405060708',
      );
      await api.delete(secretPath);
      await settle(() => ready(api)?.reason === 'CookieUnavailable');
      await settle(() => ['a', 'b'].every((n) => session(api, n) === undefined));
      // the agents remove the session: the status stops saying it is up
      for (const n of ['a', 'b']) await agentReport(api, n);
      const endpoints = () => api.object<Pseudowire>('pseudowires', 'lab/red-wire')!.status!.endpoints ?? [];
      await settle(() => endpoints().length === 2 && endpoints().every((e) => e.state === 'Pending'));
    });
  });
});
