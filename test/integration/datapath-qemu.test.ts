// Interop with an independent L2TPv3 implementation: QEMU's -netdev l2tpv3 on host2, our userspace
// datapath on host1, pods on both sides; every encap x cookie x sublayer combination, both directions.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ipIn, ping, requireRoot } from '../harness/netns.js';
import { startQemuPeer } from '../harness/qemu-peer.js';
import { podOn, startDatapath, tcpBytes, tcpIntact, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

const MATRIX: { encap: 'udp' | 'ip'; cookie: 0 | 4 | 8; l2spec: 'none' | 'default' }[] = [];
for (const encap of ['udp', 'ip'] as const)
  for (const cookie of [0, 4, 8] as const)
    for (const l2spec of ['none', 'default'] as const) MATRIX.push({ encap, cookie, l2spec });

describe('interop with QEMU -netdev l2tpv3', () => {
  MATRIX.forEach((m, idx) => {
    it(`encap ${m.encap}, cookie ${m.cookie}, sublayer ${m.l2spec}`, async () => {
      const lab = new Lab();
      try {
        const h = await twoHosts(lab, `kdq${idx}`, 40 + idx);
        const cookie = m.cookie ? Buffer.alloc(m.cookie, 0xa1).toString('hex') : undefined;
        const peerCookie = m.cookie ? Buffer.alloc(m.cookie, 0xb2).toString('hex') : undefined;
        const mtu = sessionMtu({ encap: m.encap, ipv6: false, cookieLength: m.cookie, l2specType: m.l2spec });
        const ours = {
          tunnels: [
            {
              tunnelId: 42,
              peerTunnelId: 45,
              encap: m.encap,
              local: h.u1,
              remote: h.u2,
              ...(m.encap === 'udp' ? { udpSourcePort: 5000, udpDestinationPort: 5001 } : {}),
              sessions: [
                {
                  sessionId: 128,
                  peerSessionId: 5196755,
                  name: 'l2tpeth0',
                  ...(cookie ? { cookie, peerCookie } : {}),
                  l2specType: m.l2spec,
                },
              ],
            },
          ],
        };
        const dp = await startDatapath(lab, h.h1, ours);
        const q = await startQemuPeer(h.h2, {
          encap: m.encap,
          src: h.u2,
          dst: h.u1,
          srcport: 5001,
          dstport: 5000,
          txsession: 128,
          rxsession: 5196755,
          ...(cookie && peerCookie ? { txcookie: peerCookie, rxcookie: cookie } : {}),
          counter: m.l2spec === 'default',
          tap: 'kdqtap',
        });
        lab.onCleanup(() => q.stop());
        await ipIn(h.h2, 'link', 'set', 'kdqtap', 'mtu', String(mtu));
        await podOn(lab, h.h1, `kdq${idx}p1`, 'kdbr', 'l2tpeth0', '10.201.202.1/24', mtu);
        await podOn(lab, h.h2, `kdq${idx}p2`, 'kdbr', 'kdqtap', '10.201.202.2/24', mtu);

        assert.equal(await ping(`kdq${idx}p1`, '10.201.202.2', 3, ['-i', '0.2']), 3, 'ours -> qemu');
        assert.equal(await ping(`kdq${idx}p2`, '10.201.202.1', 3, ['-i', '0.2']), 3, 'qemu -> ours');
        assert.equal(
          await ping(`kdq${idx}p2`, '10.201.202.1', 2, ['-s', String(mtu - 28), '-M', 'do']),
          2,
          'MTU-sized frames',
        );
        const up = await tcpBytes(`kdq${idx}p1`, `kdq${idx}p2`, '10.201.202.2', 1);
        const down = await tcpBytes(`kdq${idx}p2`, `kdq${idx}p1`, '10.201.202.1', 1);
        assert.ok(up > 100_000 && down > 100_000, `TCP both ways: ${up} / ${down} bytes`);
        assert.ok(
          await tcpIntact(lab, `kdq${idx}p1`, `kdq${idx}p2`, '10.201.202.2', 4 << 20),
          'content ours -> qemu',
        );
        assert.ok(
          await tcpIntact(lab, `kdq${idx}p2`, `kdq${idx}p1`, '10.201.202.1', 4 << 20),
          'content qemu -> ours',
        );
        const k = await dp.counters();
        const s = k.tunnels[0]!.sessions[0]!;
        assert.deepEqual(s.drops, {}, `no drops: ${JSON.stringify(s.drops)}`);
        assert.deepEqual(k.tunnels[0]!.drops, {});
        await dp.stop();
      } finally {
        await lab.cleanup();
      }
    });
  });
});
