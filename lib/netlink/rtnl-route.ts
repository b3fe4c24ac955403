// rtnetlink routes: add one, as `ip route add DST [via GW] dev X [metric N] [table T] [scope S]
// [mtu M] [advmss A]` does. rtmsg is 12 bytes: family, dst_len, src_len, tos, table, protocol,
// scope, type (u8 each), flags u32.
import { NLM_F_CREATE, NLM_F_EXCL, encodeAttrs, type Attr } from './codec.js';
import { AF_INET6, parsePrefix } from './rtnl-addr.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTMSG_LEN = 12;

export const RTA = {
  DST: 1,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  METRICS: 8,
  TABLE: 15,
} as const;

/** Inside RTA_METRICS. */
export const RTAX = { MTU: 2, ADVMSS: 8 } as const;

export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;

const rtaNames = new Map<number, string>(Object.entries(RTA).map(([k, v]) => [v, `RTA_${k}`]));
export const rtaName = (t: number): string => rtaNames.get(t) ?? `RTA_#${t}`;

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
}
