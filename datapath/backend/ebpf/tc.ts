// Our tc filters: a clsact qdisc and one direct-action cls_bpf filter per hook, at a preference of
// our own so other users of clsact are left alone, through lib/netlink by ifindex with the loaded
// program's fd. No tc process: each of those lists every link of the node before its one request,
// which made a session's attach take longer the more sessions the node had.
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import type { ClsactHook, FilterRef } from '../../../lib/netlink/rtnl-tc.js';

/** The preference (priority) and handle of every kube-l2tp filter. */
export const FILTER_PREF = 49225;
const HANDLE = 1;

export type Hook = ClsactHook;

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
