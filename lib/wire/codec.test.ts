import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  L2tpWireError,
  decodeDataMessage,
  encodeDataMessage,
  headerLayout,
  parseDataMessage,
  seqIsNewer,
  type LayoutInput,
  type RxExpectation,
} from './codec.js';

const ETH = Buffer.from(
  // dst 02:00:00:00:00:02, src 02:00:00:00:00:01, ethertype 0x0800, 4 payload bytes
  '020000000002' + '020000000001' + '0800' + 'deadbeef',
  'hex',
);

const layouts: LayoutInput[] = [];
for (const encap of ['udp', 'ip'] as const)
  for (const l2specType of ['none', 'default'] as const)
    for (const cookieLength of [0, 4, 8] as const)
      for (const peerCookieLength of [0, 4, 8] as const)
        layouts.push({ encap, l2specType, cookieLength, peerCookieLength });

const only =
  (sessionId: number, rx: RxExpectation) =>
  (sid: number): RxExpectation | undefined =>
    sid === sessionId ? rx : undefined;

test('kernel capture: UDP, default sublayer (no l2spec_type given), no cookie', () => {
  // as captured from the kernel: 00 03 00 00 | <peer session id> | 00 00 00 00 | <ethernet>
  const l = headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 0, peerCookieLength: 0 });
  const got = encodeDataMessage(l, { peerSessionId: 5196755, cookie: new Uint8Array() }, ETH);
  assert.equal(got.subarray(0, 12).toString('hex'), '00030000' + '004f4bd3' + '00000000');
  assert.deepEqual(got.subarray(12), ETH);
});

test('kernel capture: UDP, l2spec_type none, 8-byte cookie', () => {
  // ... | <session id> | <local cookie 8> | <ethernet>
  const cookie = Buffer.from('0102030405060708', 'hex');
  const l = headerLayout({ encap: 'udp', l2specType: 'none', cookieLength: 8, peerCookieLength: 8 });
  const got = encodeDataMessage(l, { peerSessionId: 128, cookie }, ETH);
  assert.equal(got.subarray(0, 16).toString('hex'), '00030000' + '00000080' + '0102030405060708');
  assert.deepEqual(got.subarray(16), ETH);
});

test('kernel capture: IP encapsulation puts the session ID first', () => {
  const l = headerLayout({ encap: 'ip', l2specType: 'default', cookieLength: 4, peerCookieLength: 4 });
  const got = encodeDataMessage(
    l,
    { peerSessionId: 0x11223344, cookie: Buffer.from('cafebabe', 'hex') },
    ETH,
  );
  assert.equal(got.subarray(0, 12).toString('hex'), '11223344' + 'cafebabe' + '00000000');
});

test('sequence numbers set the S bit and wrap at 24 bits', () => {
  const l = headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 0, peerCookieLength: 0 });
  const got = encodeDataMessage(l, { peerSessionId: 1, cookie: new Uint8Array(), sequence: 0x1000005 }, ETH);
  assert.equal(got.readUInt32BE(8), 0x40000005);
  const back = decodeDataMessage(got, 'udp', () => ({ layout: l, peerCookie: Buffer.alloc(0) }));
  assert.equal(back.sequence, 5);
});

test('header layout is computed once and matches the kernel header lengths', () => {
  assert.equal(
    headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 0, peerCookieLength: 0 }).txLength,
    12,
  );
  assert.equal(
    headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 8, peerCookieLength: 4 }).rxLength,
    16,
  );
  assert.equal(
    headerLayout({ encap: 'ip', l2specType: 'none', cookieLength: 0, peerCookieLength: 0 }).txLength,
    4,
  );
});

