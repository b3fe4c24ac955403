// The generic netlink family "l2tp" (include/uapi/linux/l2tp.h, net/l2tp/l2tp_netlink.c): message
// encoders for tunnels and sessions and decoders for their GET/dump replies. Unmanaged tunnels only
// (no L2TP_ATTR_FD): the kernel opens the UDP / L2TP-IP socket itself, as `ip l2tp add tunnel` does.
import { isIPv6 } from 'node:net';
import type { Attr, NlMsg } from './codec.js';
import { AttrMap, attrNamer } from './codec.js';
import { decodeGenl, encodeGenl, GENL_HDRLEN, resolveFamily, type GenlFamily } from './genl.js';
import type { NetlinkSocket } from './socket.js';

export const L2TP_GENL_NAME = 'l2tp';
export const L2TP_GENL_VERSION = 1;

export const L2TP_CMD = {
  NOOP: 0,
  TUNNEL_CREATE: 1,
  TUNNEL_DELETE: 2,
  TUNNEL_MODIFY: 3,
  TUNNEL_GET: 4,
  SESSION_CREATE: 5,
  SESSION_DELETE: 6,
  SESSION_MODIFY: 7,
  SESSION_GET: 8,
} as const;

export const L2TP_ATTR = {
  PW_TYPE: 1,
  ENCAP_TYPE: 2,
  OFFSET: 3,
  DATA_SEQ: 4,
  L2SPEC_TYPE: 5,
  L2SPEC_LEN: 6,
  PROTO_VERSION: 7,
  IFNAME: 8,
  CONN_ID: 9,
  PEER_CONN_ID: 10,
  SESSION_ID: 11,
  PEER_SESSION_ID: 12,
  UDP_CSUM: 13,
  VLAN_ID: 14,
  COOKIE: 15,
  PEER_COOKIE: 16,
  DEBUG: 17,
  RECV_SEQ: 18,
  SEND_SEQ: 19,
  LNS_MODE: 20,
  USING_IPSEC: 21,
  RECV_TIMEOUT: 22,
  FD: 23,
  IP_SADDR: 24,
  IP_DADDR: 25,
  UDP_SPORT: 26,
  UDP_DPORT: 27,
  MTU: 28,
  MRU: 29,
  STATS: 30,
  IP6_SADDR: 31,
  IP6_DADDR: 32,
  UDP_ZERO_CSUM6_TX: 33,
  UDP_ZERO_CSUM6_RX: 34,
  PAD: 35,
} as const;

export const L2TP_ATTR_STATS = {
  TX_PACKETS: 1,
  TX_BYTES: 2,
  TX_ERRORS: 3,
  RX_PACKETS: 4,
  RX_BYTES: 5,
  RX_SEQ_DISCARDS: 6,
  RX_OOS_PACKETS: 7,
  RX_ERRORS: 8,
  PAD: 9,
  RX_COOKIE_DISCARDS: 10,
  RX_INVALID: 11,
} as const;

export const L2TP_PWTYPE = { ETH_VLAN: 4, ETH: 5, PPP: 7, PPP_AC: 8, IP: 11 } as const;
export const L2TP_L2SPECTYPE = { NONE: 0, DEFAULT: 1 } as const;
export const L2TP_ENCAPTYPE = { UDP: 0, IP: 1 } as const;

export const l2tpAttrName = attrNamer('L2TP_ATTR', L2TP_ATTR);
const cmdNames = new Map<number, string>(Object.entries(L2TP_CMD).map(([k, v]) => [v, k]));
export const l2tpCmdName = (c: number): string => cmdNames.get(c) ?? `CMD_${c}`;

// ---------------------------------------------------------------- model

export interface L2tpTunnelConfig {
  tunnelId: number;
  peerTunnelId: number;
  encap: 'udp' | 'ip';
  local: string;
  remote: string;
  udpSourcePort?: number | undefined;
  udpDestinationPort?: number | undefined;
  /** IPv4: checksum UDP (kernel default off). IPv6: zero checksums are used when false. */
  udpChecksum?: boolean;
}

export interface L2tpSessionConfig {
  tunnelId: number;
  sessionId: number;
  peerSessionId: number;
  /** Pseudowire type; ETH (l2tp_eth) unless told otherwise. */
  pwType?: number;
  ifname?: string;
  /** Cookie we send (hex bytes, 4 or 8). */
  cookie?: Buffer;
  /** Cookie we expect from the peer. */
  peerCookie?: Buffer;
  l2specType: 'none' | 'default';
  sendSequence?: boolean;
  requireSequence?: boolean;
  reorderTimeoutMs?: number;
}

