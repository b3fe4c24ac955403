// rtnetlink traffic control, the part a tc eBPF program needs: a clsact qdisc on a device, and
// direct-action cls_bpf filters on its ingress and egress hooks, given the program's fd (as
// `tc filter replace ... bpf direct-action object-pinned PIN` sends after opening the pin). tcmsg is
// 20 bytes: family u8, pad u8, pad u16, ifindex s32, handle u32, parent u32, info u32; a filter's info
// is its preference (priority) in the upper 16 bits and its protocol, in network order, in the lower.
// Requests compare byte for byte with iproute2's (rtnl-tc.test.ts). Unlike tc, nothing here lists the
// node's links first: a request costs the same with 10 devices or 10,000.
import {
  AttrMap,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NetlinkDecodeError,
  attrNamer,
  encodeAttrs,
  type Attr,
  type NlMsg,
} from './codec.js';
import { Errno, NetlinkError } from './errors.js';
import type { NetlinkSocket } from './socket.js';

export const RTM_NEWQDISC = 36;
export const RTM_NEWTFILTER = 44;
export const RTM_DELTFILTER = 45;
export const RTM_GETTFILTER = 46;
export const TCMSG_LEN = 20;

export const TCA = { KIND: 1, OPTIONS: 2, CHAIN: 11 } as const;
/** Inside TCA_OPTIONS of a "bpf" filter. */
export const TCA_BPF = { FD: 6, NAME: 7, FLAGS: 8, TAG: 10, ID: 11 } as const;
export const TCA_BPF_FLAG_ACT_DIRECT = 1;

/** clsact's handle and parent; its two hooks are minor numbers under it. */
export const TC_H_CLSACT = 0xfffffff1;
export const TC_H_MIN_INGRESS = 0xfff2;
export const TC_H_MIN_EGRESS = 0xfff3;
export const ETH_P_ALL = 0x0003;

export const tcaName = attrNamer('TCA', TCA);

export type ClsactHook = 'ingress' | 'egress';

/** The parent a filter on a clsact hook names: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_{INGRESS,EGRESS}). */
export const hookParent = (hook: ClsactHook): number =>
  ((TC_H_CLSACT & 0xffff0000) | (hook === 'ingress' ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS)) >>> 0;

/** One filter: a device's hook, a preference and a handle within it. */
export interface FilterRef {
  ifindex: number;
  hook: ClsactHook;
  pref: number;
  handle: number;
}

export interface TcFilter {
  ifindex: number;
  parent: number;
  pref: number;
  /** Ethernet protocol, host order (ETH_P_ALL for ours). */
  protocol: number;
  handle: number;
  kind?: string;
  /** Of a "bpf" filter: the program's id, name and flags, as the kernel reports them. */
  bpf?: { id?: number; name?: string; flags?: number; tag?: string };
}

const htons = (v: number): number => ((v & 0xff) << 8) | ((v >> 8) & 0xff);

