// A pass the backend cannot complete (its listing of what exists fails: a netlink dump interrupted,
// a map read refused) is a failed pass, not a failed agent: the error is logged, counted and shown
// in status, the datapath stays as it is, and the next pass converges.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { L2TPNodeState, NodeStateSpec, NodeStateStatus } from '../../lib/api/schemas.js';
import { fixedSource, testAgentOptions, udpTunnel } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { Agent } from './agent.js';

const spec: NodeStateSpec = {
  nodeName: 'n1',
  tunnels: [
    udpTunnel(1, {
      sessions: [
        {
          pseudowire: { namespace: 'demo', name: 'red-wire' },
          sessionId: 11,
          peerSessionId: 111,
          ifname: 'l2tpeth11',
          l2specType: 'default',
          sendSequence: false,
          requireSequence: false,
          reorderTimeoutMs: 0,
          mode: 'bridge',
        },
      ],
    }),
  ],
};

const obj: L2TPNodeState = {
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: 'n1', generation: 3 },
  spec,
};

/** A memory backend whose listing fails while `failing` is set. */
class FlakyBackend extends MemoryBackend {
  failing = false;
  override async listSessions() {
    if (this.failing) throw new Error('netlink dump interrupted (EINTR)');
    return super.listSessions();
  }
}

const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => {});
});

describe('a pass the backend cannot complete', () => {
  it('is reported in status and retried; it neither rejects nor tears anything down', async () => {
    const written: NodeStateStatus[] = [];
    const source = fixedSource(obj, written);
    const backend = new FlakyBackend();
    const opts = testAgentOptions(source, backend);
    const agent = new Agent(opts);
    agents.push(agent);
    await agent.start();
    assert.equal(backend.sessions.size, 1);

    backend.failing = true;
    await agent.kick(); // rejected before: an unhandled rejection ends the agent's process
    assert.equal(backend.sessions.size, 1, 'what exists stays');
    const st = written.at(-1)!;
    assert.match(st.lastError?.message ?? '', /netlink dump interrupted/);
    const ready = st.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.equal(ready?.reason, 'ReconcileFailed');
    assert.match(ready?.message ?? '', /netlink dump interrupted/);
    const metrics = await opts.metrics.registry.getSingleMetricAsString('kube_l2tp_agent_reconciles_total');
    assert.match(metrics, /result="error"} 1/);

    backend.failing = false;
    await agent.kick();
    const after = written.at(-1)!;
    assert.equal(after.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(after.sessions?.[0]?.state, 'Up');
  });
});

describe('a session that fails on every pass', () => {
  it('keeps the time its error began, so the status is not written again at rest', async () => {
    const written: NodeStateStatus[] = [];
    const backend = new FlakyBackend();
    backend.failSession.add(11);
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const agent = new Agent({
      // the node state as the API would return it: with the status last written
      ...testAgentOptions(
        {
          ...fixedSource(obj, written),
          get: async () => [{ ...obj, ...(written.length ? { status: written.at(-1)! } : {}) }],
        },
        backend,
      ),
      now: () => new Date((clock += 10_000)),
    });
    agents.push(agent);
    await agent.start();
    const first = written.at(-1)!;
    assert.match(first.lastError?.message ?? '', /EEXIST session 11/);
    const writes = written.length;
    await agent.kick();
    await agent.kick();
    assert.equal(written.length, writes, 'an unchanged failure is not written again');

    // another error is news: written, with its own time
    backend.failSession.clear();
    backend.failing = true;
    await agent.kick();
    assert.equal(written.length, writes + 1);
    const other = written.at(-1)!.lastError!;
    assert.notEqual(other.time, first.lastError?.time);

    // the same error again after a clean pass came back: its time says when
    backend.failing = false;
    await agent.kick();
    assert.deepEqual(written.at(-1)!.lastError, other, 'kept after recovery');
    backend.failing = true;
    await agent.kick();
    assert.equal(written.at(-1)!.lastError?.message, other.message);
    assert.ok(written.at(-1)!.lastError!.time > other.time, 'a failure that came back has a new time');
  });
});
