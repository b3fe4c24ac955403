// Drops that happen before a packet's session is known (an unknown session ID: the peer's
// peerSessionId is wrong; truncated, control, bad version, bad checksum) are counted by the backend
// per tunnel. They are the first thing to look at when a session receives nothing, so the agent
// exports them with the tunnel's receive count.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { L2TPNodeState } from '../../lib/api/schemas.js';
import { fixedSource, testAgentOptions, udpTunnel } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import type { TunnelCounters } from '../backend/types.js';
import { Agent } from './agent.js';

const obj: L2TPNodeState = {
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: 'n1', generation: 1 },
  spec: {
    nodeName: 'n1',
    tunnels: [udpTunnel(7)],
  },
};

class CountingBackend extends MemoryBackend {
  async tunnelCounters(tunnelId: number): Promise<TunnelCounters | undefined> {
    return tunnelId === 7 ? { rxPackets: 12, drops: { unknownSession: 9, truncated: 2 } } : undefined;
  }
}

const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => {});
});

describe('tunnel-level receive counters', () => {
  it('are exported per tunnel and drop reason', async () => {
    const source = fixedSource(obj);
    const opts = testAgentOptions(source, new CountingBackend());
    const agent = new Agent(opts);
    agents.push(agent);
    await agent.start();
    const text = await opts.metrics.registry.metrics();
    assert.match(text, /kube_l2tp_tunnel_rx_packets_total\{tunnel="7",name="a-to-b"\} 12/);
    assert.match(text, /kube_l2tp_tunnel_drops_total\{tunnel="7",name="a-to-b",reason="unknownSession"\} 9/);
    assert.match(text, /kube_l2tp_tunnel_drops_total\{tunnel="7",name="a-to-b",reason="truncated"\} 2/);
  });
});