function encodeTcmsg(
  ifindex: number,
  handle: number,
  parent: number,
  info: number,
  attrs: readonly Attr[],
): Buffer {
  const h = Buffer.alloc(TCMSG_LEN);
  h.writeUInt8(0, 0); // AF_UNSPEC
  h.writeInt32LE(ifindex, 4);
  h.writeUInt32LE(handle >>> 0, 8);
  h.writeUInt32LE(parent >>> 0, 12);
  h.writeUInt32LE(info >>> 0, 16);
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

const filterInfo = (pref: number, protocol: number): number => ((pref << 16) | htons(protocol)) >>> 0;

/** The kind as iproute2 sends it, NUL included. */
const kindAttr = (kind: string): Attr => ({ type: TCA.KIND, str: kind });

/** RTM_NEWQDISC payload adding a clsact qdisc to ifindex (`tc qdisc add dev X clsact`). */
export function encodeClsact(ifindex: number): Buffer {
  return encodeTcmsg(ifindex, (TC_H_CLSACT & 0xffff0000) >>> 0, TC_H_CLSACT, 0, [kindAttr('clsact')]);
}

/**
 * RTM_NEWTFILTER payload for a direct-action cls_bpf filter running the program of progFd on every
 * protocol (`tc filter replace dev X HOOK pref P handle H bpf direct-action object-pinned PIN`).
 * name is what `tc filter show` prints for it.
 */
export function encodeBpfFilter(f: FilterRef, progFd: number, name: string): Buffer {
  return encodeTcmsg(f.ifindex, f.handle, hookParent(f.hook), filterInfo(f.pref, ETH_P_ALL), [
    kindAttr('bpf'),
    {
      type: TCA.OPTIONS,
      nested: [
        { type: TCA_BPF.FD, u32: progFd },
        { type: TCA_BPF.NAME, str: name },
        { type: TCA_BPF.FLAGS, u32: TCA_BPF_FLAG_ACT_DIRECT },
      ],
    },
  ]);
}

/** RTM_DELTFILTER payload removing that one bpf filter (`tc filter del dev X HOOK pref P handle H bpf`). */
export function encodeDelBpfFilter(f: FilterRef): Buffer {
  return encodeTcmsg(f.ifindex, f.handle, hookParent(f.hook), filterInfo(f.pref, 0), [kindAttr('bpf')]);
}

/** RTM_GETTFILTER dump payload for the filters of one preference on a hook (`tc filter show dev X HOOK pref P`). */
export function encodeListFilters(ifindex: number, hook: ClsactHook, pref: number): Buffer {
  return encodeTcmsg(ifindex, 0, hookParent(hook), filterInfo(pref, 0), []);
}

export function decodeFilter(m: NlMsg): TcFilter {
  const p = m.payload;
  if (p.length < TCMSG_LEN) throw new NetlinkDecodeError(`tc message of ${p.length} bytes has no tcmsg`);
  const info = p.readUInt32LE(16);
  const a = AttrMap.parse(p.subarray(TCMSG_LEN));
  const f: TcFilter = {
    ifindex: p.readInt32LE(4),
    handle: p.readUInt32LE(8),
    parent: p.readUInt32LE(12),
    pref: info >>> 16,
    protocol: htons(info & 0xffff),
  };
  const kind = a.str(TCA.KIND);
  if (kind !== undefined) f.kind = kind;
  const o = kind === 'bpf' ? a.nested(TCA.OPTIONS) : undefined;
  if (o) {
    const bpf: NonNullable<TcFilter['bpf']> = {};
    const id = o.u32(TCA_BPF.ID);
    if (id !== undefined) bpf.id = id;
    const name = o.str(TCA_BPF.NAME);
    if (name !== undefined) bpf.name = name;
    const flags = o.u32(TCA_BPF.FLAGS);
    if (flags !== undefined) bpf.flags = flags;
    const tag = o.raw(TCA_BPF.TAG);
    if (tag) bpf.tag = tag.toString('hex');
    f.bpf = bpf;
  }
  return f;
}

const isErrno = (e: unknown, ...errnos: number[]): boolean =>
  e instanceof NetlinkError && errnos.includes(e.errno);

/** rtnetlink tc operations on one NETLINK_ROUTE socket. */
export class RtnlTc {
  constructor(private readonly sock: NetlinkSocket) {}

  private opts(op: string, ifindex: number, dump = false) {
    return { op, familyHeaderLen: TCMSG_LEN, attrName: tcaName, context: { ifindex }, dump };
  }

  /** Adds a clsact qdisc; false when the device has one already (ours or another tool's: both serve). */
  async addClsact(ifindex: number): Promise<boolean> {
    try {
      await this.sock.request(RTM_NEWQDISC, encodeClsact(ifindex), {
        ...this.opts('RTM_NEWQDISC clsact', ifindex),
        flags: NLM_F_CREATE | NLM_F_EXCL,
      });
      return true;
    } catch (e) {
      if (isErrno(e, Errno.EEXIST)) return false;
      throw e;
    }
  }

  /** Installs the filter, or replaces the program of the one at that preference and handle in place. */
  async replaceBpfFilter(f: FilterRef, progFd: number, name: string): Promise<void> {
    await this.sock.request(RTM_NEWTFILTER, encodeBpfFilter(f, progFd, name), {
      ...this.opts(`RTM_NEWTFILTER bpf ${f.hook} pref ${f.pref}`, f.ifindex),
      flags: NLM_F_CREATE,
    });
  }

  /** The filters at one preference of a hook; none when the device has no clsact qdisc, or is gone. */
  async listFilters(ifindex: number, hook: ClsactHook, pref: number): Promise<TcFilter[]> {
    const r = await this.sock.request(
      RTM_GETTFILTER,
      encodeListFilters(ifindex, hook, pref),
      this.opts(`RTM_GETTFILTER dump ${hook} pref ${pref}`, ifindex, true),
    );
    return r.filter((m) => m.type === RTM_NEWTFILTER).map(decodeFilter);
  }

  /** The bpf filter at f, or undefined when there is none (a device that is gone dumps nothing). */
  async getBpfFilter(f: FilterRef): Promise<TcFilter | undefined> {
    const all = await this.listFilters(f.ifindex, f.hook, f.pref);
    return all.find((x) => x.handle === f.handle && x.kind === 'bpf');
  }

  /** Removes the bpf filter at f; false when it was not there (nor its device). */
  async delBpfFilter(f: FilterRef): Promise<boolean> {
    if (!(await this.getBpfFilter(f))) return false;
    try {
      await this.sock.request(
        RTM_DELTFILTER,
        encodeDelBpfFilter(f),
        this.opts(`RTM_DELTFILTER bpf ${f.hook} pref ${f.pref}`, f.ifindex),
      );
      return true;
    } catch (e) {
      // gone between the look and the delete
      if (isErrno(e, Errno.ENOENT, Errno.ENODEV)) return false;
      throw e;
    }
  }
}
