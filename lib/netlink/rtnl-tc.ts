// rtnetlink traffic control, the part a tc eBPF program needs: a clsact qdisc on a device (its hooks'
// blocks the device's own, or shared blocks named by index), and direct-action cls_bpf filters on a
// device's ingress or egress hook or on a shared block, given the program's fd (as
// `tc filter replace ... bpf direct-action object-pinned PIN` sends after opening the pin). tcmsg is
// 20 bytes: family u8, pad u8, pad u16, ifindex s32, handle u32, parent u32, info u32; a filter's info
// is its preference (priority) in the upper 16 bits and its protocol, in network order, in the lower.
// A request about a shared block names no device (ifindex TCM_IFINDEX_MAGIC_BLOCK) and carries the
// block's index where the parent would be. Requests compare byte for byte with iproute2's
// (rtnl-tc.test.ts). Unlike tc, nothing here lists the node's links first: a request costs the same
// with 10 devices or 10,000.
import {
  AttrMap,
  NLM_F_CREATE,
  NLM_F_ECHO,
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
export const RTM_DELQDISC = 37;
export const RTM_GETQDISC = 38;
export const RTM_NEWTFILTER = 44;
export const RTM_DELTFILTER = 45;
export const RTM_GETTFILTER = 46;
export const TCMSG_LEN = 20;

export const TCA = { KIND: 1, OPTIONS: 2, CHAIN: 11, INGRESS_BLOCK: 13, EGRESS_BLOCK: 14 } as const;
/** Inside TCA_OPTIONS of a "bpf" filter. */
export const TCA_BPF = { FD: 6, NAME: 7, FLAGS: 8, TAG: 10, ID: 11 } as const;
export const TCA_BPF_FLAG_ACT_DIRECT = 1;

/** clsact's handle and parent; its two hooks are minor numbers under it. */
export const TC_H_CLSACT = 0xfffffff1;
export const TC_H_MIN_INGRESS = 0xfff2;
export const TC_H_MIN_EGRESS = 0xfff3;
export const ETH_P_ALL = 0x0003;
/** The ifindex of a request about a shared block (the block's index goes in the parent field). */
export const TCM_IFINDEX_MAGIC_BLOCK = 0xffffffff;

export const tcaName = attrNamer('TCA', TCA);

export type ClsactHook = 'ingress' | 'egress';

/** The parent a filter on a clsact hook names: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_{INGRESS,EGRESS}). */
export const hookParent = (hook: ClsactHook): number =>
  ((TC_H_CLSACT & 0xffff0000) | (hook === 'ingress' ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS)) >>> 0;

/** Where filters live: a device's clsact hook, or a shared block (`tc filter ... block N`). */
export type FilterTarget = { ifindex: number; hook: ClsactHook } | { block: number };

/** One filter: its place, a preference and a handle within it. */
export type FilterRef = FilterTarget & { pref: number; handle: number };

/** The shared blocks a clsact qdisc binds its hooks to (tc's ingress_block and egress_block). */
export interface ClsactBlocks {
  ingress: number;
  egress: number;
}

export interface TcFilter {
  /** The device, or for a filter of a shared block TCM_IFINDEX_MAGIC_BLOCK (see block). */
  ifindex: number;
  parent: number;
  /** The shared block's index, for a filter of one (the kernel sends it as the parent). */
  block?: number;
  pref: number;
  /** Ethernet protocol, host order (ETH_P_ALL for ours). */
  protocol: number;
  handle: number;
  kind?: string;
  /** Of a "bpf" filter: the program's id, name and flags, as the kernel reports them. */
  bpf?: { id?: number; name?: string; flags?: number; tag?: string };
}

/** A device's qdisc at the clsact (ingress) place: its kind, and the shared blocks it binds if any. */
export interface TcQdisc {
  ifindex: number;
  handle: number;
  parent: number;
  kind?: string;
  ingressBlock?: number;
  egressBlock?: number;
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
  h.writeUInt32LE(ifindex >>> 0, 4);
  h.writeUInt32LE(handle >>> 0, 8);
  h.writeUInt32LE(parent >>> 0, 12);
  h.writeUInt32LE(info >>> 0, 16);
  return Buffer.concat([h, encodeAttrs(attrs)]);
}

const filterInfo = (pref: number, protocol: number): number => ((pref << 16) | htons(protocol)) >>> 0;

/** The kind as iproute2 sends it, NUL included. */
const kindAttr = (kind: string): Attr => ({ type: TCA.KIND, str: kind });

/** The tcmsg ifindex and parent of filters at t. */
const placeOf = (t: FilterTarget): { ifindex: number; parent: number } =>
  'block' in t
    ? { ifindex: TCM_IFINDEX_MAGIC_BLOCK, parent: t.block }
    : { ifindex: t.ifindex, parent: hookParent(t.hook) };

export const CLSACT_HANDLE = (TC_H_CLSACT & 0xffff0000) >>> 0;

/**
 * RTM_NEWQDISC payload adding a clsact qdisc to ifindex (`tc qdisc add dev X clsact`), its hooks bound
 * to shared blocks when given (`tc qdisc add dev X ingress_block I egress_block E clsact`).
 */
export function encodeClsact(ifindex: number, blocks?: ClsactBlocks): Buffer {
  const attrs: Attr[] = [kindAttr('clsact')];
  if (blocks) {
    attrs.push(
      { type: TCA.INGRESS_BLOCK, u32: blocks.ingress },
      { type: TCA.EGRESS_BLOCK, u32: blocks.egress },
    );
  }
  return encodeTcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0, attrs);
}