test('round trip for every encap x sublayer x cookie combination', () => {
  for (const li of layouts) {
    // what one side sends, the mirrored side receives: its rx cookie length is our tx length
    const tx = headerLayout(li);
    const rx = headerLayout({ ...li, cookieLength: li.peerCookieLength, peerCookieLength: li.cookieLength });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.uint8Array({ minLength: li.cookieLength, maxLength: li.cookieLength }),
        fc.option(fc.integer({ min: 0, max: 0xffffff }), { nil: undefined }),
        fc.uint8Array({ minLength: 14, maxLength: 1500 }),
        (sid, cookie, seq, frame) => {
          const wire = encodeDataMessage(tx, { peerSessionId: sid, cookie, sequence: seq }, frame);
          const m = decodeDataMessage(
            wire,
            li.encap,
            only(sid, { layout: rx, peerCookie: Buffer.from(cookie) }),
          );
          assert.equal(m.sessionId, sid);
          assert.deepEqual(new Uint8Array(m.frame), frame);
          assert.equal(m.sequence, tx.l2spec ? seq : undefined);
        },
      ),
      { numRuns: 50 },
    );
  }
});

test('drops carry the reason the datapath counts', () => {
  const l = headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 4, peerCookieLength: 4 });
  const good = encodeDataMessage(l, { peerSessionId: 7, cookie: Buffer.from('01020304', 'hex') }, ETH);
  const rx = only(7, { layout: l, peerCookie: Buffer.from('01020304', 'hex') });
  const reason = (b: Buffer, encap: 'udp' | 'ip' = 'udp') => {
    const r = parseDataMessage(b, encap, rx);
    return r.ok ? 'ok' : r.reason;
  };
  assert.equal(reason(good), 'ok');
  assert.equal(reason(good.subarray(0, 1)), 'truncated');
  assert.equal(reason(good.subarray(0, 6)), 'truncated');
  assert.equal(reason(good.subarray(0, 13)), 'truncated');
  assert.equal(reason(Buffer.concat([Buffer.from('c803', 'hex'), good.subarray(2)])), 'control');
  assert.equal(reason(Buffer.concat([Buffer.from('0002', 'hex'), good.subarray(2)])), 'badVersion');
  const wrongSid = Buffer.from(good);
  wrongSid.writeUInt32BE(8, 4);
  assert.equal(reason(wrongSid), 'unknownSession');
  const wrongCookie = Buffer.from(good);
  wrongCookie.writeUInt8(wrongCookie.readUInt8(9) ^ 0xff, 9);
  assert.equal(reason(wrongCookie), 'badCookie');
  assert.equal(reason(Buffer.from('00000000aabbccdd', 'hex'), 'ip'), 'control');
  const sid0 = Buffer.from(good);
  sid0.writeUInt32BE(0, 4);
  assert.equal(reason(sid0), 'unknownSession', 'over UDP only the T bit marks control');
});

test('decoding random bytes never throws a foreign error', () => {
  const l = headerLayout({ encap: 'udp', l2specType: 'default', cookieLength: 8, peerCookieLength: 8 });
  for (const encap of ['udp', 'ip'] as const) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const buf = Buffer.from(bytes);
        assert.doesNotThrow(() =>
          parseDataMessage(buf, encap, () => ({ layout: l, peerCookie: Buffer.alloc(8) })),
        );
        try {
          decodeDataMessage(buf, encap, () => ({ layout: l, peerCookie: Buffer.alloc(8) }));
        } catch (e) {
          assert.ok(e instanceof L2tpWireError, `foreign error ${String(e)}`);
        }
      }),
      { numRuns: 2000 },
    );
  }
});

test('writeHeader refuses a cookie of the wrong length', () => {
  const l = headerLayout({ encap: 'udp', l2specType: 'none', cookieLength: 8, peerCookieLength: 8 });
  assert.throws(() => encodeDataMessage(l, { peerSessionId: 1, cookie: new Uint8Array(4) }, ETH), /8/);
});

test('24-bit sequence window', () => {
  assert.ok(seqIsNewer(5, 4));
  assert.ok(seqIsNewer(2, 0xfffffe));
  assert.ok(!seqIsNewer(3, 4));
});
