// The native pump's packet functions, without sockets or TAPs (no root): header bytes, receive
// checks and drop reasons, sequence handling, TSO segmentation and segment merging, the session ID
// lookup shared by the tunnels of one socket; fuzzed.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DROP_REASONS, type DropReason } from '../types.js';

interface SessionCfg {
  udp: number;
  sessionId?: number;
  peerSessionId?: number;
  cookie?: Buffer;
  peerCookie?: Buffer;
  l2specLength: number;
  sendSequence?: number;
  requireSequence?: number;
}
interface Vnet {
  gsoType?: number;
  gsoSize?: number;
  flags?: number;
  csumStart?: number;
  csumOffset?: number;
}
interface Written extends Required<Vnet> {
  frame: Buffer;
  hdrLen: number;
}
interface TestHooks {
  _testHeaders(cfg: SessionCfg, count: number): Buffer[];
  _testReceive(cfg: SessionCfg, packets: Buffer[]): (number | Buffer)[];
  _testSegment(frame: Buffer, vnet: Vnet): Buffer[] | null;
  _testMerge(frames: Buffer[], trusted?: boolean): Written[];
  _testEventLimit(burst: number, intervalMs: number, timesMs: number[]): number[];
  _testDemux(ops: [kind: number, sid: number, owner: number][]): number[];
}
// the pure packet functions, from the test-only addon built beside the pump
const pump = createRequire(import.meta.url)(
  fileURLToPath(
    new URL('../../../../datapath/native/build/Release/l2tp_pump_selftest.node', import.meta.url),
  ),
) as TestHooks;
const reason = (r: DropReason) => DROP_REASONS.indexOf(r);
const hex = (s: string) => Buffer.from(s.replaceAll(' ', ''), 'hex');