/** RTM_DELQDISC payload removing ifindex's clsact qdisc, and with it its filters (`tc qdisc del dev X clsact`). */
export function encodeDelClsact(ifindex: number): Buffer {
  return encodeTcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0, [kindAttr('clsact')]);
}

/** RTM_GETQDISC payload asking for the one qdisc at ifindex's clsact (ingress) place. */
export function encodeGetClsact(ifindex: number): Buffer {
  return encodeTcmsg(ifindex, 0, TC_H_CLSACT, 0, []);
}

/**
 * RTM_NEWTFILTER payload for a direct-action cls_bpf filter running the program of progFd on every
 * protocol (`tc filter replace dev X HOOK pref P handle H bpf direct-action object-pinned PIN`, or
 * `... block N ...`). name is what `tc filter show` prints for it.
 */
export function encodeBpfFilter(f: FilterRef, progFd: number, name: string): Buffer {
  const { ifindex, parent } = placeOf(f);
  return encodeTcmsg(ifindex, f.handle, parent, filterInfo(f.pref, ETH_P_ALL), [
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
  const { ifindex, parent } = placeOf(f);
  return encodeTcmsg(ifindex, f.handle, parent, filterInfo(f.pref, 0), [kindAttr('bpf')]);
}

/**
 * RTM_GETTFILTER dump payload for the filters of one preference on a hook or block
 * (`tc filter show dev X HOOK pref P`, `tc filter show block N pref P`).
 */
export function encodeListFilters(t: FilterTarget, pref: number): Buffer {
  const { ifindex, parent } = placeOf(t);
  return encodeTcmsg(ifindex, 0, parent, filterInfo(pref, 0), []);
}

export function decodeFilter(m: NlMsg): TcFilter {
  const p = m.payload;
  if (p.length < TCMSG_LEN) throw new NetlinkDecodeError(`tc message of ${p.length} bytes has no tcmsg`);
  const info = p.readUInt32LE(16);
  const a = AttrMap.parse(p.subarray(TCMSG_LEN));
  const f: TcFilter = {
    ifindex: p.readUInt32LE(4),
    handle: p.readUInt32LE(8),
    parent: p.readUInt32LE(12),
    pref: info >>> 16,
    protocol: htons(info & 0xffff),
  };
  if (f.ifindex === TCM_IFINDEX_MAGIC_BLOCK) f.block = f.parent;
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

export function decodeQdisc(m: NlMsg): TcQdisc {
  const p = m.payload;
  if (p.length < TCMSG_LEN) throw new NetlinkDecodeError(`tc message of ${p.length} bytes has no tcmsg`);
  const a = AttrMap.parse(p.subarray(TCMSG_LEN));
  const q: TcQdisc = { ifindex: p.readInt32LE(4), handle: p.readUInt32LE(8), parent: p.readUInt32LE(12) };
  const kind = a.str(TCA.KIND);
  if (kind !== undefined) q.kind = kind;
  // the kernel sends a block's index only for a shared block; a device's own has none
  const ingress = a.u32(TCA.INGRESS_BLOCK);
  if (ingress !== undefined) q.ingressBlock = ingress;
  const egress = a.u32(TCA.EGRESS_BLOCK);
  if (egress !== undefined) q.egressBlock = egress;
  return q;
}

const isErrno = (e: unknown, ...errnos: number[]): boolean =>
  e instanceof NetlinkError && errnos.includes(e.errno);

/** rtnetlink tc operations on one NETLINK_ROUTE socket. */
export class RtnlTc {
  constructor(private readonly sock: NetlinkSocket) {}

  /** A block's index is in op; a device's ifindex goes into the error's context. */
  private opts(op: string, ifindex: number | undefined, dump = false) {
    const context = ifindex === undefined ? {} : { ifindex };
    return { op, familyHeaderLen: TCMSG_LEN, attrName: tcaName, context, dump };
  }

  /**
   * Adds a clsact qdisc, its hooks bound to the shared blocks given; false when the device has one
   * already (whatever its blocks: see getClsact).
   */
  async addClsact(ifindex: number, blocks?: ClsactBlocks): Promise<boolean> {
    try {
      await this.sock.request(RTM_NEWQDISC, encodeClsact(ifindex, blocks), {
        ...this.opts('RTM_NEWQDISC clsact', ifindex),
        flags: NLM_F_CREATE | NLM_F_EXCL,
      });
      return true;
    } catch (e) {
      if (isErrno(e, Errno.EEXIST)) return false;
      throw e;
    }
  }

  /**
   * The qdisc at the device's clsact place (clsact, or another tool's ingress qdisc), with the shared
   * blocks it binds; undefined when there is none (or no such device).
   */
  async getClsact(ifindex: number): Promise<TcQdisc | undefined> {
    try {
      // the kernel answers a qdisc get as a notification: to the asker only when it asks for an echo
      const r = await this.sock.request(RTM_GETQDISC, encodeGetClsact(ifindex), {
        ...this.opts('RTM_GETQDISC clsact', ifindex),
        flags: NLM_F_ECHO,
      });
      // a device whose qdisc was removed answers with none: its built-in placeholder is not reported
      return r.filter((m) => m.type === RTM_NEWQDISC).map(decodeQdisc)[0];
    } catch (e) {
      if (isErrno(e, Errno.ENOENT, Errno.ENODEV)) return undefined;
      throw e;
    }
  }

  /** Every qdisc of the namespace's devices (`tc qdisc show`), with the shared blocks each binds. */
  async listQdiscs(): Promise<TcQdisc[]> {
    const r = await this.sock.request(
      RTM_GETQDISC,
      encodeTcmsg(0, 0, 0, 0, []),
      this.opts('RTM_GETQDISC dump', undefined, true),
    );
    return r.filter((m) => m.type === RTM_NEWQDISC).map(decodeQdisc);
  }

  /** Removes the device's clsact qdisc with its filters; false when it had none (or is gone). */
  async delClsact(ifindex: number): Promise<boolean> {
    try {
      await this.sock.request(
        RTM_DELQDISC,
        encodeDelClsact(ifindex),
        this.opts('RTM_DELQDISC clsact', ifindex),
      );
      return true;
    } catch (e) {
      if (isErrno(e, Errno.ENOENT, Errno.ENODEV, Errno.EINVAL)) return false;
      throw e;
    }
  }

  /** Installs the filter, or replaces the program of the one at that preference and handle in place. */
  async replaceBpfFilter(f: FilterRef, progFd: number, name: string): Promise<void> {
    await this.sock.request(RTM_NEWTFILTER, encodeBpfFilter(f, progFd, name), {
      ...this.opts(`RTM_NEWTFILTER bpf ${where(f)} pref ${f.pref}`, ifindexOf(f)),
      flags: NLM_F_CREATE,
    });
  }

  /** Installs the filter unless one is there at that preference and handle (then false, unchanged). */
  async addBpfFilter(f: FilterRef, progFd: number, name: string): Promise<boolean> {
    try {
      await this.sock.request(RTM_NEWTFILTER, encodeBpfFilter(f, progFd, name), {
        ...this.opts(`RTM_NEWTFILTER bpf ${where(f)} pref ${f.pref} (add)`, ifindexOf(f)),
        flags: NLM_F_CREATE | NLM_F_EXCL,
      });
      return true;
    } catch (e) {
      if (isErrno(e, Errno.EEXIST)) return false;
      throw e;
    }
  }

  /**
   * The filters at one preference (0: every preference) of a hook or block; none when the device has
   * no clsact qdisc, is gone, or the block does not exist.
   */
  async listFilters(t: FilterTarget, pref: number): Promise<TcFilter[]> {
    const r = await this.sock.request(
      RTM_GETTFILTER,
      encodeListFilters(t, pref),
      this.opts(`RTM_GETTFILTER dump ${where(t)} pref ${pref}`, ifindexOf(t), true),
    );
    return r.filter((m) => m.type === RTM_NEWTFILTER).map(decodeFilter);
  }

  /** The bpf filter at f, or undefined when there is none (a device that is gone dumps nothing). */
  async getBpfFilter(f: FilterRef): Promise<TcFilter | undefined> {
    const all = await this.listFilters(f, f.pref);
    return all.find((x) => x.handle === f.handle && x.kind === 'bpf');
  }

  /** Removes the bpf filter at f; false when it was not there (nor its device). */
  async delBpfFilter(f: FilterRef): Promise<boolean> {
    if (!(await this.getBpfFilter(f))) return false;
    try {
      await this.sock.request(
        RTM_DELTFILTER,
        encodeDelBpfFilter(f),
        this.opts(`RTM_DELTFILTER bpf ${where(f)} pref ${f.pref}`, ifindexOf(f)),
      );
      return true;
    } catch (e) {
      // gone between the look and the delete
      if (isErrno(e, Errno.ENOENT, Errno.ENODEV)) return false;
      throw e;
    }
  }
}

const where = (t: FilterTarget): string => ('block' in t ? `block ${t.block}` : t.hook);
const ifindexOf = (t: FilterTarget): number | undefined => ('block' in t ? undefined : t.ifindex);
