// Runs inside a test's network namespace, as root:
//   make: makes a session pair with createPair twice, recording what each end looked like when
//     prepare ran (the moment the backend binds the shared tc blocks); the second prepare fails.
//     Prints both ends as prepare saw them and as they are after, and the veths left.
//   adopt BPFFS LOCAL REMOTE: two veth pairs under sessions' names, as an agent killed between making
//     a pair and marking it leaves one (down, no alias), and one that is up (someone else's); then
//     the ebpf backend reconciles sessions 1 to 3. Prints each session's outcome and the veths.
// Both print one JSON line.
import { reconcile } from '../../datapath/agent/reconcile.js';
import { createPair, listVeths, peerName } from '../../datapath/backend/ebpf/devices.js';
import { createEbpfBackend } from '../../datapath/backend/ebpf/index.js';
import { getLink } from '../../datapath/backend/userspace/tap.js';
import { run } from '../../lib/exec.js';
import { capturingLogger, manySessions } from '../harness/nodestate.js';

const seen = async (ifname: string) => {
  const l = await getLink(ifname);
  return l && { owner: l.owner, up: l.up, mtu: l.mtu };
};
const ends = async (sessionId: number) => ({
  peer: await seen(peerName(sessionId)),
  dev: await seen(`l2tpeth${sessionId}`),
});
const veths = async () =>
  (await listVeths())
    .filter((v) => v.ifname.startsWith('l2tp'))
    .map((v) => ({ ifname: v.ifname, up: v.up, owner: v.owner }))
    .sort((a, b) => a.ifname.localeCompare(b.ifname));

async function make() {
  const ids = (sessionId: number) => ({ tunnelId: 3, sessionId });
  const size = { mtu: 1400, queues: 1 };
  const during = await createPair('l2tpeth7', peerName(7), ids(7), size, () => ends(7));
  const after = await ends(7);
  const failed = await createPair('l2tpeth8', peerName(8), ids(8), size, async () => {
    throw new Error('prepare failed');
  }).then(
    () => 'no error',
    (e: Error) => e.message,
  );
  return { during, after, failed, left: (await veths()).map((v) => v.ifname) };
}

async function adopt(bpffs: string, local: string, remote: string) {
  await run('ip', ['link', 'add', 'l2tpeth1', 'type', 'veth', 'peer', 'name', peerName(1)]);
  await run('ip', ['link', 'add', 'l2tpeth2', 'type', 'veth', 'peer', 'name', peerName(2)]);
  await run('ip', ['link', 'set', peerName(2), 'up']);
  const { log, lines } = capturingLogger<{ msg: string; sessionId?: number }>();
  const backend = await createEbpfBackend({ logger: log, bpffs });
  const report = await reconcile(backend, manySessions(3, local, remote), log);
  const out = {
    sessions: report.sessions.map((s) => ({ sessionId: s.sessionId, state: s.state, error: s.error })),
    veths: await veths(),
    remade: lines.filter((l) => /unfinished/.test(l.msg)).map((l) => l.sessionId),
  };
  await backend.close({ keepDevices: false });
  return out;
}

const [mode, ...args] = process.argv.slice(2);
const out = mode === 'make' ? await make() : await adopt(args[0]!, args[1]!, args[2]!);
process.stdout.write(JSON.stringify(out) + '\n');
