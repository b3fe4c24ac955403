// The agent under a memory limit it cannot hold all its sessions in, as a datapath pod whose limit is
// too small for its node: it is not killed; the sessions up to the limit's margin are made, the others
// are reported Failed with the reason and the setting to raise; raised, the limit makes room and the
// next pass makes the rest. A real kube-apiserver, the userspace backend's TAPs, a real memory cgroup.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { reportedSessions } from '../../lib/api/node-status.js';
import { cookieSession, nodeStateWith } from '../harness/nodestate.js';
import { MemoryLimit } from '../harness/memory-limit.js';
import { Lab, requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { AgentEnv, stopAgentEnv } from './agent-env.js';

const NODE = 'kmnode1';
const SESSIONS = 3000;
let env: AgentEnv | undefined;
let memory: MemoryLimit | undefined;
const lab = new Lab();

before(async () => {
  requireRoot();
  env = await AgentEnv.start(lab, NODE, 'kl2tp-agent-mem-', {
    ns: 'kmpeer1',
    prefix: 'km-u',
    subnet: '10.205.0',
  });
});

after(async () => {
  await stopAgentEnv(env, lab);
  await memory?.remove();
});

test('agent: new sessions stop short of the memory limit, the agent lives on, and a larger limit makes the rest', async () => {
  const e = env!;
  const ids = Array.from({ length: SESSIONS }, (_, k) => 2000 + k);
  await e.applyNodeState(
    nodeStateWith(
      NODE,
      '10.205.0',
      ids.map((id) => cookieSession(id, id + 10_000)),
    ),
  );
  memory = MemoryLimit.create(`kube-l2tp-test-agent-memory-${process.pid}`, '192Mi');
  const a = e.startAgent(['--backend', 'userspace'], {}, memory);
  try {
    const counts = async () => {
      const s = reportedSessions(await e.nodeState());
      return {
        up: s.filter((x) => x.state === 'Up').length,
        refused: s.filter(
          (x) => x.state === 'Failed' && /not made: the datapath pod has reached/.test(x.message ?? ''),
        ),
        other: s.filter((x) => x.state !== 'Up' && !/not made/.test(x.message ?? '')),
      };
    };
    const first = await until(
      'every session reported, some refused',
      async () => {
        const c = await counts();
        return c.up + c.refused.length + c.other.length === SESSIONS && c.refused.length > 0 ? c : undefined;
      },
      120_000,
      1000,
    );
    assert.deepEqual(first.other, [], 'no other failure');
    assert.ok(first.up > 100, `${first.up} sessions up before the limit's margin`);
    assert.match(a.log(), /memory limit found: new sessions stop short of it/);
    assert.match(
      first.refused[0]!.message!,
      /of its 192 MiB memory limit.*raise datapath\.resources\.limits\.memory/,
    );
    assert.equal(a.proc.exitCode, null, 'the agent is running');
    assert.equal(memory.oomKills(), 0, 'nothing was killed for memory');
    console.log(`# ${first.up} of ${SESSIONS} sessions up under 192Mi, ${first.refused.length} refused`);

    memory.resize('1Gi');
    await until(
      'every session up once the limit is raised',
      async () => ((await counts()).up === SESSIONS ? true : undefined),
      120_000,
      1000,
    );
    assert.equal(memory.oomKills(), 0);
  } catch (err) {
    console.error(a.log().split('\n').slice(-30).join('\n'));
    throw err;
  } finally {
    await e.stopAgent(a.proc);
  }
});
