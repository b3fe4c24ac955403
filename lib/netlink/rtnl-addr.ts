// rtnetlink addresses: add one (what `ip addr add CIDR dev X [nodad]` sends) and list them.
// ifaddrmsg is 8 bytes: family u8, prefixlen u8, flags u8, scope u8, index u32.
import {
  AttrMap,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NetlinkDecodeError,
  encodeAttrs,
  type NlMsg,
  attrNamer,
} from './codec.js';
import { ipv4Bytes, ipv4Text, ipv6Bytes, ipv6Text } from './l2tp.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const IFADDR_LEN = 8;

export const AF_INET = 2;
export const AF_INET6 = 10;

export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  CACHEINFO: 6,
  FLAGS: 8,
} as const;

/** ifa_flags: skip duplicate address detection (IPv6). */
export const IFA_F_NODAD = 0x02;

export const ifaName = attrNamer('IFA', IFA);

export interface Prefix {
  family: typeof AF_INET | typeof AF_INET6;
  /** 4 or 16 bytes. */
  addr: Buffer;
  prefixlen: number;
}

/** An address, "10.1.2.3" or "fd00::1" (prefix length = full), or a CIDR "10.1.2.3/24". */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s : s.slice(0, slash);
  const v6 = ip.includes(':');
  const max = v6 ? 128 : 32;
  const plen = slash < 0 ? max : Number(s.slice(slash + 1));
  if (!Number.isInteger(plen) || plen < 0 || plen > max || (slash >= 0 && s.slice(slash + 1) === '')) {
    throw new Error(`bad prefix length in ${s}`);
  }
  return { family: v6 ? AF_INET6 : AF_INET, addr: v6 ? ipv6Bytes(ip) : ipv4Bytes(ip), prefixlen: plen };
}

export const addrText = (family: number, b: Buffer): string =>
  family === AF_INET6 ? ipv6Text(b) : ipv4Text(b);

export interface AddrOptions {
  /** No duplicate address detection (IPv6; ignored by IPv4). */
  nodad?: boolean;
}

/** RTM_NEWADDR payload for CIDR on ifindex: IFA_LOCAL and IFA_ADDRESS both the address, as iproute2. */
export function encodeNewAddr(index: number, cidr: string, o: AddrOptions = {}): Buffer {
  const p = parsePrefix(cidr);
  const h = Buffer.alloc(IFADDR_LEN);
  h.writeUInt8(p.family, 0);
  h.writeUInt8(p.prefixlen, 1);
  h.writeUInt8(o.nodad ? IFA_F_NODAD : 0, 2);
  h.writeUInt8(0, 3); // RT_SCOPE_UNIVERSE
  h.writeUInt32LE(index, 4);
  return Buffer.concat([
    h,
    encodeAttrs([
      { type: IFA.LOCAL, bytes: p.addr },
      { type: IFA.ADDRESS, bytes: p.addr },
    ]),
  ]);
}

export interface AddrInfo {
  family: number;
  index: number;
  prefixlen: number;
  scope: number;
  flags: number;
  /** The local address (IFA_LOCAL, else IFA_ADDRESS), as text. */
  local: string;
}

export function decodeAddr(m: NlMsg): AddrInfo {
  const p = m.payload;
  if (p.length < IFADDR_LEN) throw new NetlinkDecodeError(`address message of ${p.length} bytes`);
  const family = p.readUInt8(0);
  const a = AttrMap.parse(p.subarray(IFADDR_LEN));
  const raw = a.raw(IFA.LOCAL) ?? a.raw(IFA.ADDRESS);
  return {
    family,
    index: p.readUInt32LE(4),
    prefixlen: p.readUInt8(1),
    scope: p.readUInt8(3),
    flags: a.u32(IFA.FLAGS) ?? p.readUInt8(2),
    local: raw ? addrText(family, raw) : '',
  };
}

/** rtnetlink address operations on one NETLINK_ROUTE socket. */
export class RtnlAddrs {
  constructor(private readonly sock: NetlinkSocket) {}

  /** Add CIDR to ifindex; EEXIST (NetlinkError) when it is there already. */
  async add(index: number, cidr: string, o: AddrOptions = {}, ifname?: string): Promise<void> {
    await this.sock.request(RTM_NEWADDR, encodeNewAddr(index, cidr, o), {
      op: `RTM_NEWADDR ${cidr}`,
      familyHeaderLen: IFADDR_LEN,
      attrName: ifaName,
      context: { ifindex: index, ...(ifname !== undefined ? { ifname } : {}) },
      flags: NLM_F_CREATE | NLM_F_EXCL,
    });
  }

  /** Addresses of one link (or all links). */
  async list(index?: number): Promise<AddrInfo[]> {
    const h = Buffer.alloc(IFADDR_LEN);
    if (index !== undefined) h.writeUInt32LE(index, 4);
    const r = await this.sock.request(RTM_GETADDR, h, {
      op: 'RTM_GETADDR dump',
      familyHeaderLen: IFADDR_LEN,
      attrName: ifaName,
      dump: true,
    });
    // without NETLINK_GET_STRICT_CHK the kernel ignores the index filter: filter here
    return r
      .filter((m) => m.type === RTM_NEWADDR)
      .map(decodeAddr)
      .filter((a) => index === undefined || a.index === index);
  }
}
