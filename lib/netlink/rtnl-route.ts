// rtnetlink routes: add one, as `ip route add DST [via GW] dev X [metric N] [table T] [scope S]
// [mtu M] [advmss A]` does, and ask the kernel which route a packet would take, as
// `ip route get DST from SRC` does. rtmsg is 12 bytes: family, dst_len, src_len, tos, table,
// protocol, scope, type (u8 each), flags u32.
import {
  AttrMap,
  NetlinkDecodeError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  encodeAttrs,
  type Attr,
  type NlMsg,
  attrNamer,
} from './codec.js';
import { AF_INET6, addrText, parsePrefix } from './rtnl-addr.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTMSG_LEN = 12;

export const RTA = {
  DST: 1,
  SRC: 2,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  METRICS: 8,
  TABLE: 15,
} as const;

/** Inside RTA_METRICS. */
export const RTAX = { MTU: 2, ADVMSS: 8 } as const;

export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
/** rtm_flags of a lookup: report the table of the matching route (iproute2 sets it). */
export const RTM_F_LOOKUP_TABLE = 0x1000;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;

export const rtaName = attrNamer('RTA', RTA);

export interface RouteSpec {
  /** CIDR; a /0 is the default route. */
  dst: string;
  gateway?: string;
  /** ifindex of the output device. */
  oif: number;
  /** metric */
  priority?: number;
  /** Routing table; main when absent. */
  table?: number;
  /** RT_SCOPE_*; iproute2's default when absent (link for an IPv4 route without gateway, else universe). */
  scope?: number;
  mtu?: number;
  advmss?: number;
}

export function encodeNewRoute(r: RouteSpec): Buffer {
  const dst = parsePrefix(r.dst);
  const gw = r.gateway !== undefined ? parsePrefix(r.gateway) : undefined;
  if (gw && gw.family !== dst.family)
    throw new Error(`gateway ${r.gateway} is not of the family of ${r.dst}`);
  const table = r.table ?? RT_TABLE_MAIN;
  const scope = r.scope ?? (dst.family !== AF_INET6 && gw === undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  const h = Buffer.alloc(RTMSG_LEN);
  h.writeUInt8(dst.family, 0);
  h.writeUInt8(dst.prefixlen, 1);
  h.writeUInt8(table < 256 ? table : RT_TABLE_UNSPEC, 4);
  h.writeUInt8(RTPROT_BOOT, 5);
  h.writeUInt8(scope, 6);
  h.writeUInt8(RTN_UNICAST, 7);
  const attrs: Attr[] = [];
  if (dst.prefixlen > 0) attrs.push({ type: RTA.DST, bytes: dst.addr });
  if (gw) attrs.push({ type: RTA.GATEWAY, bytes: gw.addr });
  if (r.priority !== undefined) attrs.push({ type: RTA.PRIORITY, u32: r.priority });
  attrs.push({ type: RTA.OIF, u32: r.oif });
  if (table >= 256) attrs.push({ type: RTA.TABLE, u32: table });
  const metrics: Attr[] = [];
  if (r.mtu !== undefined) metrics.push({ type: RTAX.MTU, u32: r.mtu });
  if (r.advmss !== undefined) metrics.push({ type: RTAX.ADVMSS, u32: r.advmss });
  // iproute2 sends RTA_METRICS without NLA_F_NESTED; so do we, to stay byte-identical
  if (metrics.length > 0) attrs.push({ type: RTA.METRICS, bytes: encodeAttrs(metrics) });
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

/** RTM_GETROUTE payload: which route would a packet to dst (from src) take? */
export function encodeGetRoute(dst: string, src?: string): Buffer {
  const d = parsePrefix(dst);
  const s = src !== undefined ? parsePrefix(src) : undefined;
  if (s && s.family !== d.family) throw new Error(`source ${src} is not of the family of ${dst}`);
  const h = Buffer.alloc(RTMSG_LEN);
  h.writeUInt8(d.family, 0);
  h.writeUInt8(d.addr.length * 8, 1);
  h.writeUInt8(s ? s.addr.length * 8 : 0, 2);
  // iproute2 asks for the table on IPv4 only (IPv6 lookups ignore the flag)
  h.writeUInt32LE(d.family === AF_INET6 ? 0 : RTM_F_LOOKUP_TABLE, 8);
  const attrs: Attr[] = [{ type: RTA.DST, bytes: d.addr }];
  if (s) attrs.push({ type: RTA.SRC, bytes: s.addr });
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

/** A route as the kernel reports it (the answer to a lookup, or one entry of a dump). */
export interface RouteInfo {
  family: number;
  /** RTN_*: unicast, local (the destination is this host), unreachable, ... */
  type: number;
  table: number;
  scope: number;
  dst?: string;
  /** ifindex of the output device. */
  oif?: number;
  gateway?: string;
  prefsrc?: string;
}

export function decodeRoute(m: NlMsg): RouteInfo {
  const p = m.payload;
  if (p.length < RTMSG_LEN) throw new NetlinkDecodeError(`route message of ${p.length} bytes has no rtmsg`);
  const family = p.readUInt8(0);
  const a = AttrMap.parse(p.subarray(RTMSG_LEN));
  const r: RouteInfo = {
    family,
    type: p.readUInt8(7),
    table: a.u32(RTA.TABLE) ?? p.readUInt8(4),
    scope: p.readUInt8(6),
  };
  const text = (t: number): string | undefined => {
    const b = a.raw(t);
    return b && (b.length === 4 || b.length === 16) ? addrText(family, b) : undefined;
  };
  const dst = text(RTA.DST);
  if (dst !== undefined) r.dst = dst;
  const oif = a.u32(RTA.OIF);
  if (oif !== undefined) r.oif = oif;
  const gw = text(RTA.GATEWAY);
  if (gw !== undefined) r.gateway = gw;
  const ps = text(RTA.PREFSRC);
  if (ps !== undefined) r.prefsrc = ps;
  return r;
}

/** rtnetlink route operations on one NETLINK_ROUTE socket. */
export class RtnlRoutes {
  constructor(private readonly sock: NetlinkSocket) {}

  /** Add a route; EEXIST (NetlinkError) when the same one exists. */
  async add(r: RouteSpec, ifname?: string): Promise<void> {
    await this.sock.request(RTM_NEWROUTE, encodeNewRoute(r), {
      op: `RTM_NEWROUTE ${r.dst}${r.gateway !== undefined ? ` via ${r.gateway}` : ''}`,
      familyHeaderLen: RTMSG_LEN,
      attrName: rtaName,
      context: { ifindex: r.oif, ...(ifname !== undefined ? { ifname } : {}) },
      flags: NLM_F_CREATE | NLM_F_EXCL,
    });
  }

  /**
   * The route the kernel would use for a packet to dst from src (RTM_GETROUTE); a NetlinkError when
   * there is none (ENETUNREACH, EHOSTUNREACH, EINVAL for a source that is not local...).
   */
  async get(dst: string, src?: string): Promise<RouteInfo> {
    const r = await this.sock.request(RTM_GETROUTE, encodeGetRoute(dst, src), {
      op: `RTM_GETROUTE ${dst}${src !== undefined ? ` from ${src}` : ''}`,
      familyHeaderLen: RTMSG_LEN,
      attrName: rtaName,
    });
    if (!r[0]) throw new Error(`RTM_GETROUTE ${dst}: empty reply`);
    return decodeRoute(r[0]);
  }
}
