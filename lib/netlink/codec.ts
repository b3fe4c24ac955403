// Netlink message codec (RFC 3549 framing as Linux implements it): nlmsghdr, attributes (TLV,
// 4-byte aligned, nested), NLMSG_ERROR with extended ACK, and multipart (dump) replies. Pure code
// over Buffers: the native piece (native/netlink_socket.c) only moves bytes, so everything here is
// unit-tested with byte vectors the real kernel produced or accepted (test/fixtures/netlink).

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

/** nlmsg_type values below 16 are control messages. */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** In an NLMSG_ERROR: the request was not echoed (NETLINK_CAP_ACK) / extended-ACK TLVs follow. */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

/** Extended ACK attributes (enum nlmsgerr_attrs). */
export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;
export const NLMSGERR_ATTR_COOKIE = 3;
export const NLMSGERR_ATTR_POLICY = 4;
export const NLMSGERR_ATTR_MISS_TYPE = 5;
export const NLMSGERR_ATTR_MISS_NEST = 6;

/** Rounds up to a multiple of 4; plain arithmetic, not `& ~3`, so lengths of 2^31 and more stay positive. */
export const align4 = (n: number): number => n + 3 - ((n + 3) % 4);

// ---------------------------------------------------------------- attributes: encoding

/** One attribute to encode; nested attributes are encoded recursively with NLA_F_NESTED. */
export type Attr =
  | { type: number; u8: number }
  | { type: number; u16: number }
  | { type: number; u32: number }
  | { type: number; u64: bigint }
  | { type: number; str: string }
  | { type: number; bytes: Buffer }
  | { type: number; flag: true }
  | { type: number; nested: Attr[] };

function attrPayload(a: Attr): Buffer {
  if ('u8' in a) return Buffer.from([a.u8 & 0xff]);
  if ('u16' in a) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(a.u16);
    return b;
  }
  if ('u32' in a) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(a.u32 >>> 0);
    return b;
  }
  if ('u64' in a) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(a.u64);
    return b;
  }
  if ('str' in a) return Buffer.concat([Buffer.from(a.str, 'utf8'), Buffer.alloc(1)]);
  if ('bytes' in a) return a.bytes;
  if ('flag' in a) return Buffer.alloc(0);
  return encodeAttrs(a.nested);
}

export function encodeAttr(a: Attr): Buffer {
  const payload = attrPayload(a);
  const len = NLA_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(('nested' in a ? NLA_F_NESTED : 0) | a.type, 2);
  payload.copy(out, NLA_HDRLEN);
  return out;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  return Buffer.concat(attrs.map(encodeAttr));
}

/** Names attribute types for errors: PREFIX_NAME from a table of constants, PREFIX_#N otherwise. */
export function attrNamer(prefix: string, table: Readonly<Record<string, number>>): (t: number) => string {
  const names = new Map<number, string>(Object.entries(table).map(([k, v]) => [v, `${prefix}_${k}`]));
  return (t) => names.get(t) ?? `${prefix}_#${t}`;
}

// ---------------------------------------------------------------- attributes: decoding

export interface RawAttr {
  type: number;
  nested: boolean;
  value: Buffer;
  /** Offset of the attribute header within the buffer that was parsed. */
  offset: number;
}

export class NetlinkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetlinkDecodeError';
  }
}

/**
 * Calls visit with each attribute's raw type (flags included) and where its value starts and ends in
 * buf, from offset `from` on, making no object per attribute. Throws on a length that overruns the buffer.
 */
export function walkAttrs(
  buf: Buffer,
  from: number,
  visit: (rawType: number, start: number, end: number) => void,
): void {
  let off = from;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(`attribute at offset ${off - from} has bad length ${len}`);
    }
    visit(buf.readUInt16LE(off + 2), off + NLA_HDRLEN, off + len);
    off += align4(len);
  }
}

/** Splits a run of attributes; throws on a length that overruns the buffer. */
export function parseAttrs(buf: Buffer, base = 0): RawAttr[] {
  const out: RawAttr[] = [];
  walkAttrs(buf, 0, (rawType, start, end) =>
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      value: buf.subarray(start, end),
      offset: base + start - NLA_HDRLEN,
    }),
  );
  return out;
}

/** An attribute's value read as the kernel writes it; undefined when absent or too short. */
export const attrValue = {
  u8: (v: Buffer | undefined): number | undefined => (v && v.length >= 1 ? v.readUInt8(0) : undefined),
  u16: (v: Buffer | undefined): number | undefined => (v && v.length >= 2 ? v.readUInt16LE(0) : undefined),
  u32: (v: Buffer | undefined): number | undefined => (v && v.length >= 4 ? v.readUInt32LE(0) : undefined),
  /** Up to the first NUL, or all of it. */
  str: (v: Buffer | undefined): string | undefined => {
    if (!v) return undefined;
    const nul = v.indexOf(0);
    return v.toString('utf8', 0, nul < 0 ? v.length : nul);
  },
};

