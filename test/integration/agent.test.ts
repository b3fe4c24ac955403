// The node agent against a real kube-apiserver, running as its own identity (the chart's RBAC)
// inside a network namespace that plays the node, with the userspace backend, and a static-mode
// peer in a second namespace on the far side of a veth underlay.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeStateSpec } from '../../lib/api/schemas.js';
import { cookieSession, nodeStateWith, staticPeerOf } from '../harness/nodestate.js';
import { Lab, ipIn, linkUpIn, ping, requireRoot } from '../harness/netns.js';
import { sleep, until, within } from '../harness/wait.js';
import { AgentEnv, ifindexIn, stopAgentEnv } from './agent-env.js';

const NODE = 'kanode1';
const PEER = 'kapeer1';
let env: AgentEnv;
const lab = new Lab();

const startAgent = () => env.startAgent(['--backend', 'userspace'], { LOG_LEVEL: 'debug' });

const stopAgent = (p: ChildProcess) => env.stopAgent(p);

const spec = (sessions: number[]): NodeStateSpec =>
  nodeStateWith(
    NODE,
    '10.204.0',
    sessions.map((id) => cookieSession(id, id + 1000)),
  );

const applyNodeState = (s: NodeStateSpec) => env.applyNodeState(s);

const nodeState = () => env.nodeState();

const ifindex = ifindexIn;

/** The node state once its status has `n` sessions, every one Up. */
const sessionsUp = (n: number) =>
  until('sessions Up in status', async () => {
    const s = await nodeState();
    const ok = s.status?.sessions?.length === n && s.status.sessions.every((x) => x.state === 'Up');
    return ok ? s : undefined;
  });

before(async () => {
  requireRoot();
  env = await AgentEnv.start(lab, NODE, 'kl2tp-agent-', { ns: PEER, prefix: 'ka-u', subnet: '10.204.0' });
});

after(() => stopAgentEnv(env, lab));

