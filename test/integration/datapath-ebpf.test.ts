// The ebpf backend carrying pseudowires: against itself, against the userspace pump, and against an
// independent implementation (QEMU's -netdev l2tpv3) across encap x cookie x sublayer, both
// directions; the bytes on the wire are checked against the kernel's format.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ipIn, ping, requireRoot } from '../harness/netns.js';
import { startQemuPeer } from '../harness/qemu-peer.js';
import { privateBpffs, softwareChecksums, startEbpfDatapath } from './datapath-ebpf-lab.js';
import {
  pairConfigs,
  podOn,
  readPcap,
  startDatapath,
  tcpBytes,
  tcpIntact,
  twoHosts,
  type PairOptions,
} from './datapath-lab.js';

before(() => requireRoot());

const mtuOf = (o: PairOptions, v6 = false) =>
  sessionMtu({
    encap: o.encap,
    ipv6: v6,
    cookieLength: o.cookieLength ?? 0,
    l2specType: o.l2specType ?? 'default',
  });

/** Captures n frames of the tunnel on dev in ns while fn runs. */
async function capture(lab: Lab, ns: string, dev: string, filter: string, fn: () => Promise<unknown>) {
  const dir = await mkdtemp(join(tmpdir(), 'eb-cap-'));
  lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'cap.pcap');
  const dump = spawn(
    'ip',
    ['netns', 'exec', ns, 'tcpdump', '-U', '--immediate-mode', '-n', '-i', dev, '-w', file, filter],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const exited = new Promise((r) => dump.on('exit', r));
  lab.onCleanup(async () => dump.kill('SIGKILL'));
  // tcpdump says "listening on" once its socket is bound
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    dump.stderr!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await fn();
  await new Promise((r) => setTimeout(r, 300));
  dump.kill('SIGINT');
  await exited;
  return readPcap(file);
}

const PAIRS: { name: string; o: PairOptions; peer: 'ebpf' | 'userspace'; v6?: boolean }[] = [
  { name: 'udp, 8-byte cookies, default sublayer', o: { encap: 'udp', cookieLength: 8 }, peer: 'ebpf' },
  { name: 'udp, no cookie, no sublayer', o: { encap: 'udp', l2specType: 'none' }, peer: 'ebpf' },
  { name: 'ip, 4-byte cookies, default sublayer', o: { encap: 'ip', cookieLength: 4 }, peer: 'ebpf' },
  {
    name: 'udp, sequencing both ways',
    o: { encap: 'udp', cookieLength: 4, sequence: true },
    peer: 'ebpf',
  },
  {
    name: 'IPv6 underlay, udp, 4-byte cookies, default sublayer',
    o: { encap: 'udp', cookieLength: 4 },
    peer: 'ebpf',
    v6: true,
  },
  {
    name: 'IPv6 underlay, ip, 8-byte cookies, no sublayer',
    o: { encap: 'ip', cookieLength: 8, l2specType: 'none' },
    peer: 'ebpf',
    v6: true,
  },
  { name: 'udp, 4-byte cookies, default sublayer', o: { encap: 'udp', cookieLength: 4 }, peer: 'userspace' },
  {
    name: 'ip, 8-byte cookies, no sublayer',
    o: { encap: 'ip', cookieLength: 8, l2specType: 'none' },
    peer: 'userspace',
  },
  {
    name: 'udp, sequencing both ways',
    o: { encap: 'udp', l2specType: 'default', sequence: true },
    peer: 'userspace',
  },
];

