// Static mode under a memory limit it cannot hold all its sessions in: it is not killed; it stops
// making sessions short of the limit, fails its run with the reason, and removes what it made. A real
// memory cgroup (mounted inside as a runtime mounts it) and the userspace backend's TAPs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLimit } from '../harness/memory-limit.js';
import { Lab, inNsCapture, requireRoot } from '../harness/netns.js';
import { within } from '../harness/wait.js';
import { deleteTuns, startDatapath } from './datapath-lab.js';

const SESSIONS = 3000;
const lab = new Lab();
let ns: string;
let memory: MemoryLimit | undefined;

before(async () => {
  requireRoot();
  ns = await lab.netns('ksmem1');
  lab.onCleanup(() => deleteTuns(ns)); // TAPs are persistent: a namespace's deletion leaves them
  const peer = await lab.netns('ksmem2');
  await lab.veth(
    { ns, name: 'ksm0', addr: '10.206.0.1/24' },
    { ns: peer, name: 'ksm1', addr: '10.206.0.2/24' },
  );
});

after(async () => {
  await lab.cleanup();
  await memory?.remove();
});

const tapsIn = async (n: string) =>
  (JSON.parse((await inNsCapture(n, 'ip', '-j', 'link', 'show', 'type', 'tun')).stdout || '[]') as unknown[])
    .length;

test('static mode: more sessions than its memory limit holds fails the run with the reason, not the kernel killing it, and leaves nothing', async () => {
  const ids = Array.from({ length: SESSIONS }, (_, k) => 1 + k);
  const config = {
    tunnels: [
      {
        tunnelId: 1,
        peerTunnelId: 1,
        encap: 'udp',
        local: '10.206.0.1',
        remote: '10.206.0.2',
        udpSourcePort: 5901,
        udpDestinationPort: 5902,
        sessions: ids.map((id) => ({ sessionId: id, peerSessionId: id, name: `l2tpeth${id}` })),
      },
    ],
  };
  memory = MemoryLimit.create(`kube-l2tp-test-static-memory-${process.pid}`, '192Mi');
  const dp = await startDatapath(lab, ns, config, false, [], memory);
  await within(dp.exited, 300_000);
  try {
    assert.deepEqual(
      { code: dp.child.exitCode, signal: dp.child.signalCode },
      { code: 1, signal: null },
      'the run failed by itself',
    );
    const logs = dp.lines as { msg?: string; sessions?: number; err?: { message?: string } }[];
    const refused = logs.find((l) => l.msg === 'new sessions not made')?.sessions ?? 0;
    assert.ok(refused > 0 && refused < SESSIONS, `${refused} of ${SESSIONS} refused`);
    const failure = logs.find((l) => l.msg === 'static setup failed')?.err?.message ?? '';
    assert.match(
      failure,
      /^session 1\/\d+ and \d+ more: not made: the datapath pod has reached 90% of its 192 MiB memory limit/,
    );
    assert.equal(failure.split('not made').length, 2, 'the reason is said once');
    assert.equal(memory.oomKills(), 0, 'nothing was killed for memory');
    assert.equal(await tapsIn(ns), 0, 'no session device left');
    console.log(`# ${SESSIONS - refused} of ${SESSIONS} sessions made under 192Mi, ${refused} refused`);
  } catch (e) {
    console.error(JSON.stringify(dp.lines.slice(-10)).slice(0, 4000));
    throw e;
  }
});
