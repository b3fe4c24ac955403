// Generic netlink: the 4-byte genlmsghdr and family resolution through nlctrl.
import { AttrMap, NetlinkDecodeError, encodeAttrs, type Attr, type NlMsg } from './codec.js';
import type { NetlinkSocket } from './socket.js';

export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

/** genlmsghdr (cmd, version, reserved) followed by attributes. */
export function encodeGenl(cmd: number, version: number, attrs: readonly Attr[]): Buffer {
  const h = Buffer.alloc(GENL_HDRLEN);
  h.writeUInt8(cmd, 0);
  h.writeUInt8(version, 1);
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

export interface GenlMessage {
  cmd: number;
  version: number;
  attrs: AttrMap;
}

export function decodeGenl(m: NlMsg): GenlMessage {
  if (m.payload.length < GENL_HDRLEN) {
    throw new NetlinkDecodeError(`genetlink message of ${m.payload.length} bytes has no genlmsghdr`);
  }
  return {
    cmd: m.payload.readUInt8(0),
    version: m.payload.readUInt8(1),
    attrs: AttrMap.parse(m.payload.subarray(GENL_HDRLEN)),
  };
}

export interface GenlFamily {
  name: string;
  id: number;
  version: number;
  maxAttr: number;
  mcastGroups: Record<string, number>;
}

export function encodeGetFamily(name: string): Buffer {
  return encodeGenl(CTRL_CMD_GETFAMILY, 1, [{ type: CTRL_ATTR_FAMILY_NAME, str: name }]);
}

export function decodeFamily(m: NlMsg): GenlFamily {
  const a = decodeGenl(m).attrs;
  const groups: Record<string, number> = {};
  for (const g of a.nested(CTRL_ATTR_MCAST_GROUPS)?.list ?? []) {
    const ga = AttrMap.parse(g.value);
    const n = ga.str(CTRL_ATTR_MCAST_GRP_NAME);
    const id = ga.u32(CTRL_ATTR_MCAST_GRP_ID);
    if (n !== undefined && id !== undefined) groups[n] = id;
  }
  return {
    name: a.str(CTRL_ATTR_FAMILY_NAME) ?? '',
    id: a.u16(CTRL_ATTR_FAMILY_ID) ?? 0,
    version: a.u32(CTRL_ATTR_VERSION) ?? 0,
    maxAttr: a.u32(CTRL_ATTR_MAXATTR) ?? 0,
    mcastGroups: groups,
  };
}

/** Resolves a family by name; rejects with NetlinkError ENOENT when the kernel does not know it. */
export async function resolveFamily(sock: NetlinkSocket, name: string): Promise<GenlFamily> {
  const replies = await sock.request(GENL_ID_CTRL, encodeGetFamily(name), {
    op: `nlctrl GETFAMILY ${name}`,
    familyHeaderLen: GENL_HDRLEN,
  });
  const first = replies[0];
  if (!first) throw new Error(`nlctrl: no reply for family ${name}`);
  return decodeFamily(first);
}
