// Our tc programs, through lib/netlink by ifindex with the loaded programs' fds (no tc process: each
// of those lists every link of the node before its one request).
//
// The underlay is the node's: it gets a clsact qdisc if it has none, and our one direct-action
// cls_bpf filter on its ingress hook at a preference of our own, so other users of clsact are left
// alone. Session devices are ours: their clsact qdiscs bind shared blocks that hold our filter once,
// so a new session costs two qdiscs and no filter. With a block of its own per hook, every new
// session cost more than the last (the kernel walks a list of all such blocks each time it makes one)
// and two filters besides.
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import {
  CLSACT_HANDLE,
  TC_H_CLSACT,
  type ClsactBlocks,
  type ClsactHook,
  type FilterRef,
  type TcQdisc,
} from '../../../lib/netlink/rtnl-tc.js';
import type { ProgName } from './native.js';

/** The preference (priority) and handle of every kube-l2tp filter. */
export const FILTER_PREF = 49225;
const HANDLE = 1;

export type Hook = ClsactHook;

/**
 * The shared blocks of session devices (indexes of a network namespace's own): l2tpethN's egress
 * runs the fast path's program, its veth peer's ingress the other one, and the hooks that run
 * nothing share an empty block (a clsact qdisc has both; an own block there would cost as much).
 */
export const BLOCK = { txEgress: 492251, txIngress: 492252, idle: 492250 } as const;

/** The two ends of a session's veth pair: l2tpethN, and its peer in the node's namespace. */
export type SessionEnd = 'dev' | 'peer';

/** Where an end's qdisc binds, and which of its hooks runs which program (on that hook's block). */
export interface EndLayout {
  blocks: ClsactBlocks;
  hook: Hook;
  prog: ProgName;
}

export const SESSION_ENDS: Record<SessionEnd, EndLayout> = {
  dev: { blocks: { ingress: BLOCK.idle, egress: BLOCK.txEgress }, hook: 'egress', prog: 'l2tp_tx_egress' },
  peer: {
    blocks: { ingress: BLOCK.txIngress, egress: BLOCK.idle },
    hook: 'ingress',
    prog: 'l2tp_tx_ingress',
  },
};

/** A loaded program: its fd in this process and the name `tc filter show` prints. */
export interface Prog {
  fd: number;
  name: string;
}

export interface Filter {
  ifindex: number;
  hook: Hook;
  prog: Prog;
}

const ref = (ifindex: number, hook: Hook): FilterRef => ({
  ifindex,
  hook,
  pref: FILTER_PREF,
  handle: HANDLE,
});
const blockRef = (block: number): FilterRef => ({ block, pref: FILTER_PREF, handle: HANDLE });

/** The id of the program our filter runs on the device's hook, or undefined when there is none. */
export async function filterProgId(ifindex: number, hook: Hook): Promise<number | undefined> {
  return withRtnl(async (r) => (await r.tc.getBpfFilter(ref(ifindex, hook)))?.bpf?.id);
}

/**
 * Installs our filters (or atomically replaces their programs), each device's clsact qdisc first.
 * A qdisc there already (ours from an earlier run, or another tool's) serves as it is.
 */
export async function attachFilters(filters: readonly Filter[]): Promise<void> {
  await withRtnl(async (r) => {
    for (const ifindex of new Set(filters.map((f) => f.ifindex))) await r.tc.addClsact(ifindex);
    for (const f of filters) await r.tc.replaceBpfFilter(ref(f.ifindex, f.hook), f.prog.fd, f.prog.name);
  });
}

/** Removes our filter only; the qdisc stays (others may use it). Absent, or no device, is fine. */
export async function detachFilter(ifindex: number, hook: Hook): Promise<void> {
  await withRtnl((r) => r.tc.delBpfFilter(ref(ifindex, hook)));
}

/**
 * Who else uses our shared blocks in this namespace: devices not of ours that bind one (their
 * traffic would run our programs) and filters at another preference on one (ours would run theirs).
 * Block indexes are an administrator's choice; another tool that picked ours gets a clear refusal
 * instead of sessions that break its devices. Empty when the blocks are ours alone (or unused).
 */
