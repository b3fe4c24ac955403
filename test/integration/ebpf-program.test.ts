// The programs and maps the agent loads, checked by the kernel on the pinned objects. The receive
// program's verdicts on the underlay, run by the kernel itself (BPF_PROG_TEST_RUN through bpftool): a
// frame that is not a tunnel's must come back as TC_ACT_UNSPEC, so that tc goes on to the next filter
// on the node's device (another tool's, at a later preference) as if ours were not there; TC_ACT_OK
// would end the classification and skip them. A datagram of a configured tunnel is ours: a session it
// does not have is dropped and counted. The maps' sizes: as many sessions as statistics slots.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { run, runOk } from '../../lib/exec.js';
import {
  loadEbpfNative,
  mapEntries,
  possibleCpus,
  type OpenResult,
} from '../../datapath/backend/ebpf/native.js';
import {
  MAP_ENTRIES,
  SIZES,
  decodeTunStats,
  encodeTunKey,
  encodeTunVal,
  perCpuZero,
  sumPerCpu,
  u32Key,
} from '../../datapath/backend/ebpf/maps.js';
import { requireRoot } from '../harness/netns.js';
import { ipv4Packet } from '../harness/pcap.js';

const TC_ACT_UNSPEC = -1;
const TC_ACT_SHOT = 2;

const LOCAL = '10.251.1.1';
const REMOTE = '10.251.1.2';
const PORT = 1701;

const mac = (last: number) => Buffer.from([2, 0, 0, 0, 0, last]);
const eth = (type: number, payload: Buffer) =>
  Buffer.concat([mac(1), mac(2), Buffer.from([type >> 8, type & 0xff]), payload]);
/** From the tunnel's peer to us: over UDP between ports, or as IP protocol proto. */
const fromPeer = (l4: { udp: { sport: number; dport: number } } | { proto: number }, payload: Buffer) =>
  ipv4Packet({ src: REMOTE, dst: LOCAL, ...l4 }, payload);
/** An L2TPv3 data message over UDP (RFC 3931 4.1.2.2): T bit 0, version 3, then the session id. */
const l2tpData = (session: number) => {
  const b = Buffer.alloc(8 + 64);
  b[1] = 3;
  b.writeUInt32BE(session, 4);
  return b;
};

