// rtnetlink links: read name/flags/MTU/alias/stats; set up/down, MTU, MAC, alias (our ownership
// marker), name, master (bridge port or none) and network namespace; create bridges and veth pairs
// (the peer straight into another namespace); delete one, or many at once through an interface group
// (delMany). ifinfomsg is 16 bytes: family u8, pad u8,
// type u16, index s32, flags u32, change u32. Attribute order follows iproute2's for the same command,
// so requests compare byte for byte with what `ip link` sends (rtnl-iproute2.test.ts).
import {
  AttrMap,
  NLA_TYPE_MASK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NetlinkDecodeError,
  encodeAttrs,
  type Attr,
  type NlMsg,
  attrNamer,
  attrValue,
  walkAttrs,
} from './codec.js';
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
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  IFALIAS: 20,
  STATS64: 23,
  AF_SPEC: 26,
  GROUP: 27,
  NET_NS_FD: 28,
  EXT_MASK: 29,
  NUM_TX_QUEUES: 31,
  NUM_RX_QUEUES: 32,
  CARRIER: 33,
  LINK_NETNSID: 37,
} as const;

/** Inside IFLA_LINKINFO. */
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
/**
 * Inside IFLA_AF_SPEC, one attribute per address family: AF_INET holds IFLA_INET_CONF (u32 per
 * IPV4_DEVCONF_*, from 1), AF_INET6 IFLA_INET6_CONF (s32 per DEVCONF_*, from 0) and
 * IFLA_INET6_ADDR_GEN_MODE (u8).
 */
export const AF_SPEC = { INET: 2, INET6: 10, INET_CONF: 1, INET6_CONF: 2, INET6_ADDR_GEN_MODE: 8 } as const;
/** Where a device's sysctls sit in those arrays, by their names under /proc/sys/net/ipv4/conf/DEV/ ... */
const IPV4_DEVCONF_INDEX = { arp_announce: 17, arp_ignore: 18 } as const;
/** ... and /proc/sys/net/ipv6/conf/DEV/ (addr_gen_mode has an attribute of its own). */
const IPV6_DEVCONF_INDEX = { accept_ra: 3, autoconf: 5, disable_ipv6: 26 } as const;

/**
 * Some of a device's per-device sysctls, as the link dump carries them (the same values procfs
 * shows): ipv4 arp_announce and arp_ignore; ipv6 accept_ra, autoconf, disable_ipv6, addr_gen_mode.
 * A family the kernel does not report (no IPv6) is absent.
 */
export interface LinkSysctls {
  ipv4?: Record<string, number>;
  ipv6?: Record<string, number>;
}

/** Inside IFLA_INFO_DATA of a veth: the peer's ifinfomsg followed by its IFLA_* attributes. */
export const VETH_INFO_PEER = 1;

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;

export const iflaName = attrNamer('IFLA', IFLA);

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
  /** IFF_LOWER_UP: the device has a carrier. */
  lowerUp: boolean;
  /** IFLA_INFO_KIND: "veth", "tun", "bridge", "l2tp"...; absent for a plain physical device. */
  kind?: string;
  /** IFLA_LINK: ifindex of the device this one is tied to (a veth's peer). */
  link?: number;
  /** IFLA_LINK_NETNSID: that device lives in another network namespace (this is its local ID). */
  linkNetnsId?: number;
  /** IFLA_GROUP: the interface group (0, "default", unless set). */
  group?: number;
  stats?: LinkStats;
  /** From IFLA_AF_SPEC, when the caller asked for them. */
  sysctls?: LinkSysctls;
}

/**
 * The interface group delMany gathers the links it deletes in ("kl2t"). Nothing else is expected to use
 * it; delMany checks that the group holds only the links it was given before deleting it.
 */
export const DELETE_GROUP = 0x6b6c3274;

/** IFLA_OPERSTATE values (RFC 2863). */
export const IF_OPER = { UNKNOWN: 0, NOTPRESENT: 1, DOWN: 2, LOWERLAYERDOWN: 3, DORMANT: 5, UP: 6 } as const;