export interface L2tpStats {
  txPackets: bigint;
  txBytes: bigint;
  txErrors: bigint;
  rxPackets: bigint;
  rxBytes: bigint;
  rxSeqDiscards: bigint;
  rxOosPackets: bigint;
  rxErrors: bigint;
  rxCookieDiscards?: bigint;
  rxInvalid?: bigint;
}

export interface L2tpTunnelInfo {
  tunnelId: number;
  peerTunnelId: number;
  protoVersion: number;
  encap: 'udp' | 'ip' | number;
  local?: string;
  remote?: string;
  udpSourcePort?: number;
  udpDestinationPort?: number;
  udpChecksum?: boolean;
  stats?: L2tpStats;
}

export interface L2tpSessionInfo {
  tunnelId: number;
  sessionId: number;
  peerTunnelId?: number;
  peerSessionId: number;
  pwType: number;
  ifname?: string;
  cookie?: Buffer;
  peerCookie?: Buffer;
  l2specType?: 'none' | 'default' | number;
  sendSequence?: boolean;
  requireSequence?: boolean;
  lnsMode?: boolean;
  reorderTimeoutMs?: number;
  mtu?: number;
  stats?: L2tpStats;
}

// ---------------------------------------------------------------- encoders

function addrAttrs(local: string, remote: string): Attr[] {
  if (isIPv6(local)) {
    return [
      { type: L2TP_ATTR.IP6_SADDR, bytes: ipv6Bytes(local) },
      { type: L2TP_ATTR.IP6_DADDR, bytes: ipv6Bytes(remote) },
    ];
  }
  return [
    { type: L2TP_ATTR.IP_SADDR, bytes: ipv4Bytes(local) },
    { type: L2TP_ATTR.IP_DADDR, bytes: ipv4Bytes(remote) },
  ];
}

/** TUNNEL_CREATE for an unmanaged tunnel, attributes in the order iproute2 sends them. */
export function encodeTunnelCreate(t: L2tpTunnelConfig): Buffer {
  const attrs: Attr[] = [
    { type: L2TP_ATTR.CONN_ID, u32: t.tunnelId },
    { type: L2TP_ATTR.PEER_CONN_ID, u32: t.peerTunnelId },
    { type: L2TP_ATTR.PROTO_VERSION, u8: 3 },
    { type: L2TP_ATTR.ENCAP_TYPE, u16: t.encap === 'ip' ? L2TP_ENCAPTYPE.IP : L2TP_ENCAPTYPE.UDP },
    ...addrAttrs(t.local, t.remote),
  ];
  if (t.encap === 'udp') {
    if (isIPv6(t.local)) {
      if (!t.udpChecksum) {
        attrs.push({ type: L2TP_ATTR.UDP_ZERO_CSUM6_TX, flag: true });
        attrs.push({ type: L2TP_ATTR.UDP_ZERO_CSUM6_RX, flag: true });
      }
    } else if (t.udpChecksum) {
      // the kernel reads UDP_CSUM as a flag (nla_get_flag: present = on), whatever its value
      attrs.push({ type: L2TP_ATTR.UDP_CSUM, u8: 1 });
    }
    attrs.push({ type: L2TP_ATTR.UDP_SPORT, u16: t.udpSourcePort ?? 0 });
    attrs.push({ type: L2TP_ATTR.UDP_DPORT, u16: t.udpDestinationPort ?? 0 });
  }
  return encodeGenl(L2TP_CMD.TUNNEL_CREATE, L2TP_GENL_VERSION, attrs);
}

export function encodeTunnelDelete(tunnelId: number): Buffer {
  return encodeGenl(L2TP_CMD.TUNNEL_DELETE, L2TP_GENL_VERSION, [{ type: L2TP_ATTR.CONN_ID, u32: tunnelId }]);
}

/** TUNNEL_GET of one tunnel, or a dump of all (tunnelId undefined). */
export function encodeTunnelGet(tunnelId?: number): Buffer {
  return encodeGenl(
    L2TP_CMD.TUNNEL_GET,
    L2TP_GENL_VERSION,
    tunnelId === undefined ? [] : [{ type: L2TP_ATTR.CONN_ID, u32: tunnelId }],
  );
}

/** TUNNEL_MODIFY: the kernel (6.1) can change only the debug flags of a tunnel. */
export function encodeTunnelModify(tunnelId: number, debug: number): Buffer {
  return encodeGenl(L2TP_CMD.TUNNEL_MODIFY, L2TP_GENL_VERSION, [
    { type: L2TP_ATTR.CONN_ID, u32: tunnelId },
    { type: L2TP_ATTR.DEBUG, u32: debug },
  ]);
}

