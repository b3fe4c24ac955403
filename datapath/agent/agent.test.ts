// Agent.teardown (an uninstall) against Agent.stop (any other stop): teardown releases the attachment
// bridge of every pseudowire it served and closes the backend removing its devices; stop keeps both,
// so a restarted agent adopts them. Both stop reconciling and the watch. The SIGTERM decision reads
// the node state from the API, not the watch's copy, so a mark set just before the delete counts.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { PseudowireRef } from '../../lib/agent-protocol.js';
import type { L2TPNodeState, NodeStateSpec, NodeStateStatus } from '../../lib/api/schemas.js';
import { testAgentOptions } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { nodeSession } from '../../test/fakes/objects.js';
import { Agent, type AgentOptions } from './agent.js';
import type { NodeStateSource } from './nodestate-source.js';

const session = (id: number, name: string) => ({ ...nodeSession(name, id, 'demo'), peerSessionId: id + 100 });

const spec: NodeStateSpec = {
  nodeName: 'n1',
  tunnels: [
    {
      name: 'a-to-b',
      tunnelId: 1,
      peerTunnelId: 2,
      encap: 'udp',
      local: '10.0.0.1',
      remote: '10.0.0.2',
      udpSourcePort: 1701,
      udpDestinationPort: 1701,
      udpChecksum: true,
      sessions: [session(11, 'red-wire'), session(12, 'blue-wire')],
    },
  ],
};

/** A node-state source whose object the test changes, firing the watch like an API event would. */
function fakeSource(initial: L2TPNodeState | undefined) {
  const state = {
    obj: initial,
    reads: [] as (boolean | undefined)[],
    written: [] as NodeStateStatus[],
    stopped: false,
    failReads: false,
    onChange: undefined as (() => void) | undefined,
  };
  const source: NodeStateSource = {
    async get(o) {
      state.reads.push(o?.fresh);
      if (state.failReads) throw new Error('apiserver unreachable');
      return state.obj ? [state.obj] : [];
    },
    watch(onChange) {
      state.onChange = onChange;
    },
    async writeStatus(_name, st) {
      state.written.push(st);
    },
    stop() {
      state.stopped = true;
    },
  };
  return { source, state };
}

const nodeState = (s: NodeStateSpec, generation = 1): L2TPNodeState => ({
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: 'n1', generation },
  spec: s,
});

// A failed assertion must not leave an agent's resync timer holding the test process open.
const started: Agent[] = [];
afterEach(async () => {
  for (const a of started.splice(0)) await a.stop().catch(() => {});
});

function fixture(o: Partial<AgentOptions> = {}, s: NodeStateSpec = spec) {
  const { source, state } = fakeSource(nodeState(s));
  const backend = new MemoryBackend();
  const released: string[] = [];
  const agent = new Agent({
    ...testAgentOptions(source, backend),
    onPseudowireGone: async (r: PseudowireRef) => {
      released.push(`${r.namespace}/${r.name}`);
    },
    ...o,
  });
  started.push(agent);
  return { agent, backend, released, reads: state.reads, watch: state, state };
}

describe('Agent stop and teardown', () => {
  it('teardown releases every pseudowire bridge and removes the devices', async () => {
    const f = fixture();
    await f.agent.start();
    assert.equal(f.backend.sessions.size, 2);
    await f.agent.teardown();
    assert.deepEqual(f.released.sort(), ['demo/blue-wire', 'demo/red-wire']);
    assert.deepEqual(f.backend.closed, [{ keepDevices: false }]);
    assert.equal(f.backend.sessions.size, 0);
    assert.equal(f.watch.stopped, true);
    const passes = f.agent.reconcilePasses;
    await f.agent.kick();
    assert.equal(f.agent.reconcilePasses, passes, 'no reconcile after teardown');
  });

  it('a bridge that cannot be released does not stop the teardown', async () => {
    const f = fixture();
    await f.agent.start();
    const agent = f.agent as unknown as { o: { onPseudowireGone: (r: PseudowireRef) => Promise<unknown> } };
    agent.o.onPseudowireGone = async () => {
      throw new Error('EBUSY');
    };
    await f.agent.teardown();
    assert.deepEqual(f.backend.closed, [{ keepDevices: false }]);
  });

  it('stop keeps devices and bridges for the next agent', async () => {
    const f = fixture();
    await f.agent.start();
    await f.agent.stop();
    assert.deepEqual(f.released, []);
    assert.deepEqual(f.backend.closed, [{ keepDevices: true }]);
    assert.equal(f.backend.sessions.size, 2);
    assert.equal(f.watch.stopped, true);
  });

  it('the SIGTERM read of the node shards goes to the API, not the watch copy', async () => {
    const f = fixture();
    await f.agent.start();
    f.reads.length = 0;
    await f.agent.nodeShards();
    assert.deepEqual(f.reads, [true]);
    await f.agent.stop();
  });
});

