// The userspace datapath between two hosts over a veth underlay, pods bridged to the session TAPs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCapture } from '../../lib/exec.js';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, inNsCapture, ipIn, ping, requireRoot } from '../harness/netns.js';
import {
  staticArgv,
  pairConfigs,
  podOn,
  readPcap,
  startDatapath,
  tcpBytes,
  tcpIntact,
  twoHosts,
  type PairOptions,
} from './datapath-lab.js';

// offload: TAP virtio headers with TSO/merging (the default) or one frame per syscall.
// udpChecksum: UDP checksums on, which also enables UDP GSO trains for TSO super-frames.
type Case = PairOptions & { title: string; offload: boolean; v6?: boolean };
const CASES: Case[] = [
  {
    title: 'udp, no cookie, default sublayer',
    encap: 'udp',
    cookieLength: 0,
    l2specType: 'default',
    offload: true,
  },
  {
    title: 'udp, 4-byte cookie, sublayer none',
    encap: 'udp',
    cookieLength: 4,
    l2specType: 'none',
    offload: false,
  },
  {
    title: 'udp, 8-byte cookie, default sublayer, sequencing',
    encap: 'udp',
    cookieLength: 8,
    sequence: true,
    offload: true,
  },
  {
    title: 'udp, 4-byte cookie, UDP checksums (GSO)',
    encap: 'udp',
    cookieLength: 4,
    udpChecksum: true,
    offload: true,
  },
  {
    title: 'ip, 8-byte cookie, sublayer none',
    encap: 'ip',
    cookieLength: 8,
    l2specType: 'none',
    offload: true,
  },
  {
    title: 'ip, 4-byte cookie, default sublayer, sequencing',
    encap: 'ip',
    cookieLength: 4,
    sequence: true,
    offload: false,
  },
  {
    title: 'ip, no cookie, default sublayer',
    encap: 'ip',
    cookieLength: 0,
    l2specType: 'default',
    offload: false,
  },
  { title: 'udp over IPv6, 8-byte cookie', encap: 'udp', cookieLength: 8, offload: true, v6: true },
  {
    title: 'ip over IPv6, 4-byte cookie, sublayer none',
    encap: 'ip',
    cookieLength: 4,
    l2specType: 'none',
    offload: true,
    v6: true,
  },
];

before(() => requireRoot());