/** SESSION_CREATE of an Ethernet pseudowire (l2tp_eth). */
export function encodeSessionCreate(s: L2tpSessionConfig): Buffer {
  const attrs: Attr[] = [
    { type: L2TP_ATTR.CONN_ID, u32: s.tunnelId },
    { type: L2TP_ATTR.SESSION_ID, u32: s.sessionId },
    { type: L2TP_ATTR.PEER_SESSION_ID, u32: s.peerSessionId },
    { type: L2TP_ATTR.PW_TYPE, u16: s.pwType ?? L2TP_PWTYPE.ETH },
    {
      type: L2TP_ATTR.L2SPEC_TYPE,
      u8: s.l2specType === 'default' ? L2TP_L2SPECTYPE.DEFAULT : L2TP_L2SPECTYPE.NONE,
    },
    { type: L2TP_ATTR.L2SPEC_LEN, u8: s.l2specType === 'default' ? 4 : 0 },
  ];
  if (s.sendSequence) attrs.push({ type: L2TP_ATTR.SEND_SEQ, u8: 1 });
  if (s.requireSequence) attrs.push({ type: L2TP_ATTR.RECV_SEQ, u8: 1 });
  if (s.reorderTimeoutMs) attrs.push({ type: L2TP_ATTR.RECV_TIMEOUT, u64: BigInt(s.reorderTimeoutMs) });
  if (s.cookie && s.cookie.length > 0) attrs.push({ type: L2TP_ATTR.COOKIE, bytes: s.cookie });
  if (s.peerCookie && s.peerCookie.length > 0)
    attrs.push({ type: L2TP_ATTR.PEER_COOKIE, bytes: s.peerCookie });
  if (s.ifname) attrs.push({ type: L2TP_ATTR.IFNAME, str: s.ifname });
  return encodeGenl(L2TP_CMD.SESSION_CREATE, L2TP_GENL_VERSION, attrs);
}

export function encodeSessionDelete(tunnelId: number, sessionId: number): Buffer {
  return encodeGenl(L2TP_CMD.SESSION_DELETE, L2TP_GENL_VERSION, [
    { type: L2TP_ATTR.CONN_ID, u32: tunnelId },
    { type: L2TP_ATTR.SESSION_ID, u32: sessionId },
  ]);
}

/** SESSION_GET of one session, or a dump of all sessions of all tunnels (no IDs). */
export function encodeSessionGet(tunnelId?: number, sessionId?: number): Buffer {
  const attrs: Attr[] = [];
  if (tunnelId !== undefined) attrs.push({ type: L2TP_ATTR.CONN_ID, u32: tunnelId });
  if (sessionId !== undefined) attrs.push({ type: L2TP_ATTR.SESSION_ID, u32: sessionId });
  return encodeGenl(L2TP_CMD.SESSION_GET, L2TP_GENL_VERSION, attrs);
}

/** What SESSION_MODIFY can change on a live session (the kernel ignores cookies and IDs here). */
export interface L2tpSessionChange {
  sendSequence?: boolean;
  requireSequence?: boolean;
  lnsMode?: boolean;
  reorderTimeoutMs?: number;
}

export function encodeSessionModify(tunnelId: number, sessionId: number, c: L2tpSessionChange): Buffer {
  const attrs: Attr[] = [
    { type: L2TP_ATTR.CONN_ID, u32: tunnelId },
    { type: L2TP_ATTR.SESSION_ID, u32: sessionId },
  ];
  if (c.requireSequence !== undefined)
    attrs.push({ type: L2TP_ATTR.RECV_SEQ, u8: c.requireSequence ? 1 : 0 });
  if (c.sendSequence !== undefined) attrs.push({ type: L2TP_ATTR.SEND_SEQ, u8: c.sendSequence ? 1 : 0 });
  if (c.lnsMode !== undefined) attrs.push({ type: L2TP_ATTR.LNS_MODE, u8: c.lnsMode ? 1 : 0 });
  if (c.reorderTimeoutMs !== undefined) {
    attrs.push({ type: L2TP_ATTR.RECV_TIMEOUT, u64: BigInt(c.reorderTimeoutMs) });
  }
  return encodeGenl(L2TP_CMD.SESSION_MODIFY, L2TP_GENL_VERSION, attrs);
}

// ---------------------------------------------------------------- decoders