describe('ebpf datapath', () => {
  PAIRS.forEach(({ name, o, peer, v6 = false }, idx) => {
    it(`ebpf <-> ${peer}: ${name}`, async () => {
      const lab = new Lab();
      try {
        const p = `ebd${idx}`;
        const h = await twoHosts(lab, p, 80 + idx, v6);
        const bpffs = await privateBpffs(lab);
        const [c1, c2] = pairConfigs(h, o);
        const mtu = mtuOf(o, v6);
        const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
        const d2 =
          peer === 'ebpf'
            ? await startEbpfDatapath(lab, h.h2, c2, bpffs)
            : await startDatapath(lab, h.h2, c2);
        if (peer === 'userspace') await softwareChecksums(h.h1, `${p}u1`);
        await podOn(lab, h.h1, `${p}p1`, 'ebbr', 'l2tpeth0', `10.202.${idx}.1/24`, mtu);
        await podOn(lab, h.h2, `${p}p2`, 'ebbr', 'l2tpeth0', `10.202.${idx}.2/24`, mtu);

        const filter = o.encap === 'udp' ? 'udp port 5001' : v6 ? 'ip6 proto 115' : 'ip proto 115';
        const frames = await capture(lab, h.h2, `${p}u2`, `src host ${h.u1} and ${filter}`, async () => {
          assert.equal(await ping(`${p}p1`, `10.202.${idx}.2`, 3, ['-i', '0.2']), 3, 'h1 -> h2');
        });
        assert.equal(await ping(`${p}p2`, `10.202.${idx}.1`, 3, ['-i', '0.2']), 3, 'h2 -> h1');
        assert.equal(
          await ping(`${p}p1`, `10.202.${idx}.2`, 2, ['-s', String(mtu - 28), '-M', 'do']),
          2,
          'MTU-sized frames',
        );
        // the wire format, byte for byte after the outer IP header (see pairConfigs for the values)
        const cookie = o.cookieLength ? Buffer.alloc(o.cookieLength, 0x11) : Buffer.alloc(0);
        const l2spec = (o.l2specType ?? 'default') === 'default';
        // every frame has our header; the pings are the ones carrying IPv4 (the host side also sends
        // IPv6 neighbour discovery through the pseudowire)
        const seqs: number[] = [];
        let pings = 0;
        for (const f of frames) {
          assert.equal(f.readUInt16BE(12), v6 ? 0x86dd : 0x0800);
          let off = 14 + (v6 ? 40 : (f[14]! & 0x0f) * 4);
          if (o.encap === 'udp') {
            assert.equal(f.readUInt16BE(off), 5001, 'source port');
            assert.equal(f.readUInt16BE(off + 2), 5002, 'destination port');
            assert.equal(f.readUInt16BE(off + 4), f.length - off, 'UDP length');
            assert.equal(f.readUInt16BE(off + 6), 0, 'UDP checksum 0');
            assert.equal(f.readUInt32BE(off + 8), 0x00030000, 'flags/version, reserved');
            off += 12;
          } else {
            assert.equal(v6 ? f[14 + 6] : f[14 + 9], 115, 'IP protocol 115');
          }
          assert.equal(f.readUInt32BE(off), 2001, "the peer's session id");
          off += 4;
          assert.ok(f.subarray(off, off + cookie.length).equals(cookie), 'our cookie');
          off += cookie.length;
          if (l2spec) {
            const w = f.readUInt32BE(off);
            if (o.sequence) {
              assert.equal(w & 0xff000000, 0x40000000, 'S bit and sequence number');
              seqs.push(w & 0xffffff);
            } else assert.equal(w, 0, 'default sublayer without sequencing');
            off += 4;
          }
          if (f.readUInt16BE(off + 12) === 0x0800 && f[off + 14 + 9] === 1) pings++;
        }
        assert.ok(pings >= 3, `the pings inside the captured frames: ${pings} of ${frames.length}`);
        if (o.sequence) {
          for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `increasing: ${seqs}`);
        }

        assert.ok(
          await tcpIntact(lab, `${p}p1`, `${p}p2`, `10.202.${idx}.2`, 8 << 20),
          'TCP h1 -> h2 intact',
        );
        assert.ok(
          await tcpIntact(lab, `${p}p2`, `${p}p1`, `10.202.${idx}.1`, 8 << 20),
          'TCP h2 -> h1 intact',
        );
        const k = await d1.counters();
        const t = k.tunnels[0]!;
        const s = t.sessions[0]!;
        assert.deepEqual(t.drops, {}, 'no tunnel drops');
        if (o.sequence) {
          // frames numbered on one CPU can overtake frames numbered on another: like the kernel with
          // reorderTimeout 0, the late ones are dropped (TCP repairs it, as the content checks showed).
          // How many depends on the scheduler (1.3% seen on a loaded 2-core machine); broken numbering
          // drops most frames, which this bound still catches.
          const { sequence = 0, ...rest } = s.drops;
          assert.deepEqual(rest, {}, 'no other session drops');
          assert.ok(sequence < s.rxPackets / 10, `out-of-order drops: ${sequence} of ${s.rxPackets}`);
        } else assert.deepEqual(s.drops, {}, 'no session drops');
        assert.ok(s.rxPackets > 1000 && s.txPackets > 1000, `counted: ${JSON.stringify(s)}`);
        assert.equal(await d1.stop(), 0);
        assert.equal(await d2.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  });
});

const MATRIX: { encap: 'udp' | 'ip'; cookie: 0 | 4 | 8; l2spec: 'none' | 'default'; v6?: boolean }[] = [];
for (const encap of ['udp', 'ip'] as const)
  for (const cookie of [0, 4, 8] as const)
    for (const l2spec of ['none', 'default'] as const) MATRIX.push({ encap, cookie, l2spec });
// QEMU's UDP socket drops IPv6 datagrams with checksum 0 (what this backend sends): IP encapsulation
MATRIX.push(
  { encap: 'ip', cookie: 4, l2spec: 'default', v6: true },
  { encap: 'ip', cookie: 0, l2spec: 'none', v6: true },
);

describe('ebpf interop with QEMU -netdev l2tpv3', () => {
  MATRIX.forEach((m, idx) => {
    it(`${m.v6 ? 'IPv6 underlay, ' : ''}encap ${m.encap}, cookie ${m.cookie}, sublayer ${m.l2spec}`, async () => {
      const lab = new Lab();
      try {
        const p = `ebq${idx}`;
        const h = await twoHosts(lab, p, 100 + idx, m.v6);
        const bpffs = await privateBpffs(lab);
        const cookie = m.cookie ? Buffer.alloc(m.cookie, 0xa1).toString('hex') : undefined;
        const peerCookie = m.cookie ? Buffer.alloc(m.cookie, 0xb2).toString('hex') : undefined;
        const mtu = sessionMtu({
          encap: m.encap,
          ipv6: !!m.v6,
          cookieLength: m.cookie,
          l2specType: m.l2spec,
        });
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
        const dp = await startEbpfDatapath(lab, h.h1, ours, bpffs);
        await softwareChecksums(h.h1, `${p}u1`);
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
          tap: 'ebqtap',
          ...(m.v6 ? { ipv6: true } : {}),
        });
        lab.onCleanup(() => q.stop());
        await ipIn(h.h2, 'link', 'set', 'ebqtap', 'mtu', String(mtu));
        await podOn(lab, h.h1, `${p}p1`, 'ebbr', 'l2tpeth0', '10.202.50.1/24', mtu);
        await podOn(lab, h.h2, `${p}p2`, 'ebbr', 'ebqtap', '10.202.50.2/24', mtu);

        assert.equal(await ping(`${p}p1`, '10.202.50.2', 3, ['-i', '0.2']), 3, 'ours -> qemu');
        assert.equal(await ping(`${p}p2`, '10.202.50.1', 3, ['-i', '0.2']), 3, 'qemu -> ours');
        assert.equal(
          await ping(`${p}p2`, '10.202.50.1', 2, ['-s', String(mtu - 28), '-M', 'do']),
          2,
          'MTU-sized frames',
        );
        const up = await tcpBytes(`${p}p1`, `${p}p2`, '10.202.50.2', 1);
        const down = await tcpBytes(`${p}p2`, `${p}p1`, '10.202.50.1', 1);
        assert.ok(up > 100_000 && down > 100_000, `TCP both ways: ${up} / ${down} bytes`);
        assert.ok(await tcpIntact(lab, `${p}p1`, `${p}p2`, '10.202.50.2', 4 << 20), 'content ours -> qemu');
        assert.ok(await tcpIntact(lab, `${p}p2`, `${p}p1`, '10.202.50.1', 4 << 20), 'content qemu -> ours');
        const k = await dp.counters();
        assert.deepEqual(k.tunnels[0]!.sessions[0]!.drops, {});
        assert.deepEqual(k.tunnels[0]!.drops, {});
        assert.equal(await dp.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  });
});
