// rtnetlink links: read name/flags/MTU/alias/stats, set up/down, MTU, alias (our ownership
// marker) and name. ifinfomsg is 16 bytes: family u8, pad u8, type u16, index s32, flags u32, change u32.
import { AttrMap, NetlinkDecodeError, encodeAttrs, type Attr, type NlMsg } from './codec.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const IFINFO_LEN = 16;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  OPERSTATE: 16,
  LINKINFO: 18,
  IFALIAS: 20,
  STATS64: 23,
  EXT_MASK: 29,
} as const;

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;

const iflaNames = new Map<number, string>(Object.entries(IFLA).map(([k, v]) => [v, `IFLA_${k}`]));
export const iflaName = (t: number): string => iflaNames.get(t) ?? `IFLA_#${t}`;

export interface LinkStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  up: boolean;
  mtu?: number;
  alias?: string;
  address?: string;
  operstate?: number;
  stats?: LinkStats;
}

export function encodeIfinfo(index: number, flags: number, change: number, attrs: readonly Attr[]): Buffer {
  const h = Buffer.alloc(IFINFO_LEN);
  h.writeUInt8(0, 0); // AF_UNSPEC
  h.writeInt32LE(index, 4);
  h.writeUInt32LE(flags >>> 0, 8);
  h.writeUInt32LE(change >>> 0, 12);
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

export function decodeLink(m: NlMsg): LinkInfo {
  const p = m.payload;
  if (p.length < IFINFO_LEN)
    throw new NetlinkDecodeError(`link message of ${p.length} bytes has no ifinfomsg`);
  const a = AttrMap.parse(p.subarray(IFINFO_LEN));
  const flags = p.readUInt32LE(8);
  const l: LinkInfo = {
    index: p.readInt32LE(4),
    name: a.str(IFLA.IFNAME) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
  };
  const mtu = a.u32(IFLA.MTU);
  if (mtu !== undefined) l.mtu = mtu;
  const alias = a.str(IFLA.IFALIAS);
  if (alias !== undefined && alias !== '') l.alias = alias;
  const mac = a.raw(IFLA.ADDRESS);
  if (mac && mac.length === 6) l.address = [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const op = a.u8(IFLA.OPERSTATE);
  if (op !== undefined) l.operstate = op;
  const st = a.raw(IFLA.STATS64);
  if (st && st.length >= 64) {
    const u = (i: number): bigint => st.readBigUInt64LE(i * 8);
    l.stats = {
      rxPackets: u(0),
      txPackets: u(1),
      rxBytes: u(2),
      txBytes: u(3),
      rxErrors: u(4),
      txErrors: u(5),
      rxDropped: u(6),
      txDropped: u(7),
    };
  }
  return l;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** ifalias; "" removes it. */
  alias?: string;
  name?: string;
}

export function encodeSetLink(index: number, c: LinkChange): Buffer {
  const attrs: Attr[] = [];
  if (c.mtu !== undefined) attrs.push({ type: IFLA.MTU, u32: c.mtu });
  if (c.alias !== undefined) attrs.push({ type: IFLA.IFALIAS, str: c.alias });
  if (c.name !== undefined) attrs.push({ type: IFLA.IFNAME, str: c.name });
  const change = c.up === undefined ? 0 : IFF_UP;
  return encodeIfinfo(index, c.up ? IFF_UP : 0, change, attrs);
}

/** rtnetlink link operations on one NETLINK_ROUTE socket. */
export class RtnlLinks {
  constructor(private readonly sock: NetlinkSocket) {}

  private opts(op: string, ctx: { ifindex?: number; ifname?: string }, dump = false) {
    return { op, familyHeaderLen: IFINFO_LEN, attrName: iflaName, context: ctx, dump };
  }

  async get(index: number): Promise<LinkInfo> {
    const r = await this.sock.request(
      RTM_GETLINK,
      encodeIfinfo(index, 0, 0, []),
      this.opts('RTM_GETLINK', { ifindex: index }),
    );
    if (!r[0]) throw new Error(`RTM_GETLINK ${index}: empty reply`);
    return decodeLink(r[0]);
  }

  /** The link called `name`, or undefined when there is none (ENODEV). */
  async byName(name: string): Promise<LinkInfo | undefined> {
    try {
      const r = await this.sock.request(
        RTM_GETLINK,
        encodeIfinfo(0, 0, 0, [{ type: IFLA.IFNAME, str: name }]),
        this.opts('RTM_GETLINK', { ifname: name }),
      );
      return r[0] ? decodeLink(r[0]) : undefined;
    } catch (e) {
      if ((e as { code?: string }).code === 'ENODEV') return undefined;
      throw e;
    }
  }

  async list(): Promise<LinkInfo[]> {
    const r = await this.sock.request(
      RTM_GETLINK,
      encodeIfinfo(0, 0, 0, []),
      this.opts('RTM_GETLINK dump', {}, true),
    );
    return r.filter((m) => m.type === RTM_NEWLINK).map(decodeLink);
  }

  async set(index: number, c: LinkChange, ifname?: string): Promise<void> {
    await this.sock.request(
      RTM_NEWLINK,
      encodeSetLink(index, c),
      this.opts('RTM_NEWLINK (set link)', { ifindex: index, ...(ifname !== undefined ? { ifname } : {}) }),
    );
  }
}
