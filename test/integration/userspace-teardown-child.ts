// Runs inside a test's network namespace: the userspace backend with one tunnel of `sessions`
// sessions beside a TAP it did not make, then a reconcile pass that keeps `keep` of them, then
// close() without keeping devices. Prints the TAPs left after each step and the backend's log
// messages as one JSON line.
import { Writable } from 'node:stream';
import pino from 'pino';
import { reconcile, type DesiredState } from '../../datapath/agent/reconcile.js';
import { createUserspaceBackend } from '../../datapath/backend/userspace/backend.js';
import { listTaps } from '../../datapath/backend/userspace/tap.js';
import { run } from '../../lib/exec.js';

const sessions = Number(process.argv[2] ?? '200');
const keep = Number(process.argv[3] ?? '10');
const lines: { msg: string; taps?: number; oneRequest?: boolean }[] = [];
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      cb();
    },
  }),
);

await run('ip', ['tuntap', 'add', 'dev', 'sbforeign0', 'mode', 'tap']);
const backend = createUserspaceBackend({ logger: log, offload: false });
const want = (n: number): DesiredState => ({
  tunnels: [
    {
      spec: {
        tunnelId: 1,
        peerTunnelId: 2,
        encap: 'udp',
        local: '127.0.0.1',
        remote: '127.0.0.1',
        udpSourcePort: 5901,
        udpDestinationPort: 5902,
        udpChecksum: false,
      },
      sessions: Array.from({ length: n }, (_, i) => ({
        tunnelId: 1,
        sessionId: i + 1,
        peerSessionId: i + 1,
        ifname: `l2tpeth${i}`,
        mtu: 1446,
        l2specType: 'default' as const,
        sendSequence: false,
        requireSequence: false,
        reorderTimeoutMs: 0,
      })),
    },
  ],
});
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