describe('userspace datapath: pod to pod across a pseudowire', () => {
  CASES.forEach((c, idx) => {
    it(`${c.title}, offload ${c.offload ? 'on' : 'off'}`, async () => {
      const lab = new Lab();
      try {
        const h = await twoHosts(lab, `kdu${idx}`, 10 + idx, !!c.v6);
        const [c1, c2] = pairConfigs(h, c);
        const args = ['--offload', c.offload ? 'on' : 'off'];
        const d1 = await startDatapath(lab, h.h1, c1, true, args);
        const d2 = await startDatapath(lab, h.h2, c2, true, args);
        const mtu = sessionMtu({
          encap: c.encap,
          ipv6: !!c.v6,
          cookieLength: c.cookieLength ?? 0,
          l2specType: c.l2specType ?? 'default',
        });
        const ready = (await d1.waitFor('ready')) as { sessions: { ifname: string; mtu: number }[] };
        assert.equal(ready.sessions[0]?.mtu, mtu, 'MTU computed like the kernel');
        const link = JSON.parse(await ipIn(h.h1, '-j', '-d', 'link', 'show', 'l2tpeth0')) as {
          mtu: number;
          ifalias?: string;
        }[];
        assert.equal(link[0]?.mtu, mtu);
        assert.match(link[0]?.ifalias ?? '', /^kube-l2tp tunnel=42 session=1001$/);
        const details = await ipIn(h.h1, '-d', 'link', 'show', 'l2tpeth0');
        assert.match(details, c.offload ? /vnet_hdr on/ : /vnet_hdr off/, 'TAP offload mode set explicitly');

        const p1 = `kdu${idx}p1`;
        const p2 = `kdu${idx}p2`;
        await podOn(lab, h.h1, p1, 'kdbr', 'l2tpeth0', '10.201.200.1/24', mtu);
        await podOn(lab, h.h2, p2, 'kdbr', 'l2tpeth0', '10.201.200.2/24', mtu);

        // Capture the underlay while pinging, to check the bytes on the wire.
        const dir = await mkdtemp(join(tmpdir(), 'kd-cap-'));
        lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
        const cap = join(dir, 'u.pcap');
        const filter = `${c.encap === 'udp' ? 'udp' : c.v6 ? 'ip6 proto 115' : 'ip proto 115'} and src host ${h.u1}`;
        const dump = spawn(
          'ip',
          ['netns', 'exec', h.h1, 'tcpdump', '-U', '-s', '200', '-i', `kdu${idx}u1`, '-w', cap, filter],
          {
            stdio: 'ignore',
          },
        );
        lab.onCleanup(async () => dump.kill('SIGKILL'));
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(await ping(p1, '10.201.200.2', 5, ['-i', '0.2']), 5, 'ping pod1 -> pod2');
        assert.equal(await ping(p2, '10.201.200.1', 3, ['-i', '0.2']), 3, 'ping pod2 -> pod1');
        // A full-size frame: MTU-sized ICMP without fragmentation.
        assert.equal(
          await ping(p1, '10.201.200.2', 2, ['-s', String(mtu - 28), '-M', 'do']),
          2,
          'MTU-sized ping',
        );
        await new Promise((r) => setTimeout(r, 300));
        dump.kill('SIGTERM');
        await new Promise((r) => dump.once('exit', r));

        // Watch the receiving TAP: with offload, merged TCP segments larger than the MTU are written.
        const watch = spawn(
          'ip',
          ['netns', 'exec', h.h2, 'tcpdump', '-nn', '-l', '-i', 'l2tpeth0', '-c', '400', 'tcp'],
          {
            stdio: ['ignore', 'pipe', 'ignore'],
          },
        );
        let watched = '';
        watch.stdout.on('data', (d: Buffer) => (watched += d.toString()));
        lab.onCleanup(async () => watch.kill('SIGKILL'));
        await new Promise((r) => setTimeout(r, 500));
        const bytes = await tcpBytes(p1, p2, '10.201.200.2', 1);
        watch.kill('SIGTERM');
        const biggest = Math.max(0, ...[...watched.matchAll(/length (\d+)/g)].map((m) => Number(m[1])));
        if (c.offload) assert.ok(biggest > mtu, `merged TCP frames on the TAP (largest payload ${biggest})`);
        else
          assert.ok(
            biggest > 0 && biggest <= mtu,
            `one frame per write without offload (largest ${biggest})`,
          );
        assert.ok(bytes > 100_000, `TCP moved ${bytes} bytes`);
        // Segmentation and merging must not alter a byte (merged frames skip the receiver's checksum).
        assert.ok(await tcpIntact(lab, p1, p2, '10.201.200.2'), 'TCP content intact pod1 -> pod2');
        assert.ok(await tcpIntact(lab, p2, p1, '10.201.200.1'), 'TCP content intact pod2 -> pod1');

        // Wire format: the header the kernel would send.
        const frames = await readPcap(cap);
        assert.ok(frames.length >= 5, `captured ${frames.length} frames`);
        const pod1Mac = (
          JSON.parse(await ipIn(p1, '-j', 'link', 'show', 'eth0')) as { address: string }[]
        )[0]!.address;
        let seqs: number[] = [];
        for (const f of frames) {
          let o = 14 + (c.v6 ? 40 : (f[14]! & 0x0f) * 4);
          if (c.encap === 'udp') {
            if (c.udpChecksum || c.v6)
              assert.notEqual(f.readUInt16BE(o + 6), 0, 'UDP checksum (configured, or IPv6)');
            else assert.equal(f.readUInt16BE(o + 6), 0, 'UDP checksum 0 on IPv4, like the kernel');
            o += 8;
            assert.equal(f.readUInt32BE(o), 0x00030000, 'ver/flags word');
            o += 4;
          }
          assert.equal(f.readUInt32BE(o), 2001, 'peer session id');
          o += 4;
          const ck = c.cookieLength ?? 0;
          if (ck)
            assert.equal(
              f.subarray(o, o + ck).toString('hex'),
              Buffer.alloc(ck, 17).toString('hex'),
              'local cookie',
            );
          o += ck;
          if ((c.l2specType ?? 'default') === 'default') {
            const w = f.readUInt32BE(o);
            if (c.sequence) {
              assert.equal(w & 0xff000000, 0x40000000, 'S bit');
              seqs.push(w & 0xffffff);
            } else assert.equal(w, 0, 'sublayer all zero without sequencing');
            o += 4;
          }
          // inner Ethernet: frames from pod1 carry its MAC as source (ARP/ICMP)
          if (f.subarray(o + 6, o + 12).toString('hex') === pod1Mac.replaceAll(':', '')) seqs = seqs.slice();
        }
        const inner = frames.filter((f) => f.toString('hex').includes(pod1Mac.replaceAll(':', '')));
        assert.ok(inner.length >= 5, 'inner frames carry pod1 MAC');
        if (c.sequence) {
          for (let i = 1; i < seqs.length; i++)
            assert.equal(seqs[i], (seqs[i - 1]! + 1) & 0xffffff, 'consecutive ns');
        }

        const k = await d2.counters();
        const s = k.tunnels[0]!.sessions[0]!;
        assert.ok(s.rxPackets >= 10, `host2 session received ${s.rxPackets}`);
        // Frames sent before the peer's socket existed consumed sequence numbers: the receiver
        // resynchronises after more than 4 out-of-sequence frames, as the kernel does.
        const { sequence = 0, ...others } = s.drops;
        assert.deepEqual(others, {}, `no drops on a clean path: ${JSON.stringify(s.drops)}`);
        assert.ok(c.sequence ? sequence <= 10 : sequence === 0, `sequence drops: ${sequence}`);

        assert.equal(await d1.stop(), 0);
        assert.equal(await d2.stop(), 0);
        const left = await inNsCapture(h.h1, 'ip', 'link', 'show', 'l2tpeth0');
        assert.notEqual(left.code, 0, 'SIGTERM removed the TAP it created');
      } finally {
        await lab.cleanup();
      }
    });
  });

  it('several sessions in one tunnel stay isolated', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'kdui', 30);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4, sessions: 3 });
      const d1 = await startDatapath(lab, h.h1, c1);
      const d2 = await startDatapath(lab, h.h2, c2);
      const mtu = 1442;
      // Same subnet everywhere: only the pseudowire separates them.
      for (let i = 0; i < 3; i++) {
        await podOn(lab, h.h1, `kdui${i}a`, `kdbr${i}`, `l2tpeth${i}`, `10.201.201.${10 + i}/24`, mtu);
        await podOn(lab, h.h2, `kdui${i}b`, `kdbr${i}`, `l2tpeth${i}`, `10.201.201.${20 + i}/24`, mtu);
      }
      const mac0 = (
        JSON.parse(await ipIn('kdui0a', '-j', 'link', 'show', 'eth0')) as { address: string }[]
      )[0]!.address;
      const watchers = [1, 2].map((i) =>
        spawn(
          'ip',
          ['netns', 'exec', h.h2, 'tcpdump', '-l', '-nn', '-e', '-i', `l2tpeth${i}`, 'ether', 'host', mac0],
          {
            stdio: ['ignore', 'pipe', 'ignore'],
          },
        ),
      );
      const seen = ['', ''];
      watchers.forEach((w, i) => w.stdout.on('data', (d: Buffer) => (seen[i] += d.toString())));
      lab.onCleanup(async () => watchers.forEach((w) => w.kill('SIGKILL')));
      await new Promise((r) => setTimeout(r, 700));

      for (let i = 0; i < 3; i++)
        assert.equal(await ping(`kdui${i}a`, `10.201.201.${20 + i}`, 3, ['-i', '0.2']), 3, `session ${i}`);
      // Across sessions nothing answers (ARP itself never crosses).
      assert.equal(await ping('kdui0a', '10.201.201.21', 2), 0, 'session 0 cannot reach session 1');
      assert.equal(await ping('kdui1a', '10.201.201.22', 2), 0, 'session 1 cannot reach session 2');
      await ping('kdui0a', '10.201.201.255', 3, ['-b', '-i', '0.2']);
      await new Promise((r) => setTimeout(r, 500));
      watchers.forEach((w) => w.kill('SIGTERM'));
      assert.equal(seen[0], '', 'no frame of session 0 appeared on session 1');
      assert.equal(seen[1], '', 'no frame of session 0 appeared on session 2');

      const k = await d2.counters();
      const [s0, s1] = k.tunnels[0]!.sessions;
      assert.ok(s0!.rxPackets >= 5, 'session 0 carried the traffic');
      assert.ok(s1!.rxPackets < s0!.rxPackets, 'session 1 did not');
      await d1.stop();
      await d2.stop();
    } finally {
      await lab.cleanup();
    }
  });

  it('rejects a bad file with field paths before creating anything', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns('kdubad');
      const dir = await mkdtemp(join(tmpdir(), 'kd-bad-'));
      lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
      const file = join(dir, 'bad.yaml');
      await writeFile(
        file,
        [
          'tunnels:',
          '  - {tunnelId: 1, peerTunnelId: 2, encap: udp, local: 10.201.9.1, remote: 10.201.9.2, udpSourcePort: 1, udpDestinationPort: 2,',
          '     sessions: [{sessionId: 10, peerSessionId: 20, name: kdgood0},',
          '                {sessionId: 11, peerSessionId: 0, cookie: "0102", name: kdgood1}]}',
        ].join('\n'),
      );
      const r = await runCapture('ip', staticArgv(ns, file));
      assert.equal(r.code, 2);
      assert.match(r.stderr, /tunnels\[0\]\.sessions\[1\]\.peerSessionId: must be non-zero/);
      assert.match(r.stderr, /tunnels\[0\]\.sessions\[1\]\.cookie: must be 4 or 8 bytes/);
      const links = await ipIn(ns, '-o', 'link', 'show');
      assert.doesNotMatch(links, /kdgood/, 'nothing was created');
    } finally {
      await lab.cleanup();
    }
  });
});

after(async () => undefined);