function decodeStats(a: AttrMap | undefined): L2tpStats | undefined {
  if (!a) return undefined;
  const g = (t: number): bigint => a.u64(t) ?? 0n;
  const s: L2tpStats = {
    txPackets: g(L2TP_ATTR_STATS.TX_PACKETS),
    txBytes: g(L2TP_ATTR_STATS.TX_BYTES),
    txErrors: g(L2TP_ATTR_STATS.TX_ERRORS),
    rxPackets: g(L2TP_ATTR_STATS.RX_PACKETS),
    rxBytes: g(L2TP_ATTR_STATS.RX_BYTES),
    rxSeqDiscards: g(L2TP_ATTR_STATS.RX_SEQ_DISCARDS),
    rxOosPackets: g(L2TP_ATTR_STATS.RX_OOS_PACKETS),
    rxErrors: g(L2TP_ATTR_STATS.RX_ERRORS),
  };
  const cd = a.u64(L2TP_ATTR_STATS.RX_COOKIE_DISCARDS);
  if (cd !== undefined) s.rxCookieDiscards = cd;
  const inv = a.u64(L2TP_ATTR_STATS.RX_INVALID);
  if (inv !== undefined) s.rxInvalid = inv;
  return s;
}

function set<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}

export function decodeTunnel(m: NlMsg): L2tpTunnelInfo {
  const a = decodeGenl(m).attrs;
  const encap = a.u16(L2TP_ATTR.ENCAP_TYPE);
  const t: L2tpTunnelInfo = {
    tunnelId: a.u32(L2TP_ATTR.CONN_ID) ?? 0,
    peerTunnelId: a.u32(L2TP_ATTR.PEER_CONN_ID) ?? 0,
    protoVersion: a.u8(L2TP_ATTR.PROTO_VERSION) ?? 0,
    encap: encap === L2TP_ENCAPTYPE.UDP ? 'udp' : encap === L2TP_ENCAPTYPE.IP ? 'ip' : (encap ?? -1),
  };
  const s4 = a.raw(L2TP_ATTR.IP_SADDR);
  const d4 = a.raw(L2TP_ATTR.IP_DADDR);
  const s6 = a.raw(L2TP_ATTR.IP6_SADDR);
  const d6 = a.raw(L2TP_ATTR.IP6_DADDR);
  set(t, 'local', s4?.length === 4 ? ipv4Text(s4) : s6?.length === 16 ? ipv6Text(s6) : undefined);
  set(t, 'remote', d4?.length === 4 ? ipv4Text(d4) : d6?.length === 16 ? ipv6Text(d6) : undefined);
  set(t, 'udpSourcePort', a.u16(L2TP_ATTR.UDP_SPORT));
  set(t, 'udpDestinationPort', a.u16(L2TP_ATTR.UDP_DPORT));
  const csum = a.u8(L2TP_ATTR.UDP_CSUM);
  if (csum !== undefined) t.udpChecksum = csum !== 0;
  else if (a.has(L2TP_ATTR.UDP_ZERO_CSUM6_TX)) t.udpChecksum = false;
  set(t, 'stats', decodeStats(a.nested(L2TP_ATTR.STATS)));
  return t;
}

export function decodeSession(m: NlMsg): L2tpSessionInfo {
  const a = decodeGenl(m).attrs;
  const s: L2tpSessionInfo = {
    tunnelId: a.u32(L2TP_ATTR.CONN_ID) ?? 0,
    sessionId: a.u32(L2TP_ATTR.SESSION_ID) ?? 0,
    peerSessionId: a.u32(L2TP_ATTR.PEER_SESSION_ID) ?? 0,
    pwType: a.u16(L2TP_ATTR.PW_TYPE) ?? 0,
  };
  set(s, 'peerTunnelId', a.u32(L2TP_ATTR.PEER_CONN_ID));
  set(s, 'ifname', a.str(L2TP_ATTR.IFNAME));
  const c = a.raw(L2TP_ATTR.COOKIE);
  if (c && c.length > 0) s.cookie = Buffer.from(c);
  const pc = a.raw(L2TP_ATTR.PEER_COOKIE);
  if (pc && pc.length > 0) s.peerCookie = Buffer.from(pc);
  const l2 = a.u8(L2TP_ATTR.L2SPEC_TYPE);
  if (l2 !== undefined) {
    s.l2specType = l2 === L2TP_L2SPECTYPE.DEFAULT ? 'default' : l2 === L2TP_L2SPECTYPE.NONE ? 'none' : l2;
  }
  const b = (t: number): boolean | undefined => {
    const v = a.u8(t);
    return v === undefined ? undefined : v !== 0;
  };
  set(s, 'sendSequence', b(L2TP_ATTR.SEND_SEQ));
  set(s, 'requireSequence', b(L2TP_ATTR.RECV_SEQ));
  set(s, 'lnsMode', b(L2TP_ATTR.LNS_MODE));
  const rt = a.u64(L2TP_ATTR.RECV_TIMEOUT);
  if (rt !== undefined) s.reorderTimeoutMs = Number(rt);
  set(s, 'mtu', a.u16(L2TP_ATTR.MTU));
  set(s, 'stats', decodeStats(a.nested(L2TP_ATTR.STATS)));
  return s;
}

