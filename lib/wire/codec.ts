// L2TPv3 data messages (RFC 3931 section 4, Linux l2tp_core/l2tp_eth behaviour), byte-identical to
// the kernel. The native pump implements the same layout in C; this codec is the reference the
// tests, the tools and the TypeScript side use, and is checked against tshark and kernel captures.
//
//   UDP:  [ver/flags 0x0003][reserved 0x0000][session id][cookie 0|4|8][sublayer 0|4][ethernet]
//   IP:   [session id (0 = control)][cookie 0|4|8][sublayer 0|4][ethernet]
//   default sublayer: 0x40000000 | seq (24 bits) when sequencing, else 0x00000000
import type { Encap, L2SpecType } from './session.js';

export const L2TP_VERSION = 3;
export const L2TP_T_BIT = 0x8000; // control message (UDP encapsulation)
export const SUBLAYER_S_BIT = 0x40000000;
export const SEQ_MASK = 0x00ffffff;

/** Why a buffer is not a data message for us: the names the datapath counts drops under. */
export type WireDropReason = 'truncated' | 'badVersion' | 'control' | 'unknownSession' | 'badCookie';

export class L2tpWireError extends Error {
  constructor(
    readonly reason: WireDropReason,
    message: string,
  ) {
    super(message);
    this.name = 'L2tpWireError';
  }
}

/**
 * Where everything sits in one session's data header, computed once per session (never per
 * packet). Offsets are relative to the start of the L2TP header (UDP payload or IP payload).
 */
export interface HeaderLayout {
  readonly encap: Encap;
  readonly sessionIdOffset: number;
  readonly cookieOffset: number;
  readonly txCookieLength: number;
  readonly rxCookieLength: number;
  readonly l2spec: boolean;
  /** Header bytes before the Ethernet frame on transmit / on receive. */
  readonly txLength: number;
  readonly rxLength: number;
}

export interface LayoutInput {
  encap: Encap;
  l2specType: L2SpecType;
  /** Bytes of the cookie we send (the kernel's `cookie`). */
  cookieLength: 0 | 4 | 8;
  /** Bytes of the cookie we expect (the kernel's `peer_cookie`). */
  peerCookieLength: 0 | 4 | 8;
}

export function headerLayout(i: LayoutInput): HeaderLayout {
  const sessionIdOffset = i.encap === 'udp' ? 4 : 0;
  const cookieOffset = sessionIdOffset + 4;
  const l2 = i.l2specType === 'default' ? 4 : 0;
  return {
    encap: i.encap,
    sessionIdOffset,
    cookieOffset,
    txCookieLength: i.cookieLength,
    rxCookieLength: i.peerCookieLength,
    l2spec: l2 === 4,
    txLength: cookieOffset + i.cookieLength + l2,
    rxLength: cookieOffset + i.peerCookieLength + l2,
  };
}

export interface TxFields {
  /** The PEER's session ID: what goes on the wire. */
  peerSessionId: number;
  /** Our cookie (what we send), of layout.txCookieLength bytes. */
  cookie: Uint8Array;
  /** Sequence number to send (24 bits); undefined = sublayer present but S bit clear. */
  sequence?: number | undefined;
}

/** Writes the header into `out` at `offset`; returns the number of bytes written. */
export function writeHeader(layout: HeaderLayout, f: TxFields, out: Buffer, offset = 0): number {
  if (f.cookie.length !== layout.txCookieLength) {
    throw new RangeError(`cookie is ${f.cookie.length} bytes, the session sends ${layout.txCookieLength}`);
  }
  if (layout.encap === 'udp') {
    out.writeUInt16BE(L2TP_VERSION, offset);
    out.writeUInt16BE(0, offset + 2);
  }
  out.writeUInt32BE(f.peerSessionId >>> 0, offset + layout.sessionIdOffset);
  out.set(f.cookie, offset + layout.cookieOffset);
  if (layout.l2spec) {
    const word = f.sequence === undefined ? 0 : (SUBLAYER_S_BIT | (f.sequence & SEQ_MASK)) >>> 0;
    out.writeUInt32BE(word, offset + layout.cookieOffset + layout.txCookieLength);
  }
  return layout.txLength;
}