test('agent: node state -> devices -> status, repair, adoption, removal', async (t) => {
  await applyNodeState(spec([128, 129]));
  let a = startAgent();
  try {
    const st = await sessionsUp(2);
    assert.equal(st.status?.backend, 'userspace');
    assert.equal(st.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(st.status?.sessions?.[0]?.mtu, 1438, '8-byte cookie over UDP/IPv4');
    assert.ok(await ifindex(NODE, 'l2tpeth128'), 'device exists in the node namespace');

    await t.test('traffic reaches a static-mode peer and counters reach the status', async () => {
      const cfg = join(env.dir, 'peer.yaml');
      writeFileSync(cfg, JSON.stringify(staticPeerOf('10.204.0', 128, 1128, 'l2tpeth9')));
      const peer = env.startPeer(PEER, cfg, '--backend', 'userspace');
      await until('peer device', () => ifindex(PEER, 'l2tpeth9'));
      await ipIn(NODE, 'addr', 'add', '192.168.204.1/24', 'dev', 'l2tpeth128');
      await ipIn(NODE, 'link', 'set', 'l2tpeth128', 'up');
      await ipIn(PEER, 'addr', 'add', '192.168.204.2/24', 'dev', 'l2tpeth9');
      await ipIn(PEER, 'link', 'set', 'l2tpeth9', 'up');
      assert.ok((await ping(NODE, '192.168.204.2', 5, ['-i', '0.2'])) >= 4);
      await until(
        'counters in status',
        async () => {
          const s = await nodeState();
          const c = s.status?.sessions?.find((x) => x.sessionId === 128)?.counters;
          return c && c.rxPackets >= 4 && c.txPackets >= 4 ? c : undefined;
        },
        45_000,
      );
      await stopAgent(peer);
    });

    await t.test(
      'a device deleted by hand comes back, by a resync that reads the watch, not the API',
      async () => {
        const apiReads = () => (a.log().match(/node state read from the API/g) ?? []).length;
        const before = apiReads();
        await ipIn(NODE, 'link', 'del', 'l2tpeth129');
        await until('l2tpeth129 recreated', () => ifindex(NODE, 'l2tpeth129'));
        await sleep(3000); // three more 1 s resyncs
        assert.ok(before >= 1, 'the first pass read the object from the API');
        assert.ok(
          apiReads() - before <= 1,
          `${apiReads() - before} GETs during four resyncs with the watch up`,
        );
      },
    );

    await t.test('a device set down by hand comes up again on the next pass', async () => {
      const index = await ifindex(NODE, 'l2tpeth129');
      await ipIn(NODE, 'link', 'set', 'l2tpeth129', 'down');
      await until('l2tpeth129 up again', async () =>
        (await linkUpIn(NODE, 'l2tpeth129')) ? true : undefined,
      );
      assert.equal(await ifindex(NODE, 'l2tpeth129'), index, 'brought up, not made anew');
    });

    await t.test('a restart adopts the devices instead of recreating them', async () => {
      const before128 = await ifindex(NODE, 'l2tpeth128');
      await stopAgent(a.proc);
      assert.equal(await ifindex(NODE, 'l2tpeth128'), before128, 'SIGTERM leaves devices in place');
      a = startAgent();
      await sleep(3000);
      await until('status written by the new agent', async () => {
        const s = await nodeState();
        return s.status?.sessions?.every((x) => x.state === 'Up') ? s : undefined;
      });
      assert.equal(await ifindex(NODE, 'l2tpeth128'), before128, 'same device after restart');
    });

    await t.test('a foreign device with a desired name is reported and left alone', async () => {
      await ipIn(NODE, 'link', 'add', 'l2tpeth130', 'type', 'bridge');
      await applyNodeState(spec([128, 129, 130]));
      const s = await until('conflict reported', async () => {
        const o = await nodeState();
        const x = o.status?.sessions?.find((y) => y.sessionId === 130);
        return x?.state === 'Failed' ? o : undefined;
      });
      assert.match(
        s.status?.sessions?.find((y) => y.sessionId === 130)?.message ?? '',
        /not created by kube-l2tp/,
      );
      assert.equal(s.status?.conditions?.find((c) => c.type === 'Degraded')?.reason, 'ForeignDevice');
      assert.ok(await ifindex(NODE, 'l2tpeth130'), 'foreign bridge still there');
      await ipIn(NODE, 'link', 'del', 'l2tpeth130');
    });

    await t.test(
      'a node state split over two objects: both made real, each with its own status',
      async () => {
        await env.applyNodeState(spec([131]), 1);
        const [s0, s1] = await until('both shards report', async () => {
          const [x, y] = [await nodeState(), await env.nodeState(1)];
          const caughtUp = (o: typeof x) => o.status?.observedGeneration === o.metadata.generation;
          return caughtUp(x) && caughtUp(y) && y.status?.sessions?.[0]?.state === 'Up' ? [x, y] : undefined;
        });
        assert.ok(await ifindex(NODE, 'l2tpeth131'), 'the second object’s session has its device');
        assert.deepEqual(s0.status?.sessions?.map((x) => x.sessionId).sort(), [128, 129, 130]);
        assert.deepEqual(
          s1.status?.sessions?.map((x) => x.sessionId),
          [131],
        );
        assert.deepEqual(
          s1.status?.tunnels?.map((x) => x.state),
          ['Ready'],
        );
        assert.ok(await ifindex(NODE, 'l2tpeth128'), 'the first object’s sessions stay');
        await env.cp.kubectl(['delete', 'l2tpnodestates', `${NODE}.shard-1`]);
        await until('l2tpeth131 removed', async () =>
          (await ifindex(NODE, 'l2tpeth131')) ? undefined : true,
        );
        assert.ok(await ifindex(NODE, 'l2tpeth128'));
      },
    );

    await t.test(
      'sessions removed from the spec are removed; deleting the node state removes all',
      async () => {
        await applyNodeState(spec([128]));
        await until('l2tpeth129 removed', async () =>
          (await ifindex(NODE, 'l2tpeth129')) ? undefined : true,
        );
        assert.ok(await ifindex(NODE, 'l2tpeth128'));
        await env.cp.kubectl(['delete', 'l2tpnodestates', NODE]);
        await until('l2tpeth128 removed', async () =>
          (await ifindex(NODE, 'l2tpeth128')) ? undefined : true,
        );
      },
    );
  } catch (e) {
    console.error(a.log().split('\n').slice(-40).join('\n'));
    throw e;
  } finally {
    await stopAgent(a.proc);
  }
});

/** The agent stopped by itself (exit 0, not ended by the signal), and these devices are gone. */
async function endedCleanly(
  { proc: p, exited }: { proc: ChildProcess; exited: Promise<void> },
  devices: string[],
) {
  await within(exited, 20_000);
  assert.equal(p.signalCode, null, 'not ended by the signal');
  assert.equal(p.exitCode, 0, 'the agent stopped by itself, cleanly');
  for (const d of devices) assert.equal(await ifindex(NODE, d), undefined, `${d} removed`);
}

test('agent: its node state deleted just before its SIGTERM (a node with nothing left, or a deleted Node): the stopping agent removes the devices', async () => {
  await applyNodeState(spec([140, 141]));
  const a = startAgent();
  try {
    await sessionsUp(2);
    // paused, the agent cannot act on the deletion's watch event before the signal arrives
    a.proc.kill('SIGSTOP');
    await env.cp.kubectl(['delete', 'l2tpnodestates', NODE]);
    a.proc.kill('SIGTERM');
    a.proc.kill('SIGCONT');
    await endedCleanly(a, ['l2tpeth140', 'l2tpeth141']);
    assert.match(a.log(), /no node state any more/, 'the SIGTERM handler saw the node state gone');
  } catch (e) {
    console.error(a.log().split('\n').slice(-40).join('\n'));
    throw e;
  } finally {
    await stopAgent(a.proc);
  }
});

test('agent: a SIGTERM while it is still starting (its pod deleted as it starts) is answered once it is up: the devices of a node with no node state go', async () => {
  await applyNodeState(spec([150, 151]));
  const first = startAgent();
  try {
    await sessionsUp(2);
  } finally {
    await stopAgent(first.proc); // an ordinary stop: the devices stay for the next agent
  }
  assert.ok(await ifindex(NODE, 'l2tpeth150'), 'the first agent left its devices');
  await env.cp.kubectl(['delete', 'l2tpnodestates', NODE]);
  const a = startAgent();
  try {
    // its first log line: it has chosen its backend and not yet made its first pass
    await until('the new agent logs', async () => /backend selected/.test(a.log()), 10_000, 2);
    a.proc.kill('SIGTERM');
    const atSignal = a.log();
    assert.doesNotMatch(atSignal, /first reconcile done/, 'the signal came before the agent was up');
    await endedCleanly(a, ['l2tpeth150', 'l2tpeth151']);
    assert.match(a.log(), /first reconcile done[\s\S]*no node state any more/);
  } catch (e) {
    console.error(a.log().split('\n').slice(-40).join('\n'));
    throw e;
  } finally {
    await stopAgent(a.proc);
  }
});