export async function foreignBlockUsers(ours: (ifindex: number) => boolean): Promise<string[]> {
  const blocks: number[] = Object.values(BLOCK);
  return withRtnl(async (r) => {
    const found: string[] = [];
    for (const q of await r.tc.listQdiscs()) {
      const bound = [q.ingressBlock, q.egressBlock].filter((b) => b !== undefined && blocks.includes(b));
      if (bound.length && !ours(q.ifindex)) {
        const name = (await r.links.get(q.ifindex).catch(() => undefined))?.name ?? `ifindex ${q.ifindex}`;
        found.push(`device ${name} binds block ${bound.join(' and ')}`);
      }
    }
    for (const block of blocks) {
      for (const f of await r.tc.listFilters({ block }, 0)) {
        if (f.pref !== FILTER_PREF && f.handle !== 0)
          found.push(`block ${block} has a ${f.kind ?? ''} filter at preference ${f.pref}`);
      }
    }
    return [...new Set(found)];
  });
}

/** The qdiscs at the clsact place of this namespace's devices, by ifindex, in one dump. */
export async function clsactQdiscs(): Promise<Map<number, TcQdisc>> {
  const all = await withRtnl((r) => r.tc.listQdiscs());
  return new Map(all.filter((q) => q.parent === TC_H_CLSACT).map((q) => [q.ifindex, q]));
}

export interface SessionDevice {
  ifindex: number;
  end: SessionEnd;
}

/** Our filter on a shared block. */
export interface BlockFilter {
  block: number;
  prog: Prog;
  /**
   * The program's id, to replace a filter that runs another (once per block and process: a filter of
   * an earlier build). Without it a filter is only added when missing, and only by a call that made
   * a qdisc: a block is made anew when a device binds it after its last device left.
   */
  progId?: number;
}

/**
 * Gives each session device a clsact qdisc bound to its end's shared blocks, then makes sure those
 * blocks hold our filters (a filter needs its block to exist, bound by a device). fresh: devices made
 * just now (nothing to look at first). Otherwise a qdisc that binds other blocks (its own, from a build
 * before shared blocks) is replaced: that device runs no program for the moment in between, and a
 * frame l2tpethN sends then takes the peer's way. Returns how many qdiscs were replaced. known: the
 * qdiscs clsactQdiscs found, instead of asking the kernel for each device that has one there (a
 * restarted agent adopts thousands); what this call changes is written back to it.
 */
export async function bindSessionDevices(
  devs: readonly SessionDevice[],
  fresh: boolean,
  filters: readonly BlockFilter[],
  known?: Map<number, TcQdisc>,
): Promise<number> {
  return withRtnl(async (r) => {
    let replaced = 0;
    let made = false;
    for (const { ifindex, end } of devs) {
      const want = SESSION_ENDS[end].blocks;
      const bound: TcQdisc = {
        ifindex,
        handle: CLSACT_HANDLE,
        parent: TC_H_CLSACT,
        kind: 'clsact',
        ingressBlock: want.ingress,
        egressBlock: want.egress,
      };
      if (fresh && (await r.tc.addClsact(ifindex, want))) {
        known?.set(ifindex, bound);
        made = true;
        continue;
      }
      // a device missing from known may have got its qdisc after the dump
      const q = known?.get(ifindex) ?? (await r.tc.getClsact(ifindex));
      if (q?.kind === 'clsact' && q.ingressBlock === want.ingress && q.egressBlock === want.egress) continue;
      if (q) {
        await r.tc.delClsact(ifindex);
        replaced++;
      }
      await r.tc.addClsact(ifindex, want);
      known?.set(ifindex, bound);
      made = true;
    }
    for (const { block, prog, progId } of filters) {
      if (progId === undefined) {
        // only a qdisc made now can have made the block anew (without filters): one that binds it
        // already has kept it, with the filter this process found there
        if (made) await r.tc.addBpfFilter(blockRef(block), prog.fd, prog.name);
      } else if ((await r.tc.getBpfFilter(blockRef(block)))?.bpf?.id !== progId) {
        await r.tc.replaceBpfFilter(blockRef(block), prog.fd, prog.name);
      }
    }
    return replaced;
  });
}