/** Attribute lookup by type (last one wins, as in the kernel's nla_parse). */
export class AttrMap {
  private readonly m = new Map<number, RawAttr>();
  constructor(readonly list: RawAttr[]) {
    for (const a of list) this.m.set(a.type, a);
  }
  static parse(buf: Buffer): AttrMap {
    return new AttrMap(parseAttrs(buf));
  }
  has(t: number): boolean {
    return this.m.has(t);
  }
  raw(t: number): Buffer | undefined {
    return this.m.get(t)?.value;
  }
  u8(t: number): number | undefined {
    return attrValue.u8(this.raw(t));
  }
  u16(t: number): number | undefined {
    return attrValue.u16(this.raw(t));
  }
  u32(t: number): number | undefined {
    return attrValue.u32(this.raw(t));
  }
  u64(t: number): bigint | undefined {
    const v = this.raw(t);
    if (!v) return undefined;
    if (v.length >= 8) return v.readBigUInt64LE(0);
    if (v.length >= 4) return BigInt(v.readUInt32LE(0));
    return undefined;
  }
  str(t: number): string | undefined {
    return attrValue.str(this.raw(t));
  }
  nested(t: number): AttrMap | undefined {
    const v = this.raw(t);
    return v ? AttrMap.parse(v) : undefined;
  }
}

// ---------------------------------------------------------------- messages

export interface NlMsgHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface NlMsg extends NlMsgHeader {
  /** Everything after the 16-byte nlmsghdr (family header + attributes). */
  payload: Buffer;
}

export function encodeMessage(h: NlMsgHeader, payload: Buffer): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(h.type, 4);
  out.writeUInt16LE(h.flags, 6);
  out.writeUInt32LE(h.seq >>> 0, 8);
  out.writeUInt32LE(h.pid >>> 0, 12);
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Splits one received datagram into messages. */
export function parseMessages(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(`netlink message at offset ${off} has bad length ${len}`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

export interface NlError {
  /** Positive errno; 0 = ACK (success). */
  errno: number;
  /** Header of the request this answers. */
  request: NlMsgHeader;
  /** Extended ACK: human-readable message from the kernel. */
  message?: string;
  /** Extended ACK: byte offset, within the request message, of the attribute at fault. */
  offset?: number;
  /** Extended ACK: attribute type the kernel found missing. */
  missingType?: number;
}

/** Decodes an NLMSG_ERROR payload: int error; struct nlmsghdr msg [+ payload]; [ext-ack TLVs]. */
export function parseError(msg: NlMsg): NlError {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new NetlinkDecodeError('truncated NLMSG_ERROR');
  const err = p.readInt32LE(0);
  const request: NlMsgHeader = {
    type: p.readUInt16LE(8),
    flags: p.readUInt16LE(10),
    seq: p.readUInt32LE(12),
    pid: p.readUInt32LE(16),
  };
  const out: NlError = { errno: -err, request };
  if (msg.flags & NLM_F_ACK_TLVS) {
    // with NLM_F_CAPPED only the request header is echoed; otherwise the whole request
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(p.readUInt32LE(4));
    const tlvs = AttrMap.parse(p.subarray(4 + echoed));
    const m = tlvs.str(NLMSGERR_ATTR_MSG);
    if (m !== undefined) out.message = m;
    const o = tlvs.u32(NLMSGERR_ATTR_OFFS);
    if (o !== undefined) out.offset = o;
    const mt = tlvs.u32(NLMSGERR_ATTR_MISS_TYPE);
    if (mt !== undefined) out.missingType = mt;
  }
  return out;
}

/** The attribute type found at a byte offset of an encoded request (for extended-ACK offsets). */
export function attrTypeAtOffset(
  request: Buffer,
  offset: number,
  familyHeaderLen: number,
): number | undefined {
  const start = NLMSG_HDRLEN + familyHeaderLen;
  if (offset < start || offset + NLA_HDRLEN > request.length) return undefined;
  const find = (buf: Buffer, base: number): number | undefined => {
    for (const a of parseAttrs(buf, base)) {
      if (a.offset === offset) return a.type;
      const end = a.offset + NLA_HDRLEN + a.value.length;
      if (a.nested && offset > a.offset && offset < end) return find(a.value, a.offset + NLA_HDRLEN);
    }
    return undefined;
  };
  const len = Math.min(request.readUInt32LE(0), request.length);
  return find(request.subarray(start, len), start);
}
