import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run, runOk } from '../../../lib/exec.js';
import { silentLogger } from '../../../lib/log.js';
import { probeKernelL2tp } from '../kernel/index.js';
import { selectBackend } from '../select.js';
import {
  MAP_ENTRIES,
  SIZES,
  StatsSlots,
  decodeRxCfg,
  decodeTunKey,
  decodeTunVal,
  encodeRxCfg,
  encodeTunKey,
  encodeTunVal,
  encodeTxCfg,
  macBytes,
  sumPerCpu,
  decodeSessStats,
  decodeTunStats,
  tunKeyOfTxCfg,
} from './maps.js';
import { DROP_REASONS } from '../types.js';
import { addonPath, loadEbpfNative } from './native.js';

const OBJECT = join(addonPath(), '../../../../build/l2tp.bpf.o');

interface BtfType {
  kind: string;
  name?: string;
  size?: number;
  members?: { name: string; bits_offset: number }[];
}

/** Struct layouts as the compiler laid them out, from the object's BTF. */
async function btfStructs(): Promise<Map<string, { size: number; offsets: Record<string, number> }>> {
  const out = JSON.parse(await run('bpftool', ['-j', 'btf', 'dump', 'file', OBJECT])) as { types: BtfType[] };
  const m = new Map<string, { size: number; offsets: Record<string, number> }>();
  for (const t of out.types) {
    if (t.kind !== 'STRUCT' || !t.name) continue;
    m.set(t.name, {
      size: t.size ?? 0,
      offsets: Object.fromEntries((t.members ?? []).map((x) => [x.name, x.bits_offset / 8])),
    });
  }
  return m;
}