// ---------------------------------------------------------------- addresses

export function ipv4Bytes(a: string): Buffer {
  const p = a.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new Error(`not an IPv4 address: ${a}`);
  }
  return Buffer.from(p);
}

export function ipv4Text(b: Buffer): string {
  return [...b.subarray(0, 4)].join('.');
}

export function ipv6Bytes(a: string): Buffer {
  let s = a;
  const out = Buffer.alloc(16);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4 && v4[1]) {
    const b = ipv4Bytes(v4[1]);
    tail = [b.readUInt16BE(0), b.readUInt16BE(2)];
    s = s.slice(0, -v4[1].length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const hw = head ? head.split(':') : [];
  const rw = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const words = [...hw, ...Array<string>(8 - hw.length - rw.length).fill('0'), ...rw].map((w) =>
    parseInt(w, 16),
  );
  if (tail.length) words.splice(6, 2, ...tail);
  if (words.length !== 8 || words.some((w) => Number.isNaN(w))) throw new Error(`not an IPv6 address: ${a}`);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

export function ipv6Text(b: Buffer): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  // compress the longest run of zero words (RFC 5952)
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

// ---------------------------------------------------------------- client

/** The l2tp family on one generic netlink socket. */
export class L2tpNetlink {
  private constructor(
    private readonly sock: NetlinkSocket,
    readonly family: GenlFamily,
  ) {}

  /** Resolves the family; rejects with NetlinkError ENOENT where the kernel has no l2tp_netlink. */
  static async open(sock: NetlinkSocket): Promise<L2tpNetlink> {
    return new L2tpNetlink(sock, await resolveFamily(sock, L2TP_GENL_NAME));
  }

  private req(
    payload: Buffer,
    ctx: { tunnelId?: number; sessionId?: number },
    dump = false,
  ): Promise<NlMsg[]> {
    return this.sock.request(this.family.id, payload, {
      op: `l2tp ${l2tpCmdName(payload.readUInt8(0))}`,
      familyHeaderLen: GENL_HDRLEN,
      attrName: l2tpAttrName,
      context: ctx,
      dump,
    });
  }

  async createTunnel(t: L2tpTunnelConfig): Promise<void> {
    await this.req(encodeTunnelCreate(t), { tunnelId: t.tunnelId });
  }
  async deleteTunnel(tunnelId: number): Promise<void> {
    await this.req(encodeTunnelDelete(tunnelId), { tunnelId });
  }
  async modifyTunnel(tunnelId: number, debug: number): Promise<void> {
    await this.req(encodeTunnelModify(tunnelId, debug), { tunnelId });
  }
  async getTunnel(tunnelId: number): Promise<L2tpTunnelInfo | undefined> {
    const r = await this.req(encodeTunnelGet(tunnelId), { tunnelId });
    return r[0] ? decodeTunnel(r[0]) : undefined;
  }
  async dumpTunnels(): Promise<L2tpTunnelInfo[]> {
    return (await this.req(encodeTunnelGet(), {}, true)).map(decodeTunnel);
  }
  async createSession(s: L2tpSessionConfig): Promise<void> {
    await this.req(encodeSessionCreate(s), { tunnelId: s.tunnelId, sessionId: s.sessionId });
  }
  async deleteSession(tunnelId: number, sessionId: number): Promise<void> {
    await this.req(encodeSessionDelete(tunnelId, sessionId), { tunnelId, sessionId });
  }
  async modifySession(tunnelId: number, sessionId: number, c: L2tpSessionChange): Promise<void> {
    await this.req(encodeSessionModify(tunnelId, sessionId, c), { tunnelId, sessionId });
  }
  async getSession(tunnelId: number, sessionId: number): Promise<L2tpSessionInfo | undefined> {
    const r = await this.req(encodeSessionGet(tunnelId, sessionId), { tunnelId, sessionId });
    return r[0] ? decodeSession(r[0]) : undefined;
  }
  async dumpSessions(): Promise<L2tpSessionInfo[]> {
    return (await this.req(encodeSessionGet(), {}, true)).map(decodeSession);
  }
}