// ---- frame builders (IPv4/TCP, Ethernet) ----
function csum(buf: Buffer, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
function tcpFrame(payload: Buffer, seq: number, flags = 0x10, id = 7): Buffer {
  const eth = hex('020000000002 020000000001 0800');
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 32 + payload.length, 2);
  ip.writeUInt16BE(id, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  hex('0ac9c801 0ac9c802').copy(ip, 12);
  ip.writeUInt16BE(~csum(ip) & 0xffff, 10);
  const tcp = Buffer.alloc(32);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(5201, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(12345, 8);
  tcp[12] = 8 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(502, 14);
  hex('0101080a 00000001 00000002').copy(tcp, 20); // NOP NOP timestamps
  const seg = Buffer.concat([tcp, payload]);
  const pseudo = Buffer.concat([
    ip.subarray(12, 20),
    hex('0006'),
    Buffer.from([seg.length >> 8, seg.length & 255]),
  ]);
  seg.writeUInt16BE(~csum(seg, csum(pseudo)) & 0xffff, 16);
  return Buffer.concat([eth, ip, seg]);
}
function tcpValid(f: Buffer): boolean {
  const ip = f.subarray(14, 34);
  const seg = f.subarray(34, 14 + ip.readUInt16BE(2));
  const pseudo = Buffer.concat([
    ip.subarray(12, 20),
    hex('0006'),
    Buffer.from([seg.length >> 8, seg.length & 255]),
  ]);
  return csum(ip) === 0xffff && csum(seg, csum(pseudo)) === 0xffff;
}

describe('pump: transmitted header', () => {
  it('UDP, 8-byte cookie, default sublayer with sequence numbers: the kernel layout', () => {
    const [h0, h1] = pump._testHeaders(
      { udp: 1, peerSessionId: 5196755, cookie: hex('0102030405060708'), l2specLength: 4, sendSequence: 1 },
      2,
    );
    assert.equal(h0!.toString('hex'), '00030000' + '004f4bd3' + '0102030405060708' + '40000000');
    assert.equal(h1!.toString('hex'), '00030000' + '004f4bd3' + '0102030405060708' + '40000001');
  });
  it('IP encap, no cookie, sublayer none / default without sequencing', () => {
    assert.equal(
      pump._testHeaders({ udp: 0, peerSessionId: 128, l2specLength: 0 }, 1)[0]!.toString('hex'),
      '00000080',
    );
    assert.equal(
      pump
        ._testHeaders({ udp: 0, peerSessionId: 128, cookie: hex('a1a2a3a4'), l2specLength: 4 }, 1)[0]!
        .toString('hex'),
      '00000080a1a2a3a400000000',
    );
  });
});

describe('pump: receive checks', () => {
  const cfg: SessionCfg = { udp: 1, sessionId: 128, peerCookie: hex('1112131415161718'), l2specLength: 4 };
  const eth = Buffer.alloc(60, 0xee);
  const udpMsg = (sid: number, cookie: string, l2 = '00000000', body = eth) =>
    Buffer.concat([
      hex('00030000'),
      Buffer.from(sid.toString(16).padStart(8, '0'), 'hex'),
      hex(cookie),
      hex(l2),
      body,
    ]);

  it('delivers the Ethernet frame and counts each malformed kind under its reason', () => {
    const out = pump._testReceive(cfg, [
      udpMsg(128, '1112131415161718'),
      udpMsg(129, '1112131415161718'),
      udpMsg(128, '1112131415161719'),
      udpMsg(128, '1112131415161718', '00000000', eth.subarray(0, 13)),
      hex('c8030000000000800000'),
      hex('00020000000000800000'),
      hex('0003'),
    ]);
    assert.ok(Buffer.isBuffer(out[0]) && out[0].equals(eth));
    assert.deepEqual(out.slice(1), [
      reason('unknownSession'),
      reason('badCookie'),
      reason('truncated'),
      reason('control'),
      reason('badVersion'),
      reason('truncated'),
    ]);
  });

  it('IP encap: session 0 is a control message', () => {
    const out = pump._testReceive({ udp: 0, sessionId: 5, l2specLength: 0 }, [
      hex('00000000 c8030014'),
      Buffer.concat([hex('00000005'), eth]),
    ]);
    assert.equal(out[0], reason('control'));
    assert.ok(Buffer.isBuffer(out[1]));
  });

  it('requireSequence: in order accepted, duplicates and gaps dropped, resync after 5 in a row', () => {
    const s: SessionCfg = { udp: 1, sessionId: 9, l2specLength: 4, requireSequence: 1 };
    const seq = (n: number) => udpMsg(9, '', (0x40000000 | n).toString(16).padStart(8, '0'));
    const out = pump._testReceive(s, [
      seq(0),
      seq(1),
      seq(2),
      seq(1),
      udpMsg(9, ''),
      ...[10, 11, 12, 13, 14, 15, 16].map(seq),
    ]);
    const ok = out.map((x) => Buffer.isBuffer(x));
    assert.deepEqual(ok, [true, true, true, false, false, false, false, false, false, false, true, true]);
    assert.equal(out[3], reason('sequence'));
    assert.equal(out[4], reason('sequence'), 'no S bit while sequence numbers are required');
  });
});

describe('pump: TSO segmentation and segment merging', () => {
  const payload = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) & 255));
  const superFrame = tcpFrame(payload, 1000, 0x18);
  const vnet = { gsoType: 1, gsoSize: 1400, flags: 1, csumStart: 34, csumOffset: 16 };

  it('cuts a super-frame into MSS segments with valid checksums, consecutive sequence numbers, PSH last', () => {
    const segs = pump._testSegment(superFrame, vnet)!;
    assert.equal(segs.length, Math.ceil(10_000 / 1400));
    let off = 0;
    segs.forEach((s, i) => {
      assert.ok(tcpValid(s), `segment ${i} checksums`);
      assert.equal(s.readUInt32BE(38), 1000 + off);
      assert.equal(s.readUInt16BE(18), 7 + i, 'IP id increments');
      assert.equal((s[47]! & 0x08) !== 0, i === segs.length - 1, 'PSH only on the last segment');
      const chunk = s.subarray(66);
      assert.ok(chunk.equals(payload.subarray(off, off + chunk.length)));
      off += chunk.length;
    });
    assert.equal(off, payload.length);
  });

  it('merges the segments back into one GSO frame carrying the same bytes', () => {
    const segs = pump._testSegment(superFrame, vnet)!;
    const out = pump._testMerge(segs);
    assert.equal(out.length, 1);
    const w = out[0]!;
    assert.equal(w.gsoType, 1);
    assert.equal(w.gsoSize, 1400);
    assert.equal(w.hdrLen, 66);
    assert.equal(w.csumStart, 34);
    assert.equal(w.csumOffset, 16);
    assert.equal(w.flags, 1);
    assert.ok(w.frame.subarray(66).equals(payload));
    assert.equal(w.frame.readUInt16BE(16), w.frame.length - 14, 'IP total length');
    assert.equal(csum(w.frame.subarray(14, 34)), 0xffff, 'IP header checksum');
    assert.ok((w.frame[47]! & 0x08) !== 0, 'PSH carried to the merged frame');
  });

  it('does not merge across a sequence gap or a corrupted checksum', () => {
    const a = tcpFrame(Buffer.alloc(1000, 1), 0);
    const b = tcpFrame(Buffer.alloc(1000, 2), 1000);
    const gap = tcpFrame(Buffer.alloc(1000, 3), 5000);
    const bad = Buffer.from(tcpFrame(Buffer.alloc(1000, 4), 6000));
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    const out = pump._testMerge([a, b, gap, bad]);
    assert.deepEqual(
      out.map((w) => [w.frame.length, w.gsoType]),
      [
        [a.length + 1000, 1],
        [gap.length, 0],
        [bad.length, 0],
      ],
    );
    assert.ok(out[2]!.frame.equals(bad), 'a frame that fails its checksum is passed on untouched');
  });

  it('frames of a UDP GRO train (outer checksum verified by the kernel) merge without a second check', () => {
    const a = tcpFrame(Buffer.alloc(1000, 1), 0);
    const b = Buffer.from(tcpFrame(Buffer.alloc(1000, 2), 1000));
    b[b.length - 1] = b[b.length - 1]! ^ 1; // would fail its TCP checksum
    assert.equal(pump._testMerge([a, b], false).length, 2, 'single datagrams: verified, not merged');
    const out = pump._testMerge([a, b], true);
    assert.equal(out.length, 1, 'train: merged');
    assert.ok(out[0]!.frame.subarray(66 + 1000).equals(b.subarray(66)), 'bytes carried as received');
  });

  it('checksums match a byte-wise reference for any payload length and MSS (odd ones included)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 9000 }),
        fc.integer({ min: 1, max: 1460 }),
        (bytes, mss) => {
          const frame = tcpFrame(Buffer.from(bytes), 77, 0x18);
          const segs = pump._testSegment(frame, { ...vnet, gsoSize: mss })!;
          assert.ok(segs.length > 0);
          segs.forEach((s, i) => assert.ok(tcpValid(s), `segment ${i} of ${segs.length} (mss ${mss})`));
          // merging verifies every segment's checksum: all of them must be accepted into one frame
          const merged = pump._testMerge(segs);
          assert.ok(merged.length === 1 || mss < 500 || segs.length === 1);
          assert.ok(Buffer.concat(merged.map((w) => w.frame.subarray(66))).equals(Buffer.from(bytes)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('survives arbitrary input (fuzz)', () => {
    const cfgArb = fc.record({
      udp: fc.integer({ min: 0, max: 1 }),
      sessionId: fc.constantFrom(1, 128),
      peerCookie: fc.option(fc.constantFrom(hex('01020304'), hex('0102030405060708')), { nil: undefined }),
      l2specLength: fc.constantFrom(0, 4),
      requireSequence: fc.integer({ min: 0, max: 1 }),
    });
    const bytes = fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u));
    fc.assert(
      fc.property(cfgArb, fc.array(bytes, { maxLength: 20 }), (cfg, packets) => {
        const { peerCookie, ...rest } = cfg;
        const out = pump._testReceive(peerCookie ? { ...rest, peerCookie } : rest, packets);
        return out.length === packets.length;
      }),
      { numRuns: 300 },
    );
    // Valid TCP frames with random bytes flipped, in random order: merged output never exceeds 64 KiB.
    const mutated = fc
      .tuple(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 255 }),
      )
      .map(([i, at, v]) => {
        const f = Buffer.from(tcpFrame(Buffer.alloc(300, i), i * 300));
        if (at < f.length) f[at] = v;
        return f;
      });
    fc.assert(
      fc.property(fc.array(fc.oneof(mutated, bytes), { maxLength: 40 }), (frames) =>
        pump._testMerge(frames).every((w) => w.frame.length <= 65535),
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        bytes,
        fc.record({
          gsoType: fc.constantFrom(0, 1, 4, 0x81, 3),
          gsoSize: fc.integer({ min: 0, max: 2000 }),
          flags: fc.integer({ min: 0, max: 3 }),
          csumStart: fc.integer({ min: 0, max: 400 }),
          csumOffset: fc.integer({ min: 0, max: 400 }),
        }),
        (frame, v) => {
          const segs = pump._testSegment(frame, v);
          return segs === null || segs.every((s) => s.length <= 65535);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('pump error events: token bucket', () => {
  it('lets a burst through, drops the rest and reports how many were dropped with the next one', () => {
    // burst 3, one more per second; -1 = dropped, n = let through after n drops
    const times = [0, 0, 0, 0, 0, 500, 1000, 1000, 3500, 3500, 3500, 3500];
    assert.deepEqual(pump._testEventLimit(3, 1000, times), [0, 0, 0, -1, -1, -1, 3, -1, 1, 0, -1, -1]);
  });
  it('never holds more than the burst, however long it was quiet', () => {
    const r = pump._testEventLimit(2, 10, [0, 100000, 100000, 100000, 100000]);
    assert.deepEqual(r, [0, 0, 0, -1, -1]);
  });
});

describe('pump: session ID lookup of the tunnels sharing a socket', () => {
  const [ADD, REMOVE, FIND, REMOVE_OWNER] = [0, 1, 2, 3];
  const EEXIST = -17;
  const ENOENT = -2;
  /** What the native table must answer, from a Map. */
  function model(ops: [number, number, number][]): number[] {
    const m = new Map<number, number>();
    return ops.map(([kind, sid, owner]) => {
      if (kind === ADD) return m.has(sid) ? EEXIST : (m.set(sid, owner), 0);
      if (kind === REMOVE) return m.delete(sid) ? 0 : ENOENT;
      if (kind === FIND) return m.get(sid) ?? -1;
      for (const [k, o] of m) if (o === owner) m.delete(k);
      return m.size;
    });
  }
  it('grows past its first size, finds every ID after removals, and refuses a taken ID for any tunnel', () => {
    const ops: [number, number, number][] = [];
    for (let sid = 1; sid <= 1000; sid++) ops.push([ADD, sid, sid % 3]);
    ops.push([ADD, 500, 0], [ADD, 500, 2]);
    for (let sid = 1; sid <= 1000; sid += 2) ops.push([REMOVE, sid, 0]);
    for (let sid = 0; sid <= 1001; sid++) ops.push([FIND, sid, 0]);
    ops.push([REMOVE_OWNER, 0, 1]);
    for (let sid = 0; sid <= 1001; sid++) ops.push([FIND, sid, 0]);
    assert.deepEqual(pump._testDemux(ops), model(ops));
  });
  it('agrees with a map under random adds, removals and tunnels leaving (fuzzed)', () => {
    // few IDs (collisions, re-adds) mixed with any 32-bit ID; hashes crowd in small tables
    const sid = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 0xffffffff }));
    const op = fc.tuple(fc.integer({ min: 0, max: 3 }), sid, fc.integer({ min: 0, max: 3 }));
    const withFinds = fc
      .array(op, { maxLength: 400 })
      .map((ops) => [...ops, ...ops.map(([, s]): [number, number, number] => [FIND, s, 0])]);
    fc.assert(
      fc.property(withFinds, (ops) => {
        assert.deepEqual(pump._testDemux(ops), model(ops));
      }),
      { numRuns: 300 },
    );
  });
});
