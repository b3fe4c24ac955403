import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  align4,
  attrTypeAtOffset,
  AttrMap,
  encodeAttr,
  encodeAttrs,
  encodeMessage,
  NetlinkDecodeError,
  NLM_F_ACK_TLVS,
  NLMSG_ERROR,
  parseAttrs,
  parseError,
  parseMessages,
} from './codec.js';

describe('netlink alignment', () => {
  it('rounds every u32 length up to a multiple of 4, 2^31 and above included', () => {
    assert.deepEqual([0, 1, 4, 5, 7, 8].map(align4), [0, 4, 4, 8, 8, 8]);
    assert.equal(align4(2 ** 31 - 1), 2 ** 31);
    assert.equal(align4(2 ** 31 + 1), 2 ** 31 + 4);
    assert.equal(align4(0xffffffff), 2 ** 32);
  });
});

describe('netlink attributes', () => {
  it('encodes scalars little-endian with 4-byte padding', () => {
    assert.equal(encodeAttr({ type: 7, u8: 3 }).toString('hex'), '0500070003000000');
    assert.equal(encodeAttr({ type: 2, u16: 1 }).toString('hex'), '0600020001000000');
    assert.equal(encodeAttr({ type: 9, u32: 100 }).toString('hex'), '0800090064000000');
    assert.equal(encodeAttr({ type: 22, u64: 5n }).toString('hex'), '0c0016000500000000000000');
    assert.equal(encodeAttr({ type: 8, str: 'ab' }).toString('hex'), '0700080061620000');
    assert.equal(encodeAttr({ type: 33, flag: true }).toString('hex'), '04002100');
    assert.equal(
      encodeAttr({ type: 15, bytes: Buffer.from('a1b2c3d4', 'hex') }).toString('hex'),
      '08000f00a1b2c3d4',
    );
  });

  it('marks nested attributes and round-trips them', () => {
    const b = encodeAttr({
      type: 30,
      nested: [
        { type: 1, u64: 2n },
        { type: 4, u32: 9 },
      ],
    });
    assert.equal(b.readUInt16LE(2), 0x8000 | 30);
    const a = AttrMap.parse(b);
    const inner = a.nested(30)!;
    assert.equal(inner.u64(1), 2n);
    assert.equal(inner.u32(4), 9);
    assert.equal(a.list[0]!.nested, true);
  });

  it('parses runs of attributes, last one wins, and reads strings up to NUL', () => {
    const a = AttrMap.parse(
      encodeAttrs([
        { type: 3, str: 'eth0' },
        { type: 4, u32: 1 },
        { type: 4, u32: 2 },
      ]),
    );
    assert.equal(a.str(3), 'eth0');
    assert.equal(a.u32(4), 2);
    assert.equal(a.u16(99), undefined);
  });

  it('rejects an attribute whose length overruns the buffer', () => {
    assert.throws(() => parseAttrs(Buffer.from('0c00010001000000', 'hex')), NetlinkDecodeError);
    assert.throws(() => parseAttrs(Buffer.from('02000100', 'hex')), NetlinkDecodeError);
  });
});

describe('netlink messages', () => {
  it('frames a message and splits a datagram of several', () => {
    const m1 = encodeMessage({ type: 16, flags: 5, seq: 1, pid: 0 }, Buffer.from('010203', 'hex'));
    assert.equal(m1.length, 20); // 19 rounded up
    assert.equal(m1.readUInt32LE(0), 19);
    const m2 = encodeMessage({ type: 3, flags: 2, seq: 1, pid: 0 }, Buffer.alloc(4));
    const msgs = parseMessages(Buffer.concat([m1, m2]));
    assert.deepEqual(
      msgs.map((m) => [m.type, m.flags, m.seq, m.payload.length]),
      [
        [16, 5, 1, 3],
        [3, 2, 1, 4],
      ],
    );
  });

  it('decodes an extended ACK: message and offset of the attribute at fault', () => {
    // a request with two attributes; the kernel blames the second (offset 16 + 4 + 8 = 28)
    const req = encodeMessage(
      { type: 0x20, flags: 5, seq: 7, pid: 0 },
      Buffer.concat([
        Buffer.from('01010000', 'hex'),
        encodeAttrs([
          { type: 9, u32: 1 },
          { type: 10, u32: 2 },
        ]),
      ]),
    );
    const tlvs = encodeAttrs([
      { type: 1, str: 'Attribute failed policy validation' },
      { type: 2, u32: 28 },
    ]);
    const errPayload = Buffer.concat([Buffer.from('eaffffff', 'hex'), req.subarray(0, 16), tlvs]);
    const e = parseError({
      type: NLMSG_ERROR,
      flags: 0x100 | NLM_F_ACK_TLVS,
      seq: 7,
      pid: 0,
      payload: errPayload,
    });
    assert.equal(e.errno, 22);
    assert.equal(e.message, 'Attribute failed policy validation');
    assert.equal(e.offset, 28);
    assert.equal(attrTypeAtOffset(req, 28, 4), 10);
    assert.equal(attrTypeAtOffset(req, 20, 4), 9);
    assert.equal(attrTypeAtOffset(req, 21, 4), undefined);
  });
});
