// rtnetlink neighbours: look one entry up, as `ip neigh get ADDR dev X` does. ndmsg is 12 bytes:
// family u8, pad u8, pad u16, ifindex s32, state u16, flags u8, type u8.
import { AttrMap, NetlinkDecodeError, encodeAttrs, type NlMsg, attrNamer } from './codec.js';
import { Errno, NetlinkError } from './errors.js';
import { addrText, parsePrefix } from './rtnl-addr.js';
import { macText } from './rtnl.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWNEIGH = 28;
export const RTM_GETNEIGH = 30;
export const NDMSG_LEN = 12;

export const NDA = { DST: 1, LLADDR: 2 } as const;

/** Neighbour states (NUD_*), a bit mask. */
export const NUD = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: 0x40,
  PERMANENT: 0x80,
} as const;

export const ndaName = attrNamer('NDA', NDA);

export interface NeighInfo {
  family: number;
  ifindex: number;
  /** NUD_* bits. */
  state: number;
  dst?: string;
  /** "aa:bb:cc:dd:ee:ff" when the entry has a link-layer address. */
  lladdr?: string;
}

/** RTM_GETNEIGH payload for the entry of addr on ifindex. */
export function encodeGetNeigh(ifindex: number, addr: string): Buffer {
  const p = parsePrefix(addr);
  const h = Buffer.alloc(NDMSG_LEN);
  h.writeUInt8(p.family, 0);
  h.writeInt32LE(ifindex, 4);
  return Buffer.concat([h, encodeAttrs([{ type: NDA.DST, bytes: p.addr }])]);
}

export function decodeNeigh(m: NlMsg): NeighInfo {
  const p = m.payload;
  if (p.length < NDMSG_LEN)
    throw new NetlinkDecodeError(`neighbour message of ${p.length} bytes has no ndmsg`);
  const family = p.readUInt8(0);
  const a = AttrMap.parse(p.subarray(NDMSG_LEN));
  const n: NeighInfo = { family, ifindex: p.readInt32LE(4), state: p.readUInt16LE(8) };
  const dst = a.raw(NDA.DST);
  if (dst && (dst.length === 4 || dst.length === 16)) n.dst = addrText(family, dst);
  const ll = a.raw(NDA.LLADDR);
  if (ll && ll.length === 6) n.lladdr = macText(ll);
  return n;
}

/** rtnetlink neighbour operations on one NETLINK_ROUTE socket. */
export class RtnlNeighbours {
  constructor(private readonly sock: NetlinkSocket) {}

  /** The entry of addr on ifindex, or undefined when the table has none (ENOENT). */
  async get(ifindex: number, addr: string): Promise<NeighInfo | undefined> {
    try {
      const r = await this.sock.request(RTM_GETNEIGH, encodeGetNeigh(ifindex, addr), {
        op: `RTM_GETNEIGH ${addr}`,
        familyHeaderLen: NDMSG_LEN,
        attrName: ndaName,
        context: { ifindex },
      });
      return r[0] ? decodeNeigh(r[0]) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === Errno.ENOENT) return undefined;
      throw e;
    }
  }
}