describe('Agent glue: options and the node-state source reach the reconcile', () => {
  const mtus = (b: MemoryBackend) => [...b.specs.values()].map((x) => x.mtu);
  const withMtu = (mtu: number): NodeStateSpec => ({
    ...spec,
    tunnels: spec.tunnels.map((t) => ({
      ...t,
      sessions: [{ ...session(11, 'red-wire'), mtu }, session(12, 'blue-wire')],
    })),
  });

  it('MTU policy "fixed": sessions without an MTU get fixedMtu, an explicit one stays', async () => {
    const f = fixture({ fixedMtu: 1400 }, withMtu(1300));
    await f.agent.start();
    assert.equal(f.backend.specs.get('1/11')?.mtu, 1300);
    assert.equal(f.backend.specs.get('1/12')?.mtu, 1400);
    assert.deepEqual(
      f.state.written.at(-1)?.sessions?.map((x) => x.mtu),
      [1300, 1400],
      'status reports the MTU set',
    );
    await f.agent.stop();
  });

  it('without a fixed MTU the MTU is derived from underlayMtu', async () => {
    const f = fixture({ underlayMtu: 9000 });
    await f.agent.start();
    assert.deepEqual(mtus(f.backend), [8946, 8946]);
    await f.agent.stop();
    const d = fixture();
    await d.agent.start();
    assert.deepEqual(mtus(d.backend), [1446, 1446], 'default underlay 1500');
    await d.agent.stop();
  });

  it('a watch event reconciles the changed spec, and a session that left releases its bridge', async () => {
    const f = fixture();
    await f.agent.start();
    const one = structuredClone(spec);
    one.tunnels[0]!.sessions = [session(11, 'red-wire')];
    f.state.obj = nodeState(one, 2);
    f.state.onChange?.();
    await f.agent.kick();
    assert.deepEqual([...f.backend.sessions.keys()], ['1/11']);
    assert.deepEqual(f.released, ['demo/blue-wire']);
    assert.equal(f.state.written.at(-1)?.observedGeneration, 2);
    await f.agent.stop();
  });

  it('every pass, a read error excepted, offers the carried pseudowires to the orphan-bridge sweep', async () => {
    const passes: string[][] = [];
    const f = fixture({
      releaseOrphanBridges: async (carried) => {
        passes.push(
          carried.map((c) => `${c.pseudowire.namespace}/${c.pseudowire.name}@${c.sessionId}`).sort(),
        );
      },
    });
    await f.agent.start();
    assert.deepEqual(passes, [['demo/blue-wire@12', 'demo/red-wire@11']]);
    f.state.failReads = true;
    await f.agent.kick();
    assert.equal(passes.length, 1, 'no sweep without the node state: never tear down on a read error');
    f.state.failReads = false;
    f.state.obj = undefined;
    await f.agent.kick();
    assert.deepEqual(passes.at(-1), [], 'node state gone: no pseudowire is carried');
    await f.agent.stop();
  });

  it('status carries the backend, its reason and the agent version', async () => {
    const f = fixture({ backendReason: 'auto: kernel L2TP unavailable', version: '9.9.9' });
    await f.agent.start();
    const st = f.state.written.at(-1)!;
    assert.equal(st.backend, 'userspace');
    assert.equal(st.backendReason, 'auto: kernel L2TP unavailable');
    assert.equal(st.agentVersion, '9.9.9');
    await f.agent.stop();
  });

  it('a read error keeps the datapath; a node state that is gone removes it', async () => {
    const f = fixture();
    await f.agent.start();
    f.state.failReads = true;
    await f.agent.kick();
    assert.equal(f.backend.sessions.size, 2);
    f.state.failReads = false;
    f.state.obj = undefined;
    await f.agent.kick();
    assert.equal(f.backend.sessions.size, 0);
    await f.agent.stop();
  });

  it('probeUnderlay reaches the reconcile: an outage reports the sessions Down', async () => {
    const f = fixture({ probeUnderlay: async () => 'no route to 10.0.0.2' });
    await f.agent.start();
    const st = f.state.written.at(-1)!;
    assert.deepEqual(
      st.sessions?.map((x) => x.state),
      ['Down', 'Down'],
    );
    assert.equal(f.backend.sessions.size, 2, 'sessions stay configured through the outage');
    await f.agent.stop();
  });
});
