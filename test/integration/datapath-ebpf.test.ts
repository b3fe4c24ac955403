// The ebpf backend carrying pseudowires: against itself, against the userspace pump, and against an
// independent implementation (QEMU's -netdev l2tpv3) across encap x cookie x sublayer, both
// directions; the bytes on the wire are checked against the kernel's format.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ping, requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { privateBpffs, softwareChecksums, startEbpfDatapath } from './datapath-ebpf-lab.js';
import {
  captureWhile,
  pairConfigs,
  podOn,
  readPcap,
  startDatapath,
  tcpIntact,
  twoHosts,
  type PairOptions,
} from './datapath-lab.js';
import { qemuCaseName, qemuInterop, qemuMatrix, type QemuCase } from './qemu-interop.js';

before(() => requireRoot());

const mtuOf = (o: PairOptions, v6 = false) =>
  sessionMtu({
    encap: o.encap,
    ipv6: v6,
    cookieLength: o.cookieLength ?? 0,
    l2specType: o.l2specType ?? 'default',
  });

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

        if (o.sequence) {
          // frames h1 sent before h2's datapath was up took sequence numbers: h2 drops what is out of
          // sequence until it takes h1's numbering (after more than 4 such frames, as the kernel does)
          const inStep = async () =>
            (await ping(`${p}p1`, `10.202.${idx}.2`, 1, ['-W', '1'])) === 1 &&
            (await ping(`${p}p2`, `10.202.${idx}.1`, 1, ['-W', '1'])) === 1;
          await until('sequence numbers in step both ways', inStep, 30_000, 100);
        }
        const filter = o.encap === 'udp' ? 'udp port 5001' : v6 ? 'ip6 proto 115' : 'ip proto 115';
        const pcap = await captureWhile(lab, h.h2, `${p}u2`, `src host ${h.u1} and ${filter}`, async () => {
          assert.equal(await ping(`${p}p1`, `10.202.${idx}.2`, 3, ['-i', '0.2']), 3, 'h1 -> h2');
        });
        const frames = await readPcap(pcap);
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

// QEMU's UDP socket drops IPv6 datagrams with checksum 0: IP encapsulation there (UDP over IPv6 with
// checksums is in the checksum suite)
const MATRIX: QemuCase[] = [
  ...qemuMatrix(),
  { encap: 'ip', cookie: 4, l2spec: 'default', v6: true },
  { encap: 'ip', cookie: 0, l2spec: 'none', v6: true },
];

describe('ebpf interop with QEMU -netdev l2tpv3', () => {
  MATRIX.forEach((m, idx) => {
    it(qemuCaseName(m), async () => {
      const lab = new Lab();
      try {
        const p = `ebq${idx}`;
        await qemuInterop(lab, m, {
          prefix: p,
          n: 100 + idx,
          podNet: '10.202.50',
          bridge: 'ebbr',
          tap: 'ebqtap',
          start: async (l, h, config) => {
            const dp = await startEbpfDatapath(l, h.h1, config, await privateBpffs(l));
            await softwareChecksums(h.h1, `${p}u1`);
            return dp;
          },
        });
      } finally {
        await lab.cleanup();
      }
    });
  });
});
