// Hostile traffic at the ebpf receive path: wrong session, wrong cookie, truncated, control bit, bad
// version, random garbage and a flood, sent from the peer's own address (and UDP port) so that they
// match the tunnel; over UDP, wrong outer checksums too (right ones pass). Every packet is dropped and counted under its reason, a concurrent ping does not
// notice, and a TCP connection between the two nodes (underlay traffic the programs must pass
// untouched) lives through the programs being attached and detached.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { before, describe, it } from 'node:test';
import { Lab, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { hostileCases, hostileSender, sendHostileCases, sum, totals } from './hostile-traffic.js';
import { backgroundPing, pairConfigs, podOn, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

// One TCP connection between the nodes: the client sends a line every 20 ms and waits for its echo
// until stdin closes, then prints the exchanges done and the longest wait; any error exits non-zero.
const ECHO_SERVER = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7100)); s.listen(1)
c, _ = s.accept()
while True:
    d = c.recv(4096)
    if not d: break
    c.sendall(d)
`;
const ECHO_CLIENT = `
import socket, sys, time, threading
host = sys.argv[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
for _ in range(50):
    try:
        c = socket.create_connection((host, 7100), timeout=5); break
    except OSError:
        time.sleep(0.1)
c.settimeout(5)
n = 0; worst = 0.0
while not stop.is_set():
    t = time.time()
    c.sendall(b"x" * 64)
    got = 0
    while got < 64:
        d = c.recv(64 - got)
        if not d: raise SystemExit("connection closed")
        got += len(d)
    worst = max(worst, time.time() - t); n += 1
    time.sleep(0.02)
print(n, round(worst, 3))
`;

for (const encap of ['udp', 'ip'] as const) {
  describe(`hostile traffic at the ebpf receive path (${encap})`, () => {
    it('drops and counts every bad packet by reason; ping and node-to-node TCP unaffected', async () => {
      const lab = new Lab();
      try {
        const p = encap === 'udp' ? 'ebhu' : 'ebhi';
        const h = await twoHosts(lab, p, encap === 'udp' ? 120 : 121);
        const bpffs = await privateBpffs(lab);
        // the node-to-node connection exists before the programs are attached
        const server = spawn('ip', ['netns', 'exec', h.h1, 'python3', '-c', ECHO_SERVER], {
          stdio: 'ignore',
        });
        lab.onCleanup(async () => server.kill('SIGKILL'));
        await new Promise((r) => setTimeout(r, 300));
        const client = spawn('ip', ['netns', 'exec', h.h2, 'python3', '-c', ECHO_CLIENT, h.u1], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        lab.onCleanup(async () => client.kill('SIGKILL'));
        let clientOut = '';
        let clientErr = '';
        client.stdout.on('data', (d: Buffer) => (clientOut += d.toString()));
        client.stderr.on('data', (d: Buffer) => (clientErr += d.toString()));
        const clientDone = new Promise<number | null>((r) => client.on('exit', r));
        await new Promise((r) => setTimeout(r, 500));

        const [c1, c2] = pairConfigs(h, { encap, cookieLength: 8, l2specType: 'default' });
        const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
        const d2 = await startEbpfDatapath(lab, h.h2, c2, bpffs);
        await podOn(lab, h.h1, `${p}p1`, 'ebbr', 'l2tpeth0', '10.203.0.1/24', 1438);
        await podOn(lab, h.h2, `${p}p2`, 'ebbr', 'l2tpeth0', '10.203.0.2/24', 1438);
        const { msg } = hostileCases(encap);
        const goodCookie = '21'.repeat(8);
        const send = hostileSender(h, encap);
        const pinged = backgroundPing(lab, `${p}p1`, '10.203.0.2', 400);
        // 1. each malformed kind, 10 times
        const { mid: afterCases } = await sendHostileCases(h, encap, d1);
        let mid = afterCases;
        if (encap === 'udp') {
          // 1b. checksummed datagrams of the session, the raw socket's unverified by any kernel: a
          // wrong one is dropped before L2TP is looked at, a right one (odd lengths too) passes
          const frames = [46, 47, 61, 333, 1001, 1400].map((n) =>
            msg(1001, goodCookie, '00000000' + randomBytes(n).toString('hex')),
          );
          await send(
            frames.flatMap((f) => [f, f]),
            undefined,
            'bad',
          );
          await send(frames, undefined, 'good');
          await new Promise((r) => setTimeout(r, 300));
          mid = totals(await d1.counters());
          const drops = (x: typeof mid) => sum(x.tunnelDrops) + sum(x.sessionDrops);
          assert.equal(
            (mid.tunnelDrops.badChecksum ?? 0) - (afterCases.tunnelDrops.badChecksum ?? 0),
            frames.length * 2,
            'every wrong checksum dropped as badChecksum',
          );
          assert.equal(
            drops(mid) - drops(afterCases),
            frames.length * 2,
            `nothing else dropped: ${JSON.stringify([mid.tunnelDrops, mid.sessionDrops])}`,
          );
          // each was seen by the tunnel and only the wrong ones were dropped: the right ones were
          // forwarded (every datagram is one or the other, checked below once the ping is over)
          assert.ok(
            mid.t.rxPackets - afterCases.t.rxPackets >= frames.length * 3,
            'every checksummed datagram seen by the tunnel',
          );
        }

        // 2. random garbage, authentic L2TP around malformed frames, and a flood of unknown sessions
        const garbage = Array.from({ length: 300 }, () =>
          randomBytes(1 + Math.floor(Math.random() * 200)).toString('hex'),
        );
        const authentic = Array.from({ length: 500 }, () =>
          msg(
            1001,
            goodCookie,
            '00000000' + randomBytes(14 + Math.floor(Math.random() * 1400)).toString('hex'),
          ),
        );
        const flood = 100_000;
        await send([...garbage, ...authentic], { hex: msg(77777, goodCookie), count: flood });
        const { received } = await pinged;
        await new Promise((r) => setTimeout(r, 300));
        const end = totals(await d1.counters());
        console.log(
          `concurrent ping: ${received}/400 replies; drops ${JSON.stringify(end.t.drops)} ${JSON.stringify(end.s.drops)}`,
        );
        assert.ok(received >= 390, `ping unaffected: ${received}/400`);
        const floodSeen = (end.tunnelDrops.unknownSession ?? 0) - (mid.tunnelDrops.unknownSession ?? 0);
        assert.ok(floodSeen >= flood, `flood counted: ${floodSeen} of ${flood}`);
        assert.ok(
          end.s.rxPackets - mid.s.rxPackets >= authentic.length,
          'authentic frames with malformed contents were passed on',
        );
        // every datagram of the tunnel is either forwarded or dropped under exactly one reason
        assert.equal(end.t.rxPackets, end.s.rxPackets + sum(end.tunnelDrops) + sum(end.sessionDrops));

        // the programs come off the underlay with the datapath; the node-to-node connection stays
        assert.equal(await d1.stop(), 0);
        assert.equal(await d2.stop(), 0);
        await new Promise((r) => setTimeout(r, 500));
        client.stdin.end();
        assert.equal(await clientDone, 0, `node-to-node TCP failed: ${clientErr}`);
        const [exchanges, worst] = clientOut.trim().split(' ').map(Number) as [number, number];
        console.log(`node-to-node TCP: ${exchanges} echoes, longest wait ${worst} s`);
        assert.ok(exchanges > 100, `echoes through attach and detach: ${exchanges}`);
        assert.ok(worst < 1, `no stall: longest wait ${worst} s`);
      } finally {
        await lab.cleanup();
      }
    });
  });
}