export function encodeIfinfo(index: number, flags: number, change: number, attrs: readonly Attr[]): Buffer {
  const h = Buffer.alloc(IFINFO_LEN);
  h.writeUInt8(0, 0); // AF_UNSPEC
  h.writeInt32LE(index, 4);
  h.writeUInt32LE(flags >>> 0, 8);
  h.writeUInt32LE(change >>> 0, 12);
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

/** The sysctls of LinkSysctls out of an IFLA_AF_SPEC attribute; arrays shorter than expected give none. */
export function decodeLinkSysctls(afSpec: AttrMap): LinkSysctls {
  const out: LinkSysctls = {};
  const v4 = afSpec.nested(AF_SPEC.INET)?.raw(AF_SPEC.INET_CONF);
  if (v4) {
    const conf: Record<string, number> = {};
    for (const [name, i] of Object.entries(IPV4_DEVCONF_INDEX))
      if (v4.length >= (i + 1) * 4) conf[name] = v4.readUInt32LE(i * 4);
    out.ipv4 = conf;
  }
  const inet6 = afSpec.nested(AF_SPEC.INET6);
  if (inet6) {
    const conf: Record<string, number> = {};
    const v6 = inet6.raw(AF_SPEC.INET6_CONF);
    for (const [name, i] of Object.entries(IPV6_DEVCONF_INDEX))
      if (v6 && v6.length >= (i + 1) * 4) conf[name] = v6.readInt32LE(i * 4);
    const mode = inet6.u8(AF_SPEC.INET6_ADDR_GEN_MODE);
    if (mode !== undefined) conf.addr_gen_mode = mode;
    out.ipv6 = conf;
  }
  return out;
}

/** The attributes decodeLink reads; a dump holds thousands of links of some forty attributes each. */
const LINK_READ = [
  IFLA.IFNAME,
  IFLA.MTU,
  IFLA.IFALIAS,
  IFLA.ADDRESS,
  IFLA.OPERSTATE,
  IFLA.LINKINFO,
  IFLA.LINK,
  IFLA.LINK_NETNSID,
  IFLA.GROUP,
  IFLA.AF_SPEC,
  IFLA.STATS64,
] as const;
const LINK_READ_MAX = Math.max(...LINK_READ);
const linkRead = new Uint8Array(LINK_READ_MAX + 1);
for (const t of LINK_READ) linkRead[t] = 1;

const HEX2 = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
/** 6 bytes as "02:11:22:33:44:55". */
export const macText = (m: Uint8Array): string =>
  `${HEX2[m[0]!]}:${HEX2[m[1]!]}:${HEX2[m[2]!]}:${HEX2[m[3]!]}:${HEX2[m[4]!]}:${HEX2[m[5]!]}`;

/** sysctls: decode IFLA_AF_SPEC too (a dump of thousands of devices costs more with it). */
export function decodeLink(m: NlMsg, opts: { sysctls?: boolean } = {}): LinkInfo {
  const p = m.payload;
  if (p.length < IFINFO_LEN)
    throw new NetlinkDecodeError(`link message of ${p.length} bytes has no ifinfomsg`);
  // one walk that keeps a view of the last of each attribute read here, and skips the rest
  const a: (Buffer | undefined)[] = new Array<Buffer | undefined>(LINK_READ_MAX + 1);
  walkAttrs(p, IFINFO_LEN, (rawType, start, end) => {
    const t = rawType & NLA_TYPE_MASK;
    if (t <= LINK_READ_MAX && linkRead[t]) a[t] = p.subarray(start, end);
  });
  const { u8, u32, str } = attrValue;
  const flags = p.readUInt32LE(8);
  const l: LinkInfo = {
    index: p.readInt32LE(4),
    name: str(a[IFLA.IFNAME]) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
  };
  const mtu = u32(a[IFLA.MTU]);
  if (mtu !== undefined) l.mtu = mtu;
  const alias = str(a[IFLA.IFALIAS]);
  if (alias !== undefined && alias !== '') l.alias = alias;
  const mac = a[IFLA.ADDRESS];
  if (mac && mac.length === 6) l.address = macText(mac);
  const op = u8(a[IFLA.OPERSTATE]);
  if (op !== undefined) l.operstate = op;
  const info = a[IFLA.LINKINFO];
  const kind = info && AttrMap.parse(info).str(IFLA_INFO.KIND);
  if (kind !== undefined) l.kind = kind;
  const link = u32(a[IFLA.LINK]);
  if (link !== undefined) l.link = link;
  const nsid = a[IFLA.LINK_NETNSID];
  if (nsid && nsid.length >= 4) l.linkNetnsId = nsid.readInt32LE(0);
  const group = u32(a[IFLA.GROUP]);
  if (group !== undefined) l.group = group;
  const spec = a[IFLA.AF_SPEC];
  if (opts.sysctls && spec) l.sysctls = decodeLinkSysctls(AttrMap.parse(spec));
  const st = a[IFLA.STATS64];
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

/** "02:11:22:33:44:55" as 6 bytes. */
export function macBytes(mac: string): Buffer {
  const p = mac.split(':');
  if (p.length !== 6 || p.some((x) => !/^[0-9a-fA-F]{1,2}$/.test(x))) {
    throw new Error(`not a MAC address: ${mac}`);
  }
  return Buffer.from(p.map((x) => parseInt(x, 16)));
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** MAC address, "aa:bb:cc:dd:ee:ff". */
  address?: string;
  /** ifalias; "" removes it. */
  alias?: string;
  name?: string;
  /** ifindex of the bridge (or bond...) to enslave to; 0 releases it ("nomaster"). */
  master?: number;
  /** Move to the network namespace of this open fd (e.g. of /run/netns/NAME). */
  netnsFd?: number;
  /** Move to the network namespace of this process. */
  netnsPid?: number;
  /** Interface group (IFLA_GROUP). */
  group?: number;
}

export function encodeSetLink(index: number, c: LinkChange): Buffer {
  const attrs: Attr[] = [];
  if (c.mtu !== undefined) attrs.push({ type: IFLA.MTU, u32: c.mtu });
  if (c.address !== undefined) attrs.push({ type: IFLA.ADDRESS, bytes: macBytes(c.address) });
  if (c.alias !== undefined) attrs.push({ type: IFLA.IFALIAS, str: c.alias });
  if (c.name !== undefined) attrs.push({ type: IFLA.IFNAME, str: c.name });
  if (c.master !== undefined) attrs.push({ type: IFLA.MASTER, u32: c.master });
  if (c.netnsFd !== undefined) attrs.push({ type: IFLA.NET_NS_FD, u32: c.netnsFd });
  if (c.netnsPid !== undefined) attrs.push({ type: IFLA.NET_NS_PID, u32: c.netnsPid });
  if (c.group !== undefined) attrs.push({ type: IFLA.GROUP, u32: c.group });
  const change = c.up === undefined ? 0 : IFF_UP;
  return encodeIfinfo(index, c.up ? IFF_UP : 0, change, attrs);
}

/** A link to create (RTM_NEWLINK with NLM_F_CREATE | NLM_F_EXCL). */
export interface NewLink {
  name: string;
  mtu?: number;
  address?: string;
  /** Enslave to this ifindex right away. */
  master?: number;
  /** Bring it up right away. */
  up?: boolean;
  /** Create it in the network namespace of this open fd. */
  netnsFd?: number;
  /** Transmit and receive queues (`numtxqueues N numrxqueues N`), for devices that have several. */
  queues?: number;
}

function newLinkAttrs(l: NewLink): Attr[] {
  const attrs: Attr[] = [];
  if (l.mtu !== undefined) attrs.push({ type: IFLA.MTU, u32: l.mtu });
  if (l.queues !== undefined) {
    attrs.push({ type: IFLA.NUM_TX_QUEUES, u32: l.queues }, { type: IFLA.NUM_RX_QUEUES, u32: l.queues });
  }
  if (l.address !== undefined) attrs.push({ type: IFLA.ADDRESS, bytes: macBytes(l.address) });
  if (l.netnsFd !== undefined) attrs.push({ type: IFLA.NET_NS_FD, u32: l.netnsFd });
  attrs.push({ type: IFLA.IFNAME, str: l.name });
  if (l.master !== undefined) attrs.push({ type: IFLA.MASTER, u32: l.master });
  return attrs;
}

/** RTM_NEWLINK payload creating a link of `kind` ("bridge", "veth", ...) with IFLA_INFO_DATA `data`. */
export function encodeNewLink(l: NewLink, kind: string, data?: Attr[]): Buffer {
  // the kind without a NUL, as iproute2 sends it (NLA_STRING accepts both)
  const info: Attr[] = [{ type: IFLA_INFO.KIND, bytes: Buffer.from(kind) }];
  if (data !== undefined) info.push({ type: IFLA_INFO.DATA, nested: data });
  const up = l.up ? IFF_UP : 0;
  return encodeIfinfo(0, up, up, [...newLinkAttrs(l), { type: IFLA.LINKINFO, nested: info }]);
}

/** RTM_NEWLINK payload creating a veth pair; the peer may go straight into another namespace. */
export function encodeNewVeth(l: NewLink, peer: NewLink): Buffer {
  const up = peer.up ? IFF_UP : 0;
  const peerMsg = encodeIfinfo(0, up, up, newLinkAttrs(peer));
  return encodeNewLink(l, 'veth', [{ type: VETH_INFO_PEER, bytes: peerMsg }]);
}

/** RTM_DELLINK payload deleting every link of an interface group (`ip link del group N`). */
export function encodeDelGroup(group: number): Buffer {
  return encodeIfinfo(0, 0, 0, [{ type: IFLA.GROUP, u32: group }]);
}

export const CREATE_FLAGS = NLM_F_CREATE | NLM_F_EXCL;

/** The kernel's answer for a link that is not (or no longer) there. */
const noDevice = (e: unknown) => (e as { code?: string }).code === 'ENODEV';

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
      if (noDevice(e)) return undefined;
      throw e;
    }
  }

  /** Every link of the namespace; sysctls: with LinkInfo.sysctls. */
  async list(opts: { sysctls?: boolean } = {}): Promise<LinkInfo[]> {
    const r = await this.sock.request(
      RTM_GETLINK,
      encodeIfinfo(0, 0, 0, []),
      this.opts('RTM_GETLINK dump', {}, true),
    );
    return r.filter((m) => m.type === RTM_NEWLINK).map((m) => decodeLink(m, opts));
  }

  async set(index: number, c: LinkChange, ifname?: string): Promise<void> {
    await this.sock.request(
      RTM_NEWLINK,
      encodeSetLink(index, c),
      this.opts('RTM_NEWLINK (set link)', { ifindex: index, ...(ifname !== undefined ? { ifname } : {}) }),
    );
  }

  /** Create a bridge; EEXIST (NetlinkError) when the name is taken. */
  async createBridge(l: NewLink): Promise<void> {
    await this.sock.request(RTM_NEWLINK, encodeNewLink(l, 'bridge'), {
      ...this.opts('RTM_NEWLINK (create bridge)', { ifname: l.name }),
      flags: CREATE_FLAGS,
    });
  }

  /** Create a veth pair `l` <-> `peer`; EEXIST when either name is taken (in its namespace). */
  async createVeth(l: NewLink, peer: NewLink): Promise<void> {
    await this.sock.request(RTM_NEWLINK, encodeNewVeth(l, peer), {
      ...this.opts('RTM_NEWLINK (create veth)', { ifname: l.name }),
      flags: CREATE_FLAGS,
    });
  }

  /** Delete a link by ifindex or name; ENODEV (NetlinkError) when there is none. */
  async del(link: number | string): Promise<void> {
    const byName = typeof link === 'string';
    await this.sock.request(
      RTM_DELLINK,
      byName ? encodeIfinfo(0, 0, 0, [{ type: IFLA.IFNAME, str: link }]) : encodeIfinfo(link, 0, 0, []),
      this.opts('RTM_DELLINK', byName ? { ifname: link } : { ifindex: link }),
    );
  }

  /** Delete every link of interface group `group` in one request; ENODEV when the group is empty. */
  async delGroup(group: number): Promise<void> {
    await this.sock.request(RTM_DELLINK, encodeDelGroup(group), this.opts('RTM_DELLINK (group)', {}));
  }

  /**
   * Delete many links at once. Deleting links one by one costs each a wait for the kernel (an RCU
   * barrier, milliseconds); one RTM_DELLINK of an interface group pays it once for all. The links go
   * into `group`, then the group is deleted, unless a dump shows anything else in it: a link this call
   * was not given is never deleted, and then each link is deleted by its index instead. Links already
   * gone are fine. Returns how many were deleted and whether it took one request.
   */
  async delMany(
    indices: readonly number[],
    group = DELETE_GROUP,
  ): Promise<{ deleted: number; batched: boolean }> {
    const mine = new Set<number>();
    for (const index of indices) {
      try {
        await this.set(index, { group }, undefined);
        mine.add(index);
      } catch (e) {
        if (!noDevice(e)) throw e;
      }
    }
    if (mine.size === 0) return { deleted: 0, batched: false };
    const inGroup = (await this.list()).filter((l) => l.group === group);
    if (inGroup.every((l) => mine.has(l.index))) {
      try {
        await this.delGroup(group);
      } catch (e) {
        if (!noDevice(e)) throw e;
      }
      return { deleted: inGroup.length, batched: true };
    }
    let deleted = 0;
    for (const index of mine) {
      try {
        await this.del(index);
        deleted++;
      } catch (e) {
        if (!noDevice(e)) throw e;
      }
    }
    return { deleted, batched: false };
  }
}
