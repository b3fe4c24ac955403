// Hostile traffic at the pump: wrong session, wrong cookie, truncated, control bit, bad version,
// random garbage and a flood, sent from the peer's own address (and UDP port) so that it passes the
// socket's connect() filter and reaches the pump. Every packet must be dropped and counted under the
// right reason, the process must survive, and a concurrent ping must not notice.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import { run } from '../../lib/exec.js';
import { Lab, ping, requireRoot } from '../harness/netns.js';
import { hostileCases, hostileSender, sendHostileCases, sum, totals } from './hostile-traffic.js';
import { backgroundPing, pairConfigs, podOn, startDatapath, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

for (const encap of ['udp', 'ip'] as const) {
  describe(`hostile traffic at the pump (${encap})`, () => {
    it('drops and counts every bad packet by reason, survives a flood, ping unaffected', async () => {
      const lab = new Lab();
      try {
        const p = encap === 'udp' ? 'kdhu' : 'kdhi';
        const h = await twoHosts(lab, p, encap === 'udp' ? 60 : 61);
        const [c1, c2] = pairConfigs(h, { encap, cookieLength: 8, l2specType: 'default' });
        const d1 = await startDatapath(lab, h.h1, c1);
        await startDatapath(lab, h.h2, c2);
        await podOn(lab, h.h1, `${p}p1`, 'kdbr', 'l2tpeth0', '10.201.203.1/24', 1438);
        await podOn(lab, h.h2, `${p}p2`, 'kdbr', 'l2tpeth0', '10.201.203.2/24', 1438);
        const { msg } = hostileCases(encap);
        const goodCookie = '21'.repeat(8);
        const send = hostileSender(h, encap);
        // concurrent ping across the pseudowire for the whole attack
        const pinged = backgroundPing(lab, `${p}p1`, '10.201.203.2', 400);
        // 1. each malformed kind, 10 times
        const { mid } = await sendHostileCases(h, encap, d1);

        // 2. random garbage and a flood of unknown-session messages
        const garbage = Array.from({ length: 300 }, () =>
          randomBytes(1 + Math.floor(Math.random() * 200)).toString('hex'),
        );
        // Authentic L2TP (right session and cookie) around malformed IPv4/TCP: bogus header lengths,
        // total lengths and data offsets, meant for the segment-merging code behind the cookie check.
        const tcpish = () => {
          const f = randomBytes(14 + 20 + 20 + Math.floor(Math.random() * 1400));
          f.writeUInt16BE(0x0800, 12);
          f[14] = 0x40 | (Math.random() < 0.5 ? 5 : Math.floor(Math.random() * 16));
          f[14 + 9] = 6;
          f.writeUInt16BE(Math.random() < 0.5 ? f.length - 14 : Math.floor(Math.random() * 65536), 16);
          f.writeUInt16BE(Math.random() < 0.5 ? 0 : Math.floor(Math.random() * 65536), 20);
          f[14 + 20 + 13] = Math.random() < 0.5 ? 0x10 : Math.floor(Math.random() * 256);
          return msg(1001, goodCookie, '00000000' + f.toString('hex'));
        };
        const authentic = Array.from({ length: 2000 }, tcpish);
        const flood = 100_000;
        await send([...garbage, ...authentic], { hex: msg(77777, goodCookie), count: flood });
        // a second flood of the same size must not grow the pump's memory: drops allocate nothing
        const rss = async () =>
          Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${d1.child.pid}/status`, 'utf8'))?.[1] ?? NaN);
        const rssBefore = await rss();
        await send([], { hex: msg(77777, goodCookie), count: flood });
        const rssAfter = await rss();
        console.log(`datapath RSS across a second flood of ${flood}: ${rssBefore} kB -> ${rssAfter} kB`);
        assert.ok(rssAfter - rssBefore < 4096, `memory grew by ${rssAfter - rssBefore} kB under a flood`);
        const { received } = await pinged;
        await new Promise((r) => setTimeout(r, 300));
        const end = totals(await d1.counters());
        console.log(
          `concurrent ping: ${received}/400 replies; counters ${JSON.stringify(end.t.drops)} ${JSON.stringify(end.s.drops)}`,
        );
        assert.ok(received >= 390, `ping unaffected: ${received}/400`);
        const floodSeen = (end.tunnelDrops.unknownSession ?? 0) - (mid.tunnelDrops.unknownSession ?? 0);
        assert.ok(floodSeen >= flood, `floods counted: ${floodSeen} of ${2 * flood}`);
        assert.ok(
          end.s.rxPackets - mid.s.rxPackets >= authentic.length,
          'authentic malformed frames were passed on',
        );
        // Every datagram received is either forwarded or dropped under exactly one reason.
        assert.equal(end.t.rxPackets, end.s.rxPackets + sum(end.tunnelDrops) + sum(end.sessionDrops));
        assert.equal(d1.child.exitCode, null, 'the datapath is still running');
        assert.equal(await d1.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  });
}

// A root process in a pod can hand the kernel any GSO metadata (AF_PACKET with PACKET_VNET_HDR); it
// reaches the pump through the bridge and the TAP's TSO offload. Tiny and huge MSS, bogus header
// lengths and junk must neither crash the pump nor stop other traffic.
const GSO_INJECTOR = `
import random, socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
s.bind(("eth0", 0))
def frame(plen):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 20 + plen, 1, 0x4000, 64, 6, 0, bytes([10,201,206,1]), bytes([10,201,206,9]))
    c = sum(struct.unpack('!10H', ip)); c = (c & 0xffff) + (c >> 16); c = (c & 0xffff) + (c >> 16)
    ip = ip[:10] + struct.pack('!H', ~c & 0xffff) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", 40000, 9, 1, 1, 5 << 4, 0x18, 500, 0, 0)
    return bytes.fromhex("ffffffffffff0200000000010800") + ip + tcp + bytes(plen)
sent = 0
for gso in [1, 7, 100, 536, 1400, 9000, 60000]:
    for plen in [10, 1000, 5000, 30000, 60000]:
        for hdr_len in [54, 0, 20, 200]:
            try:
                s.send(struct.pack("=BBHHHH", 1, 1, hdr_len, gso, 34, 16) + frame(plen)); sent += 1
            except OSError:
                pass
for _ in range(300):
    try:
        v = struct.pack("=BBHHHH", random.choice([0, 1, 2]), random.choice([0, 1, 3, 4, 5, 0x81]), random.randrange(0, 300),
                        random.randrange(0, 3000), random.randrange(0, 300), random.randrange(0, 300))
        s.send(v + frame(random.randrange(0, 3000))[: random.randrange(14, 3100)]); sent += 1
    except OSError:
        pass
print(sent)
`;

describe('hostile GSO metadata from a pod', () => {
  it('is segmented or refused without crashing the pump; traffic keeps flowing', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'kdhg', 62);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4, udpChecksum: true });
      const d1 = await startDatapath(lab, h.h1, c1);
      await startDatapath(lab, h.h2, c2);
      await podOn(lab, h.h1, 'kdhgp1', 'kdbr', 'l2tpeth0', '10.201.206.1/24', 1442);
      await podOn(lab, h.h2, 'kdhgp2', 'kdbr', 'l2tpeth0', '10.201.206.2/24', 1442);
      const injected = Number(await run('ip', ['netns', 'exec', 'kdhgp1', 'python3', '-c', GSO_INJECTOR]));
      console.log(`hostile GSO frames accepted by the pod's kernel: ${injected}`);
      assert.ok(injected > 0, 'the kernel took some of them');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await ping('kdhgp1', '10.201.206.2', 5, ['-i', '0.2']), 5, 'ping still crosses');
      const k = await d1.counters();
      const tx = k.tunnels[0]!.sessions[0]!.txPackets;
      console.log(`datagrams sent for them: ${tx}`, JSON.stringify(k.tunnels[0]!.sessions[0]));
      assert.ok(tx > 1000, 'the super-frames reached the pump and were segmented');
      assert.equal(d1.child.exitCode, null, 'the datapath is still running');
      assert.equal(await d1.stop(), 0);
    } finally {
      await lab.cleanup();
    }
  });
});
