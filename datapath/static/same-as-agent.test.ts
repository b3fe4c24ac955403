// Static mode and the agent are one mechanism: for the same pseudowires (a static file, and the
// node-state spec the operator would write for them) both leave the same tunnels and session devices
// in the backend: IDs, ports, cookies, sublayer, sequencing, names, MTU.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { L2TPNodeState, NodeSessionSpec, NodeStateSpec } from '../../lib/api/schemas.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { fixedSource, testAgentOptions } from '../../test/fakes/agent-options.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { Agent } from '../agent/agent.js';
import type { BackendFault } from '../backend/types.js';
import { parseStaticConfig } from './config.js';
import type { PlanEnv } from './plan.js';
import { failureSummary, runStatic } from './run.js';
import { EXAMPLE_FILE } from './testdata.js';

const session = (
  s: Partial<NodeSessionSpec> & Pick<NodeSessionSpec, 'sessionId' | 'peerSessionId' | 'ifname'>,
) => ({
  pseudowire: { namespace: 'demo', name: `pw-${s.sessionId}` },
  l2specType: 'default' as const,
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mode: 'bridge' as const,
  ...s,
});

/** What the operator would write for the same pseudowires (static mode names l2tpethN in file order). */
const SPEC: NodeStateSpec = {
  nodeName: 'n1',
  tunnels: [
    {
      name: 'a-to-b',
      tunnelId: 42,
      peerTunnelId: 45,
      encap: 'udp',
      local: '10.0.0.1',
      remote: '10.0.0.2',
      udpSourcePort: 5000,
      udpDestinationPort: 5001,
      udpChecksum: false,
      sessions: [
        session({
          sessionId: 128,
          peerSessionId: 5196755,
          ifname: 'l2tpeth0',
          cookie: '0102030405060708',
          peerCookie: '1112131415161718',
        }),
        session({ sessionId: 129, peerSessionId: 5196756, ifname: 'custom0', l2specType: 'none', mtu: 1400 }),
      ],
    },
    {
      name: 'a-to-c',
      tunnelId: 43,
      peerTunnelId: 46,
      encap: 'ip',
      local: '10.0.0.1',
      remote: '10.0.0.3',
      udpChecksum: false,
      sessions: [
        session({
          sessionId: 130,
          peerSessionId: 1,
          ifname: 'l2tpeth1',
          sendSequence: true,
          requireSequence: true,
        }),
      ],
    },
  ],
};

/** The devices a backend holds, without the Kubernetes reference (not a property of a device). */
function devices(b: MemoryBackend) {
  return {
    tunnels: [...b.tunnelSpecs.values()].sort((x, y) => x.tunnelId - y.tunnelId),
    sessions: [...b.specs.values()]
      .map((s) => {
        const { pseudowire: _ref, ...device } = s as typeof s & { pseudowire?: unknown };
        return device;
      })
      .sort((x, y) => x.sessionId - y.sessionId),
  };
}

async function throughAgent(underlayMtu: number) {
  const backend = new MemoryBackend();
  const obj: L2TPNodeState = {
    apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
    kind: 'L2TPNodeState',
    metadata: { name: 'n1', generation: 1 },
    spec: SPEC,
  };
  const agent = new Agent({ ...testAgentOptions(fixedSource(obj), backend), underlayMtu });
  await agent.start();
  const d = devices(backend);
  await agent.stop();
  return d;
}

async function throughStatic(underlayMtu: number) {
  const backend = new MemoryBackend();
  const env: PlanEnv = {
    underlayMtu: async () => underlayMtu,
    interfaceNames: async () => new Set(),
    ownedSessions: async () => [],
  };
  let stop: (why: string) => void = () => undefined;
  const run = runStatic(parseStaticConfig(EXAMPLE_FILE), {
    backend,
    logger: silentLogger(),
    env,
    stop: new Promise<string>((r) => (stop = r)),
    fault: new Promise<BackendFault>(() => undefined),
  });
  const end = Date.now() + 5000;
  while (backend.specs.size < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  const d = devices(backend);
  stop('test');
  assert.equal(await run, 0, 'static run stops cleanly');
  assert.equal(backend.sessions.size, 0, 'and removes what it made');
  return d;
}

describe('static mode and the agent make the same devices', () => {
  for (const mtu of [1500, 9000]) {
    it(`underlay MTU ${mtu}`, async () => {
      const agent = await throughAgent(mtu);
      const stat = await throughStatic(mtu);
      assert.equal(agent.sessions.length, 3);
      assert.deepEqual(stat, agent);
      // and what that is: the kernel's derivation from the underlay, explicit values kept
      assert.deepEqual(
        agent.sessions.map((s) => [s.ifname, s.mtu]),
        [
          ['l2tpeth0', mtu - (20 + 8 + 4 + 4 + 8 + 4 + 14)],
          ['custom0', 1400],
          ['l2tpeth1', mtu - (20 + 4 + 4 + 14)],
        ],
      );
    });
  }
});

describe('static mode asks, as the agent does, whether a new session may be made', () => {
  it('a refusal (memory) fails the run with its reason and leaves nothing', async () => {
    const backend = new MemoryBackend();
    const lines: string[] = [];
    const logger = createLogger({
      name: 't',
      level: 'info',
      destination: { write: (l: string) => lines.push(l) },
    });
    const code = await runStatic(parseStaticConfig(EXAMPLE_FILE), {
      backend,
      logger,
      env: {
        underlayMtu: async () => 1500,
        interfaceNames: async () => new Set(),
        ownedSessions: async () => [],
      },
      stop: new Promise<string>(() => undefined),
      fault: new Promise<BackendFault>(() => undefined),
      refuseNewSession: () => 'not made: memory',
    });
    assert.equal(code, 1);
    assert.equal(backend.sessions.size, 0);
    const failed = lines.map((l) => JSON.parse(l) as { msg: string; err?: { message: string } });
    const err = failed.find((l) => l.msg === 'static setup failed')?.err?.message ?? lines.join('');
    // every session refused for the one reason: said once
    assert.match(err, /^session \d+\/\d+ and \d+ more: not made: memory$/);
  });

  it('a failed run says each reason once, with the first item it stopped and how many more', () => {
    assert.equal(
      failureSummary([
        { tunnelId: 1, error: 'underlay gone' },
        { tunnelId: 1, sessionId: 10, error: 'not made: memory' },
        { tunnelId: 1, sessionId: 11, error: 'not made: memory' },
        { tunnelId: 2, sessionId: 12, error: 'not made: memory' },
        { tunnelId: 2, sessionId: 13 },
      ]),
      'tunnel 1: underlay gone; session 1/10 and 2 more: not made: memory; session 2/13: failed',
    );
  });
});