describe('ebpf programs and maps as loaded', () => {
  let bpffs: string;
  let work: string;
  let set: OpenResult;
  const native = () => loadEbpfNative();

  before(async () => {
    requireRoot();
    bpffs = await mkdtemp(join(tmpdir(), 'ev-bpffs-'));
    await run('mount', ['-t', 'bpf', 'bpf', bpffs]);
    work = await mkdtemp(join(tmpdir(), 'ev-frames-'));
    set = native().open(bpffs);
  });
  after(async () => {
    if (set) for (const fd of [...Object.values(set.progs), ...Object.values(set.maps)]) native().closeFd(fd);
    if (bpffs) {
      await runOk('umount', [bpffs]);
      await rm(bpffs, { recursive: true, force: true });
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The program's return value for one frame, as a signed tc verdict. */
  async function verdict(name: string, frame: Buffer): Promise<number> {
    const file = join(work, `${name}.bin`);
    await writeFile(file, frame);
    const out = await run('bpftool', ['prog', 'run', 'pinned', join(bpffs, 'prog_l2tp_rx'), 'data_in', file]);
    const m = /Return value: (\d+)/.exec(out);
    assert.ok(m, `bpftool printed no return value: ${out}`);
    return Number(m[1]) | 0;
  }

  const tunnelUdp = (session: number) => fromPeer({ udp: { sport: PORT, dport: PORT } }, l2tpData(session));

  it('loads while signals keep arriving (the verifier gives up on a pending signal)', async () => {
    const dir = join(bpffs, 'signalled');
    await mkdir(dir);
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./ebpf-load-child.js', import.meta.url)), dir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    let sentWhileLoading = 0;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!timer && out.includes('loading\n'))
        timer = setInterval(() => {
          // one signal a millisecond until the load has returned
          if (out.includes('loaded\n')) return;
          if (child.kill('SIGUSR2')) sentWhileLoading++;
        }, 1);
    });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    clearInterval(timer);
    const result = JSON.parse(out.trim().split('\n').pop()!) as {
      error?: string;
      adopted?: boolean;
      handled: number;
    };
    assert.equal(code, 0);
    assert.ok(sentWhileLoading >= 10, `only ${sentWhileLoading} signals were sent during the load`);
    assert.equal(result.error, undefined, `the load failed under signals: ${result.error}`);
    assert.equal(result.adopted, false, 'the programs were loaded, not adopted');
    // held, not lost: the process handled them once the load returned
    assert.ok(result.handled > 0, 'the child handled none of the signals');
    await rm(dir, { recursive: true, force: true });
  });

  it('frames of no tunnel go on to the next filter', async () => {
    const arp = eth(0x0806, Buffer.alloc(28));
    const tcp = fromPeer({ proto: 6 }, Buffer.alloc(40));
    const otherUdp = fromPeer({ udp: { sport: 5353, dport: 5353 } }, Buffer.alloc(32));
    const fragment = Buffer.from(tunnelUdp(7));
    fragment.writeUInt16BE(0x2000, 20); // more fragments: the stack reassembles
    const ipv6 = eth(
      0x86dd,
      Buffer.concat([
        Buffer.from([0x60, 0, 0, 0, 0, 8, 17, 64]),
        Buffer.alloc(32),
        Buffer.from([PORT >> 8, PORT & 0xff, PORT >> 8, PORT & 0xff, 0, 8, 0, 0]), // UDP, no payload
      ]),
    );
    for (const [name, frame] of Object.entries({
      arp,
      tcp,
      otherUdp,
      fragment,
      ipv6,
      runt: Buffer.alloc(14),
    })) {
      assert.equal(await verdict(name, frame), TC_ACT_UNSPEC, `${name}: not a tunnel's`);
    }
    // no tunnel configured yet: the L2TP datagram is no one's either
    assert.equal(await verdict('unconfigured', tunnelUdp(7)), TC_ACT_UNSPEC);
  });

  it("a configured tunnel's datagram for a session it lacks is dropped and counted", async () => {
    const key = encodeTunKey({
      local: LOCAL,
      remote: REMOTE,
      localPort: PORT,
      remotePort: PORT,
      encap: 'udp',
    });
    native().mapUpdate(set.maps.tun_map, key, encodeTunVal({ tunnelId: 5, statsSlot: 3 }));
    assert.equal(await verdict('unknown-session', tunnelUdp(7)), TC_ACT_SHOT);
    const cpus = possibleCpus();
    const raw = native().mapLookup(set.maps.tun_stats, u32Key(3), perCpuZero(SIZES.tunStats, cpus).length);
    assert.ok(raw);
    assert.deepEqual(decodeTunStats(sumPerCpu(raw, SIZES.tunStats, cpus)), {
      rxPackets: 1,
      drops: { unknownSession: 1 },
    });
    // the same tunnel's peer on another port is not the tunnel
    assert.equal(
      await verdict('other-port', fromPeer({ udp: { sport: PORT + 1, dport: PORT } }, l2tpData(7))),
      TC_ACT_UNSPEC,
    );
  });

  it('the maps hold MAP_ENTRIES sessions and tunnels; tx_cfg two keys per session', async () => {
    const size = async (map: string) => {
      const out = await run('bpftool', ['-j', 'map', 'show', 'pinned', join(bpffs, map)]);
      return (JSON.parse(out) as { max_entries: number }).max_entries;
    };
    for (const map of ['tun_map', 'rx_sess', 'sess_stats', 'tun_stats', 'seq_state'])
      assert.equal(await size(map), MAP_ENTRIES, map);
    assert.equal(await size('tx_cfg'), 2 * MAP_ENTRIES, 'tx_cfg: the peer and l2tpethN of every session');
  });

  it('mapEntries reads every entry of a map, empty or full (batches of a hash map and of an array)', () => {
    const fd = set.maps.seq_state;
    const value = (i: number) => {
      const v = Buffer.alloc(SIZES.seqState);
      v.writeUInt32LE(i * 7 + 1, 0);
      return v;
    };
    assert.deepEqual(mapEntries(native(), fd, 4, SIZES.seqState), [], 'an empty map');
    for (let i = 1; i <= MAP_ENTRIES; i++) native().mapUpdate(fd, u32Key(i), value(i));
    const got = mapEntries(native(), fd, 4, SIZES.seqState);
    assert.equal(got.length, MAP_ENTRIES, 'a full map: more entries than one batch');
    const seen = new Set<number>();
    for (const [k, v] of got) {
      const i = k.readUInt32LE(0);
      assert.ok(!seen.has(i), `key ${i} read twice`);
      seen.add(i);
      assert.deepEqual(v, value(i), `the value of key ${i}`);
    }
    for (let i = 1; i <= MAP_ENTRIES; i++) native().mapDelete(fd, u32Key(i));
    // an array has every index: a per-CPU one gives each CPU's value of each
    const perCpu = perCpuZero(SIZES.sessStats, possibleCpus()).length;
    const stats = mapEntries(native(), set.maps.sess_stats, 4, perCpu);
    assert.equal(stats.length, MAP_ENTRIES);
    assert.deepEqual(
      stats.map(([k]) => k.readUInt32LE(0)),
      Array.from({ length: MAP_ENTRIES }, (_, i) => i),
    );
  });
});
