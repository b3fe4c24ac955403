// Agent.teardown (an uninstall) against Agent.stop (any other stop): teardown releases the attachment
// bridge of every pseudowire it served and closes the backend removing its devices; stop keeps both,
// so a restarted agent adopts them. Both stop reconciling and the watch. The SIGTERM decision reads
// the node state from the API, not the watch's copy, so a mark set just before the delete counts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PseudowireRef } from '../../lib/agent-protocol.js';
import type { L2TPNodeState, NodeStateSpec } from '../../lib/api/schemas.js';
import { silentLogger } from '../../lib/log.js';
import type { Backend, ObservedSession, ObservedTunnel, SessionSpec, TunnelSpec } from '../backend/types.js';
import { Agent } from './agent.js';
import { createAgentMetrics } from './metrics.js';
import type { NodeStateSource } from './nodestate-source.js';

class MemoryBackend implements Backend {
  readonly kind = 'userspace' as const;
  tunnels = new Map<number, ObservedTunnel>();
  sessions = new Map<string, ObservedSession>();
  closed: { keepDevices: boolean }[] = [];
  async listTunnels() {
    return [...this.tunnels.values()];
  }
  async listSessions() {
    return [...this.sessions.values()];
  }
  async ensureTunnel(t: TunnelSpec) {
    this.tunnels.set(t.tunnelId, { tunnelId: t.tunnelId, owned: true });
  }
  async deleteTunnel(id: number) {
    this.tunnels.delete(id);
  }
  async ensureSession(s: SessionSpec) {
    this.sessions.set(`${s.tunnelId}/${s.sessionId}`, {
      tunnelId: s.tunnelId,
      sessionId: s.sessionId,
      ifname: s.ifname,
      up: true,
      owned: true,
    });
  }
  async deleteSession(t: number, s: number) {
    this.sessions.delete(`${t}/${s}`);
  }
  async counters() {
    return undefined;
  }
  async allCounters() {
    return new Map();
  }
  async close(o: { keepDevices: boolean }) {
    this.closed.push(o);
    if (!o.keepDevices) {
      this.sessions.clear();
      this.tunnels.clear();
    }
  }
}

const session = (id: number, name: string) => ({
  pseudowire: { namespace: 'demo', name },
  sessionId: id,
  peerSessionId: id + 100,
  ifname: `l2tpeth${id}`,
  l2specType: 'default' as const,
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mode: 'bridge' as const,
});

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

function fixture() {
  const obj: L2TPNodeState = {
    apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
    kind: 'L2TPNodeState',
    metadata: { name: 'n1', generation: 1 },
    spec,
  };
  const reads: (boolean | undefined)[] = [];
  const watch = { stopped: false };
  const source: NodeStateSource = {
    async get(o) {
      reads.push(o?.fresh);
      return obj;
    },
    watch() {},
    async writeStatus() {},
    stop() {
      watch.stopped = true;
    },
  };
  const backend = new MemoryBackend();
  const released: string[] = [];
  const agent = new Agent({
    nodeName: 'n1',
    source,
    backend,
    backendReason: 'test',
    metrics: createAgentMetrics('userspace', 'test'),
    logger: silentLogger(),
    version: 'test',
    resyncMs: 3_600_000,
    onPseudowireGone: async (r: PseudowireRef) => {
      released.push(`${r.namespace}/${r.name}`);
    },
  });
  return { agent, backend, released, reads, watch };
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

  it('the SIGTERM read of the node state goes to the API, not the watch copy', async () => {
    const f = fixture();
    await f.agent.start();
    f.reads.length = 0;
    await f.agent.nodeState();
    assert.deepEqual(f.reads, [true]);
    await f.agent.stop();
  });
});
