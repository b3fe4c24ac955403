// Checksum 0 over an IPv6 underlay, as the kernel's tunnel socket judges it: a tunnel with UDP
// checksums refuses such datagrams (its socket accepts zero only when told to: udp6_csum_rx off) and
// counts them as badChecksum; a tunnel without checksums, told to accept them, takes them. The
// datagrams are crafted at the peer's address and port, with the session's id and cookie, so the
// checksum is all that tells them from the peer's own; right checksums and pod traffic flow either way.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { ETH, hostileCases, hostileSender, sum, totals } from './hostile-traffic.js';
import { pairConfigs, podOn, tcpIntact, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

/** This suite's own subnets: 10.247.0.0/16 and fd00:247::/64 (twoHosts's n = 0). */
const NET = 247;

describe('ebpf receive path: UDP checksum 0 over IPv6', () => {
  for (const udpChecksum of [true, false]) {
    const verdict = udpChecksum ? 'refused and counted as badChecksum' : 'accepted';
    it(`a tunnel ${udpChecksum ? 'with' : 'without'} checksums: checksum 0 ${verdict}`, async () => {
      const lab = new Lab();
      try {
        const p = udpChecksum ? 'ev-zc' : 'ev-zn';
        const h = await twoHosts(lab, p, 0, true, NET);
        assert.ok(h.u1.startsWith(`fd00:${NET}:0::`), `an IPv6 underlay: ${h.u1}`);
        const bpffs = await privateBpffs(lab);
        const [c1, c2] = pairConfigs(h, {
          encap: 'udp',
          cookieLength: 8,
          l2specType: 'default',
          udpChecksum,
        });
        const mtu = sessionMtu({ encap: 'udp', ipv6: true, cookieLength: 8, l2specType: 'default' });
        const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
        const d2 = await startEbpfDatapath(lab, h.h2, c2, bpffs);
        const [a1, a2] = [`10.${NET}.100.1`, `10.${NET}.100.2`];
        await podOn(lab, h.h1, `${p}p1`, 'evbr', 'l2tpeth0', `${a1}/24`, mtu);
        await podOn(lab, h.h2, `${p}p2`, 'evbr', 'l2tpeth0', `${a2}/24`, mtu);
        assert.equal(await ping(`${p}p1`, a2, 3), 3, 'pods reach each other before');

        // frames of the session (id 1001, cookie 0x21 x 8, the default sublayer), odd lengths too
        const { msg } = hostileCases('udp');
        const frames = [0, 1, 287, 1001].map((n) =>
          msg(1001, '21'.repeat(8), '00000000' + ETH + randomBytes(n).toString('hex')),
        );
        const zeros = frames.flatMap((f) => Array<string>(5).fill(f));
        const send = hostileSender(h, 'udp');
        const before = totals(await d1.counters());
        await send(zeros);
        await send(frames, undefined, 'good');
        await new Promise((r) => setTimeout(r, 300));
        const after = totals(await d1.counters());

        const drops = (x: typeof after) => sum(x.tunnelDrops) + sum(x.sessionDrops);
        const badChecksum = (after.tunnelDrops.badChecksum ?? 0) - (before.tunnelDrops.badChecksum ?? 0);
        const rx = after.s.rxPackets - before.s.rxPackets;
        const state = JSON.stringify([after.tunnelDrops, after.sessionDrops, rx]);
        if (udpChecksum) {
          assert.equal(badChecksum, zeros.length, `every checksum 0 dropped as badChecksum: ${state}`);
          assert.equal(drops(after) - drops(before), zeros.length, `nothing else dropped: ${state}`);
        } else {
          assert.equal(drops(after) - drops(before), 0, `nothing dropped: ${state}`);
        }
        // forwarded: the right checksums always, the zeros only where the tunnel accepts them
        // (frames the host sends itself may add to the count, never take from it)
        assert.ok(rx >= frames.length + (udpChecksum ? 0 : zeros.length), `forwarded: ${state}`);
        assert.ok(after.t.rxPackets - before.t.rxPackets >= zeros.length + frames.length, 'all seen');
        // every datagram of the tunnel is forwarded or dropped under exactly one reason
        assert.equal(after.t.rxPackets, after.s.rxPackets + drops(after));

        // the peer's own traffic (checksummed or not, as the tunnel asks) flows as before
        assert.equal(await ping(`${p}p1`, a2, 3, ['-s', '1001']), 3, 'pods reach each other after');
        assert.ok(await tcpIntact(lab, `${p}p2`, `${p}p1`, a1, 4 << 20), 'TCP h2 -> h1 intact');
        const end = totals(await d1.counters());
        assert.equal(
          drops(end),
          drops(after),
          `no drops of the peer's traffic: ${JSON.stringify(end.t.drops)}`,
        );
        assert.equal(await d1.stop(), 0);
        assert.equal(await d2.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  }
});
