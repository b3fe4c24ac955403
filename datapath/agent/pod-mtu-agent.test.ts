// The agent's pass and the pods' MTU: pods are asked to shrink before the backend changes a session
// and to follow after it, and pods that could not follow show in their session's status message
// without failing the session or the pass.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { L2TPNodeState, NodeStateSpec, NodeStateStatus } from '../../lib/api/schemas.js';
import { fixedSource, testAgentOptions, udpTunnel } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { nodeSession } from '../../test/fakes/objects.js';
import { Agent } from './agent.js';
import type { PodMtuPhase, PodMtuProblem, PodMtuTarget } from './pod-mtu-plan.js';

const session = (id: number, name: string, mtu?: number) => ({
  ...nodeSession(name, id, 'demo'),
  peerSessionId: id + 100,
  ...(mtu !== undefined ? { mtu } : {}),
});

const nodeState = (spec: NodeStateSpec): L2TPNodeState => ({
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: 'n1', generation: 1 },
  spec,
});

const started: Agent[] = [];
afterEach(async () => {
  for (const a of started.splice(0)) await a.stop().catch(() => {});
});

describe("the agent's pass and attached pods' MTU", () => {
  it('asks before the backend ("lower", the MTUs it is about to set) and after it ("all")', async () => {
    const backend = new MemoryBackend();
    const calls: { phase: PodMtuPhase; targets: PodMtuTarget[]; sessionsMade: number }[] = [];
    const spec: NodeStateSpec = {
      nodeName: 'n1',
      tunnels: [udpTunnel(1, { sessions: [session(11, 'red', 1400), session(12, 'blue', 9999)] })],
    };
    const agent = new Agent({
      ...testAgentOptions(fixedSource(nodeState(spec)), backend),
      syncPodMtu: async (targets, phase) => {
        calls.push({ phase, targets: [...targets], sessionsMade: backend.sessions.size });
        return new Map();
      },
    });
    started.push(agent);
    await agent.start();
    const red = { pseudowire: { namespace: 'demo', name: 'red' }, ifname: 'l2tpeth11', mtu: 1400 };
    assert.deepEqual(calls, [
      // blue's MTU is refused (more than the underlay carries): its pods are left alone
      { phase: 'lower', targets: [red], sessionsMade: 0 },
      { phase: 'all', targets: [red], sessionsMade: 1 },
    ]);
  });

  it("pods that could not follow: in the session's message, the session stays Up", async () => {
    const backend = new MemoryBackend();
    const written: NodeStateStatus[] = [];
    const spec: NodeStateSpec = {
      nodeName: 'n1',
      tunnels: [udpTunnel(1, { sessions: [session(11, 'red', 1400), session(12, 'blue', 1400)] })],
    };
    const problem: PodMtuProblem = { has: 1446, wants: 1400, why: 'set the Helm value cni.netnsDir to /x' };
    const agent = new Agent({
      ...testAgentOptions(fixedSource(nodeState(spec), written), backend),
      syncPodMtu: async (_t, phase) => (phase === 'all' ? new Map([['demo/red', [problem]]]) : new Map()),
    });
    started.push(agent);
    await agent.start();
    const sessions = written.at(-1)?.sessions ?? [];
    const red = sessions.find((s) => s.pseudowire.name === 'red');
    const blue = sessions.find((s) => s.pseudowire.name === 'blue');
    assert.equal(red?.state, 'Up');
    assert.equal(
      red?.message,
      '1 attached pod keeps MTU 1446 instead of 1400: set the Helm value cni.netnsDir to /x',
    );
    assert.equal(blue?.state, 'Up');
    assert.equal(blue?.message, undefined);
  });

  it('a step that throws is logged; the pass goes on', async () => {
    const backend = new MemoryBackend();
    const written: NodeStateStatus[] = [];
    const spec: NodeStateSpec = {
      nodeName: 'n1',
      tunnels: [udpTunnel(1, { sessions: [session(11, 'red')] })],
    };
    const agent = new Agent({
      ...testAgentOptions(fixedSource(nodeState(spec), written), backend),
      syncPodMtu: async () => {
        throw new Error('state dir unreadable');
      },
    });
    started.push(agent);
    await agent.start();
    assert.equal(backend.sessions.size, 1);
    assert.equal(written.at(-1)?.sessions?.[0]?.state, 'Up');
  });
});