describe('ebpf map layouts (maps.ts against the compiled programs)', () => {
  it('sizes and field offsets agree with the object file', async () => {
    const s = await btfStructs();
    const size = (n: string) => s.get(n)?.size;
    assert.deepEqual(
      [
        size('tx_cfg'),
        size('tun_key'),
        size('tun_val'),
        size('rx_cfg'),
        size('sess_stats'),
        size('tun_stats'),
        size('seq_state'),
      ],
      [SIZES.txCfg, SIZES.tunKey, SIZES.tunVal, SIZES.rxCfg, SIZES.sessStats, SIZES.tunStats, SIZES.seqState],
    );
    const txOpts = {
      sessionId: 7,
      peerSessionId: 0x01020304,
      underlayIfindex: 9,
      local: '10.1.2.3',
      remote: '10.4.5.6',
      sport: 1701,
      dport: 1702,
      encap: 'ip',
      cookie: Buffer.from('a1b2c3d4', 'hex'),
      l2specLength: 4,
      sendSequence: true,
      udpChecksum: true,
      dmac: macBytes('02:00:00:00:00:0a'),
      smac: macBytes('02:00:00:00:00:0b'),
      nexthop: '10.1.2.254',
      statsSlot: 0x0a0b0c0d,
    } as const;
    const tx = encodeTxCfg(txOpts);
    const o = s.get('tx_cfg')!.offsets;
    assert.equal(tx.readUInt32LE(o.session_id!), 7);
    assert.equal(tx.readUInt32LE(o.peer_session_id!), 0x01020304);
    assert.equal(tx.readUInt32LE(o.underlay_ifindex!), 9);
    assert.deepEqual([...tx.subarray(o.saddr!, o.saddr! + 4)], [10, 1, 2, 3]);
    assert.deepEqual([...tx.subarray(o.daddr!, o.daddr! + 4)], [10, 4, 5, 6]);
    assert.equal(tx[o.family!], 4);
    assert.equal(tx.readUInt16BE(o.sport!), 1701, 'ports in network order');
    assert.equal(tx.readUInt16BE(o.dport!), 1702);
    assert.deepEqual([tx[o.encap!], tx[o.cookie_len!], tx[o.l2spec_len!], tx[o.flags!]], [1, 4, 4, 1]);
    assert.equal(encodeTxCfg({ ...txOpts, encap: 'udp' })[o.flags!], 3, 'UDP checksums: UDP only');
    assert.equal(tx.subarray(o.cookie!, o.cookie! + 4).toString('hex'), 'a1b2c3d4');
    assert.equal(tx.subarray(o.dmac!, o.dmac! + 6).toString('hex'), '02000000000a');
    assert.equal(tx.subarray(o.smac!, o.smac! + 6).toString('hex'), '02000000000b');
    assert.equal(tx[o.has_nexthop!], 1);
    assert.deepEqual([...tx.subarray(o.nexthop!, o.nexthop! + 4)], [10, 1, 2, 254]);
    assert.equal(tx.readUInt32LE(o.stats_slot!), 0x0a0b0c0d);
    const v6nh = encodeTxCfg({ ...txOpts, nexthop: 'fe80::1' });
    assert.equal(v6nh[o.has_nexthop!], 0, 'a next hop of another family: the kernel routes');
    assert.equal(v6nh.subarray(o.nexthop!, o.nexthop! + 16).toString('hex'), '0'.repeat(32));

    const rx = encodeRxCfg({
      tunnelId: 42,
      ifindex: 5,
      devIfindex: 6,
      peerCookie: Buffer.from('0102030405060708', 'hex'),
      l2specLength: 0,
      requireSequence: true,
      udpChecksum: false,
      statsSlot: 77,
      tunSlot: 0x01020304,
    });
    const r = s.get('rx_cfg')!.offsets;
    assert.deepEqual(
      [rx.readUInt32LE(r.tunnel_id!), rx.readUInt32LE(r.ifindex!), rx.readUInt32LE(r.dev_ifindex!)],
      [42, 5, 6],
    );
    assert.deepEqual([rx[r.cookie_len!], rx[r.l2spec_len!], rx[r.flags!]], [8, 0, 1]);
    const rxCsum = (requireSequence: boolean) =>
      encodeRxCfg({
        tunnelId: 42,
        ifindex: 5,
        devIfindex: 6,
        peerCookie: Buffer.alloc(0),
        l2specLength: 4,
        requireSequence,
        udpChecksum: true,
        statsSlot: 0,
        tunSlot: 0,
      })[r.flags!];
    assert.deepEqual([rxCsum(false), rxCsum(true)], [2, 3], 'UDP checksums: their own flag bit');
    assert.equal(rx.subarray(r.cookie!, r.cookie! + 8).toString('hex'), '0102030405060708');
    assert.equal(rx.readUInt32LE(r.stats_slot!), 77);
    assert.equal(rx.readUInt32LE(r.tun_slot!), 0x01020304);
    assert.deepEqual(decodeRxCfg(rx), { tunnelId: 42, ifindex: 5, statsSlot: 77, tunSlot: 0x01020304 });
    const tv = encodeTunVal({ tunnelId: 9, statsSlot: 3 });
    const v = s.get('tun_val')!.offsets;
    assert.deepEqual([tv.readUInt32LE(v.tunnel_id!), tv.readUInt32LE(v.stats_slot!)], [9, 3]);
    assert.deepEqual(decodeTunVal(tv), { tunnelId: 9, statsSlot: 3 });

    const tk = encodeTunKey({
      local: '10.0.0.1',
      remote: '10.0.0.2',
      localPort: 5000,
      remotePort: 5001,
      encap: 'udp',
    });
    const k = s.get('tun_key')!.offsets;
    assert.deepEqual([...tk.subarray(k.local!, k.local! + 4)], [10, 0, 0, 1]);
    assert.equal(tk.readUInt16BE(k.lport!), 5000);
    assert.equal(tk.readUInt16BE(k.rport!), 5001);
    assert.equal(tk[k.encap!], 0);
    assert.equal(tk[k.family!], 4);
    const tk6 = encodeTunKey({
      local: 'fd00:1::2',
      remote: '2001:db8::1:0:0:1',
      localPort: 0,
      remotePort: 0,
      encap: 'ip',
    });
    assert.equal(tk6.subarray(k.local!, k.local! + 16).toString('hex'), 'fd000001000000000000000000000002');
    assert.equal(tk6.subarray(k.remote!, k.remote! + 16).toString('hex'), '20010db8000000000001000000000001');
    assert.deepEqual([tk6[k.encap!], tk6[k.family!]], [1, 6]);
    assert.equal(s.get('sess_stats')!.offsets.drops, 48, 'six counters, then the drops by reason');
  });

  it('sums per-CPU values and names the drops by reason', () => {
    const cpus = 3;
    const buf = Buffer.alloc(SIZES.sessStats * cpus);
    for (let cpu = 0; cpu < cpus; cpu++) {
      buf.writeBigUInt64LE(BigInt(cpu + 1), cpu * SIZES.sessStats); // tx_packets
      buf.writeBigUInt64LE(10n, cpu * SIZES.sessStats + 48 + 8); // badCookie
    }
    const c = decodeSessStats(sumPerCpu(buf, SIZES.sessStats, cpus));
    assert.equal(c.txPackets, 6);
    assert.deepEqual(c.drops, { badCookie: 30 });
  });

  it('the addon refuses an interface name longer than the kernel takes, rather than cutting it', () => {
    // a cut name would be another device's: l2tpeth123456789 (16) would act on l2tpeth12345678
    assert.throws(() => loadEbpfNative().setOffloads('l2tpeth123456789', { gro: true }), TypeError);
    assert.throws(
      () => loadEbpfNative().setOffloads('kl2tp-nosuchdev', { gro: true }),
      (e: NodeJS.ErrnoException) =>
        !(e instanceof TypeError) && /ethtool gro on on kl2tp-nosuchdev/.test(e.message),
    );
  });

  it('the addon sets queue counts only of a device named in full, to at least one queue', () => {
    const n = loadEbpfNative();
    assert.throws(() => n.setChannels('l2tpeth123456789', 2), TypeError);
    assert.throws(() => n.setChannels('l2tpeth0', 0), TypeError);
    assert.throws(
      () => n.setChannels('kl2tp-nosuchdev', 2),
      (e: NodeJS.ErrnoException) =>
        !(e instanceof TypeError) && /ethtool channels of kl2tp-nosuchdev/.test(e.message),
    );
  });

  it('has as many statistics slots as the maps have entries', async () => {
    const src = await readFile(join(addonPath(), '../../../../bpf/l2tp.bpf.c'), 'utf8');
    assert.equal(Number(/^#define MAX_ENTRIES (\d+)$/m.exec(src)?.[1]), MAP_ENTRIES);
  });

  it('hands out the lowest free statistics slot, skips the ones found in use, and refuses when full', () => {
    const slots = new StatsSlots(5, [0, 2]);
    assert.deepEqual([slots.take(), slots.take()], [1, 3]);
    slots.release(1);
    slots.release(1); // twice: still one free slot
    assert.deepEqual([slots.take(), slots.take()], [1, 4]);
    assert.throws(() => slots.take(), /all 5 statistics slots are in use/);
    slots.release(3);
    assert.equal(slots.take(), 3);
  });

  it('reads a tunnel key back to the addresses it was made of, IPv4 and IPv6', () => {
    const key = (local: string, remote: string) =>
      encodeTunKey({ local, remote, localPort: 1701, remotePort: 1702, encap: 'udp' });
    assert.deepEqual(decodeTunKey(key('10.233.9.1', '10.233.9.2')), {
      local: '10.233.9.1',
      remote: '10.233.9.2',
    });
    assert.deepEqual(decodeTunKey(key('fd00:233::1', 'fd00:233:1::2')), {
      local: 'fd00:233:0:0:0:0:0:1',
      remote: 'fd00:233:1:0:0:0:0:2',
    });
  });

  it("finds a session's tunnel key in its transmit configuration, IPv4 and IPv6, UDP and IP", () => {
    const cases = [
      { local: '10.233.9.1', remote: '10.233.9.2', sport: 1701, dport: 1702, encap: 'udp' as const },
      { local: 'fd00:233::1', remote: 'fd00:233:1::2', sport: 0, dport: 0, encap: 'ip' as const },
    ];
    for (const c of cases) {
      const tx = encodeTxCfg({
        ...c,
        sessionId: 7,
        peerSessionId: 8,
        underlayIfindex: 3,
        cookie: Buffer.alloc(4, 0xab),
        l2specLength: 4,
        sendSequence: false,
        udpChecksum: false,
        nexthop: c.remote,
        statsSlot: 5,
      });
      const key = encodeTunKey({ ...c, localPort: c.sport, remotePort: c.dport });
      assert.equal(tunKeyOfTxCfg(tx).toString('hex'), key.toString('hex'), c.encap);
    }
  });

  it('names the last drop counter badChecksum, in session and tunnel counters', () => {
    // one counter per reason (the sizes are checked against the object file above)
    assert.equal(SIZES.sessStats, 48 + 8 * DROP_REASONS.length);
    assert.equal(SIZES.tunStats, 8 + 8 * DROP_REASONS.length);
    const cpus = 2;
    const sess = Buffer.alloc(SIZES.sessStats * cpus);
    const tun = Buffer.alloc(SIZES.tunStats * cpus);
    for (let cpu = 0; cpu < cpus; cpu++) {
      sess.writeBigUInt64LE(3n, cpu * SIZES.sessStats + SIZES.sessStats - 8);
      tun.writeBigUInt64LE(4n, cpu * SIZES.tunStats + SIZES.tunStats - 8);
    }
    assert.deepEqual(decodeSessStats(sumPerCpu(sess, SIZES.sessStats, cpus)).drops, { badChecksum: 6 });
    assert.deepEqual(decodeTunStats(sumPerCpu(tun, SIZES.tunStats, cpus)).drops, { badChecksum: 8 });
  });
});

const root = process.getuid?.() === 0;

describe('ebpf backend selection', { skip: root ? false : 'needs root (bpffs mount, BPF)' }, () => {
  let bpffs = '';
  before(async () => {
    bpffs = await mkdtemp(join(tmpdir(), 'eb-unit-'));
    await run('mount', ['-t', 'bpf', 'bpf', bpffs]);
  });
  after(async () => {
    await runOk('umount', [bpffs]);
    await rm(bpffs, { recursive: true, force: true });
  });

  it('ebpf loads and pins its programs under <bpffs>/kube-l2tp/net-<netns>, and removes them when closed for good', async () => {
    const { backend, reason } = await selectBackend('ebpf', { logger: silentLogger(), bpffs });
    assert.equal(backend.kind, 'ebpf');
    assert.equal(reason, 'requested');
    const [netns] = await readdir(join(bpffs, 'kube-l2tp'));
    assert.match(netns ?? '', /^net-\d+$/, 'one directory per network namespace');
    const nsDir = join(bpffs, 'kube-l2tp', netns!);
    const [dir] = await readdir(nsDir);
    assert.ok(dir);
    assert.deepEqual((await readdir(join(nsDir, dir))).sort(), [
      'prog_l2tp_rx',
      'prog_l2tp_tx_egress',
      'prog_l2tp_tx_ingress',
      'rx_sess',
      'seq_state',
      'sess_stats',
      'tun_map',
      'tun_stats',
      'tx_cfg',
    ]);
    await backend.close({ keepDevices: false });
    // nothing of kube-l2tp is left in the bpffs, not even its empty directories (maps.debug and
    // progs.debug are the bpffs mount's own)
    assert.deepEqual(
      (await readdir(bpffs)).filter((f) => !f.endsWith('.debug')),
      [],
    );
  });

  it('auto takes ebpf when the kernel has no L2TP, and userspace naming why when there is no bpffs', async () => {
    const probe = await probeKernelL2tp();
    const a = await selectBackend('auto', { logger: silentLogger(), bpffs });
    assert.equal(a.backend.kind, probe.available ? 'kernel' : 'ebpf');
    if (!probe.available) assert.match(a.reason, /kernel L2TP unavailable .*; eBPF programs loaded/);
    await a.backend.close({ keepDevices: false });
    const here = fileURLToPath(new URL('.', import.meta.url));
    const b = await selectBackend('auto', { logger: silentLogger(), bpffs: here });
    if (!probe.available) {
      assert.equal(b.backend.kind, 'userspace');
      assert.match(b.reason, /eBPF unavailable \(no bpffs mounted at /);
    }
    await b.backend.close({ keepDevices: true });
    await assert.rejects(
      selectBackend('ebpf', { logger: silentLogger(), bpffs: here }),
      /ebpf backend unavailable: no bpffs mounted/,
    );
  });
});
