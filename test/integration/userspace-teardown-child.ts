// Runs inside a test's network namespace: the userspace backend with one tunnel of `sessions`
// sessions beside a TAP it did not make, then a reconcile pass that keeps `keep` of them, then
// close() without keeping devices. Prints the TAPs left after each step and the backend's log
// messages as one JSON line.
import { reconcile } from '../../datapath/agent/reconcile.js';
import { createUserspaceBackend } from '../../datapath/backend/userspace/backend.js';
import { listTaps } from '../../datapath/backend/userspace/tap.js';
import { run } from '../../lib/exec.js';
import { capturingLogger, manySessions } from '../harness/nodestate.js';

const sessions = Number(process.argv[2] ?? '200');
const keep = Number(process.argv[3] ?? '10');
const { log, lines } = capturingLogger<{ msg: string; taps?: number; oneRequest?: boolean }>();

await run('ip', ['tuntap', 'add', 'dev', 'sbforeign0', 'mode', 'tap']);
const backend = createUserspaceBackend({ logger: log, offload: false });
const want = (n: number) => manySessions(n, '127.0.0.1', '127.0.0.1');
const names = async () => (await listTaps()).map((t) => t.ifname).sort();

await reconcile(backend, want(sessions), log);
const created = (await names()).length;
const t0 = performance.now();
const report = await reconcile(backend, want(keep), log);
const removeMs = performance.now() - t0;
const afterRemove = await names();
await backend.close({ keepDevices: false });
const afterClose = await names();
process.stdout.write(
  JSON.stringify({
    created,
    removed: report.removed.length,
    removeMs,
    afterRemove,
    afterClose,
    deletes: lines.filter((l) => l.msg === 'session TAPs deleted').map((l) => [l.taps, l.oneRequest]),
  }) + '\n',
);
