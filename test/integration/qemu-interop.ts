// Interop with an independent L2TPv3 implementation, QEMU's -netdev l2tpv3 on host 2, whatever
// datapath runs on host 1: pods on both sides, pings both ways and at the MTU, TCP both ways with its
// content checked, and no drop counted. The userspace and ebpf suites share it.
import assert from 'node:assert/strict';
import { sessionMtu } from '../../lib/wire/session.js';
import { ipIn, ping, type Lab } from '../harness/netns.js';
import { startQemuPeer } from '../harness/qemu-peer.js';
import { podOn, tcpBytes, tcpIntact, twoHosts, type DatapathProc, type Hosts } from './datapath-lab.js';

export interface QemuCase {
  encap: 'udp' | 'ip';
  cookie: 0 | 4 | 8;
  l2spec: 'none' | 'default';
  v6?: boolean;
  udpChecksum?: boolean;
}

/** encap x cookie x sublayer over IPv4. */
export function qemuMatrix(): QemuCase[] {
  const m: QemuCase[] = [];
  for (const encap of ['udp', 'ip'] as const)
    for (const cookie of [0, 4, 8] as const)
      for (const l2spec of ['none', 'default'] as const) m.push({ encap, cookie, l2spec });
  return m;
}

export const qemuCaseName = (m: QemuCase): string =>
  `${m.v6 ? 'IPv6 underlay, ' : ''}encap ${m.encap}, cookie ${m.cookie}, sublayer ${m.l2spec}` +
  (m.udpChecksum ? ', UDP checksums' : '');

export interface QemuInteropOptions {
  /** Namespace and interface prefix, and the underlay subnet number (see twoHosts). */
  prefix: string;
  n: number;
  /** twoHosts' second octet (default its own). */
  net?: number;
  /** The pods' /24, e.g. "10.201.202". */
  podNet: string;
  bridge: string;
  tap: string;
  /** Starts host 1's datapath with the static config. */
  start: (lab: Lab, h: Hosts, config: unknown) => Promise<DatapathProc>;
}

export async function qemuInterop(lab: Lab, m: QemuCase, o: QemuInteropOptions): Promise<void> {
  const p = o.prefix;
  const h = await twoHosts(lab, p, o.n, !!m.v6, o.net);
  const cookie = m.cookie ? Buffer.alloc(m.cookie, 0xa1).toString('hex') : undefined;
  const peerCookie = m.cookie ? Buffer.alloc(m.cookie, 0xb2).toString('hex') : undefined;
  const mtu = sessionMtu({ encap: m.encap, ipv6: !!m.v6, cookieLength: m.cookie, l2specType: m.l2spec });
  const ours = {
    tunnels: [
      {
        tunnelId: 42,
        peerTunnelId: 45,
        encap: m.encap,
        local: h.u1,
        remote: h.u2,
        ...(m.encap === 'udp' ? { udpSourcePort: 5000, udpDestinationPort: 5001 } : {}),
        ...(m.udpChecksum ? { udpChecksum: true } : {}),
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
  const dp = await o.start(lab, h, ours);
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
    tap: o.tap,
    ...(m.v6 ? { ipv6: true } : {}),
  });
  lab.onCleanup(() => q.stop());
  await ipIn(h.h2, 'link', 'set', o.tap, 'mtu', String(mtu));
  const [a1, a2] = [`${o.podNet}.1`, `${o.podNet}.2`];
  await podOn(lab, h.h1, `${p}p1`, o.bridge, 'l2tpeth0', `${a1}/24`, mtu);
  await podOn(lab, h.h2, `${p}p2`, o.bridge, o.tap, `${a2}/24`, mtu);

  assert.equal(await ping(`${p}p1`, a2, 3, ['-i', '0.2']), 3, 'ours -> qemu');
  assert.equal(await ping(`${p}p2`, a1, 3, ['-i', '0.2']), 3, 'qemu -> ours');
  assert.equal(await ping(`${p}p2`, a1, 2, ['-s', String(mtu - 28), '-M', 'do']), 2, 'MTU-sized frames');
  const up = await tcpBytes(`${p}p1`, `${p}p2`, a2, 1);
  const down = await tcpBytes(`${p}p2`, `${p}p1`, a1, 1);
  assert.ok(up > 100_000 && down > 100_000, `TCP both ways: ${up} / ${down} bytes`);
  assert.ok(await tcpIntact(lab, `${p}p1`, `${p}p2`, a2, 4 << 20), 'content ours -> qemu');
  assert.ok(await tcpIntact(lab, `${p}p2`, `${p}p1`, a1, 4 << 20), 'content qemu -> ours');
  const k = await dp.counters();
  const s = k.tunnels[0]!.sessions[0]!;
  assert.deepEqual(s.drops, {}, `no drops: ${JSON.stringify(s.drops)}`);
  assert.deepEqual(k.tunnels[0]!.drops, {});
  assert.equal(await dp.stop(), 0);
}
