// Runs inside a test's network namespace (the TAPs it creates must not appear on the host): creates
// a tunnel with `sessions` TAP-backed sessions, deletes every TAP from outside at once, and prints
// what the pump reported as one JSON line.
import { loadPump, type PumpEvent } from '../../datapath/backend/userspace/native.js';
import { run } from '../../lib/exec.js';

const sessions = Number(process.argv[2] ?? '100');
const pump = loadPump();
const events: PumpEvent[] = [];
const h = pump.createTunnel(
  {
    encap: 'udp',
    family: 4,
    local: '127.0.0.1',
    localPort: 5801,
    remote: '127.0.0.1',
    remotePort: 5802,
    udpChecksum: true,
  },
  (e) => events.push(e),
);
for (let i = 1; i <= sessions; i++) {
  const tap = pump.openTap(`hdpl${i}`, true);
  pump.addSession(h, {
    sessionId: i,
    peerSessionId: i,
    l2specLength: 4,
    sendSequence: false,
    requireSequence: false,
    tapFd: tap.fd,
    vnetHdr: true,
  });
}
const started = Date.now();
const batch = Array.from({ length: sessions }, (_, i) => `link del dev hdpl${i + 1}`).join('\n') + '\n';
await run('ip', ['-batch', '-'], { input: batch });
await new Promise((r) => setTimeout(r, 1500));
const lost = Array.from({ length: sessions }, (_, i) => pump.sessionCounters(h, i + 1)?.tapLost === true);
const stats = pump.eventStats(h);
const elapsedMs = Date.now() - started;
pump.closeTunnel(h, false);
process.stdout.write(
  JSON.stringify({
    events: events.map((e) => ({ fatal: e.fatal, suppressed: e.suppressed, message: e.message })),
    stats,
    elapsedMs,
    lost: lost.filter(Boolean).length,
  }) + '\n',
);
