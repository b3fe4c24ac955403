// Runs inside a test's network namespace: the ebpf backend (pinning under the bpffs given) with one
// tunnel of `sessions` sessions beside a veth pair it did not make, then a reconcile pass that keeps
// `keep` of them, then close() without keeping devices. Prints the veths and the sessions in the
// maps after each step, and the backend's delete messages, as one JSON line.
import { reconcile } from '../../datapath/agent/reconcile.js';
import { createEbpfBackend } from '../../datapath/backend/ebpf/index.js';
import { listVeths } from '../../datapath/backend/ebpf/devices.js';
import { run } from '../../lib/exec.js';
import { capturingLogger, manySessions } from '../harness/nodestate.js';

const [sessions, keep, bpffs, local, remote] = [
  Number(process.argv[2]),
  Number(process.argv[3]),
  process.argv[4]!,
  process.argv[5]!,
  process.argv[6]!,
];
const { log, lines } = capturingLogger<{ msg: string; pairs?: number; oneRequest?: boolean }>();

await run('ip', ['link', 'add', 'ebtdforeign0', 'type', 'veth', 'peer', 'name', 'ebtdforeign1']);
const backend = await createEbpfBackend({ logger: log, bpffs });
const want = (n: number) => manySessions(n, local, remote);
const veths = async () =>
  (await listVeths())
    .map((v) => v.ifname)
    .filter((n) => n !== 'ebtd0')
    .sort();
const inMaps = async () => (await backend.listSessions()).map((s) => s.sessionId).sort((a, b) => a - b);

await reconcile(backend, want(sessions), log);
const created = (await veths()).length;
const report = await reconcile(backend, want(keep), log);
const afterRemove = await veths();
const mapsAfterRemove = await inMaps();
await backend.close({ keepDevices: false });
const afterClose = await veths();
process.stdout.write(
  JSON.stringify({
    created,
    removed: report.removed.length,
    afterRemove,
    mapsAfterRemove,
    afterClose,
    deletes: lines.filter((l) => l.msg === 'session veth pairs deleted').map((l) => [l.pairs, l.oneRequest]),
  }) + '\n',
);
