// A kernel tunnel carries no ownership marker: the kernel backend knows a tunnel as ours when this
// process made or adopted it, or when it holds one of our marked sessions. After an agent restart,
// a tunnel of ours without sessions (an L2TPTunnel whose pseudowires are gone, or not made yet) reads
// as someone else's. The agent's own status says which tunnels it had up: when such a tunnel leaves
// the spec while the agent was down, the new agent removes it instead of leaving it (and its UDP
// port) on the node for good; a tunnel it never reported stays.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { L2TPNodeState } from '../../lib/api/schemas.js';
import { fixedSource, testAgentOptions, udpTunnel } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { Agent } from './agent.js';

const obj: L2TPNodeState = {
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: 'n1', generation: 4 },
  spec: {
    nodeName: 'n1',
    tunnels: [udpTunnel(1, { name: 'kept' })],
  },
  // what the agent before the restart wrote: tunnel 9 was one of its own, up
  status: {
    observedGeneration: 3,
    backend: 'kernel',
    tunnels: [
      { name: 'kept', tunnelId: 1, state: 'Ready' },
      { name: 'gone', tunnelId: 9, state: 'Ready' },
    ],
    sessions: [],
  },
};

const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop().catch(() => {});
});

describe('tunnels the backend cannot mark as ours', () => {
  it('one this agent reported up before a restart is removed once it leaves the spec; a foreign one stays', async () => {
    const source = fixedSource(obj);
    const backend = new MemoryBackend();
    // as the kernel backend lists them in a new process: no sessions, so no sign of ownership
    backend.tunnels.set(1, { tunnelId: 1, owned: false });
    backend.tunnels.set(9, { tunnelId: 9, owned: false });
    backend.tunnels.set(10, { tunnelId: 10, owned: false });
    const agent = new Agent(testAgentOptions(source, backend));
    agents.push(agent);
    await agent.start();
    assert.deepEqual([...backend.tunnels.keys()].sort(), [1, 10]);
    assert.ok(backend.calls.includes('delete tunnel 9'));
  });
});