/** A complete data message (L2TP header + Ethernet frame), as the UDP or IP payload. */
export function encodeDataMessage(layout: HeaderLayout, f: TxFields, frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(layout.txLength + frame.length);
  writeHeader(layout, f, out);
  out.set(frame, layout.txLength);
  return out;
}

export interface RxExpectation {
  layout: HeaderLayout;
  /** The peer cookie to compare against (empty when none is configured). */
  peerCookie: Uint8Array;
}

export interface DataMessage {
  sessionId: number;
  cookie: Buffer;
  /** Present when the sublayer has the S bit set. */
  sequence?: number;
  /** The Ethernet frame (a view into the input buffer, not a copy). */
  frame: Buffer;
}

export type ParseResult =
  ({ ok: true } & DataMessage) | { ok: false; reason: WireDropReason; detail: string };

const fail = (reason: WireDropReason, detail: string): ParseResult => ({ ok: false, reason, detail });

/**
 * Parses an L2TP payload (after the UDP or IP header). `lookup` finds the session addressed by the
 * session ID; returning undefined counts as unknownSession. Never throws on any input.
 */
export function parseDataMessage(
  buf: Buffer,
  encap: Encap,
  lookup: (sessionId: number) => RxExpectation | undefined,
): ParseResult {
  let sidOffset = 0;
  if (encap === 'udp') {
    if (buf.length < 2) return fail('truncated', `${buf.length} bytes, no L2TP flags word`);
    const flags = buf.readUInt16BE(0);
    if (flags & L2TP_T_BIT) return fail('control', 'T bit set: control message');
    if ((flags & 0x000f) !== L2TP_VERSION) return fail('badVersion', `version ${flags & 0x000f}, expected 3`);
    sidOffset = 4;
  }
  if (buf.length < sidOffset + 4) return fail('truncated', `${buf.length} bytes, no session ID`);
  const sessionId = buf.readUInt32BE(sidOffset);
  // Over IP, session ID 0 announces a control message (RFC 3931 4.1.1.2); over UDP the T bit does, and
  // a data message for session 0 is just one for no session (as the kernel and the pump count it).
  if (sessionId === 0 && encap === 'ip') return fail('control', 'session ID 0: control message');
  const rx = lookup(sessionId);
  if (rx === undefined) return fail('unknownSession', `no session ${sessionId}`);
  const { layout, peerCookie } = rx;
  if (buf.length < layout.rxLength) {
    return fail('truncated', `${buf.length} bytes, session header needs ${layout.rxLength}`);
  }
  const cookie = buf.subarray(layout.cookieOffset, layout.cookieOffset + layout.rxCookieLength);
  if (!cookie.equals(peerCookie)) return fail('badCookie', `cookie mismatch on session ${sessionId}`);
  const msg: DataMessage = { sessionId, cookie, frame: buf.subarray(layout.rxLength) };
  if (layout.l2spec) {
    const word = buf.readUInt32BE(layout.cookieOffset + layout.rxCookieLength);
    if (word & SUBLAYER_S_BIT) msg.sequence = word & SEQ_MASK;
  }
  return { ok: true, ...msg };
}

/** Throwing form of parseDataMessage: only ever throws L2tpWireError. */
export function decodeDataMessage(
  buf: Buffer,
  encap: Encap,
  lookup: (sessionId: number) => RxExpectation | undefined,
): DataMessage {
  const r = parseDataMessage(buf, encap, lookup);
  if (!r.ok) throw new L2tpWireError(r.reason, r.detail);
  const { ok: _ok, ...msg } = r;
  return msg;
}

/** Sequence comparison over the 24-bit space (the kernel's window: half of 0xffffff). */
export function seqIsNewer(received: number, expected: number): boolean {
  const diff = (received - expected) & SEQ_MASK;
  return diff < SEQ_MASK / 2;
}
