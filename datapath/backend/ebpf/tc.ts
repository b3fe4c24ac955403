// tc filters through iproute2's tc (in the image already): a clsact qdisc and one direct-action
// cls_bpf filter per hook, at a preference of our own so other users of clsact are left alone.
// The one exec of a network tool left in the datapath: lib/netlink speaks links, addresses, routes
// and neighbours but not tc (RTM_NEWQDISC/RTM_NEWTFILTER with a pinned program's fd), and the
// attach runs once per device, not per packet or per session lookup.
import { run, runCapture } from '../../../lib/exec.js';

/** The preference (priority) and handle of every kube-l2tp filter. */
export const FILTER_PREF = '49225';
const HANDLE = '1';

export type Hook = 'ingress' | 'egress';

interface TcFilterJson {
  options?: { prog?: { id?: number } };
}

/** The id of the program our filter runs on dev's hook, or undefined when there is none. */
export async function filterProgId(dev: string, hook: Hook): Promise<number | undefined> {
  const r = await runCapture('tc', ['-j', 'filter', 'show', 'dev', dev, hook, 'pref', FILTER_PREF]);
  if (r.code !== 0) return undefined;
  try {
    const entries = JSON.parse(r.stdout || '[]') as TcFilterJson[];
    return entries.find((e) => e.options?.prog?.id !== undefined)?.options?.prog?.id;
  } catch {
    return undefined;
  }
}

/** tc's arguments that install (or atomically replace) our filter on dev's hook. */
const filterArgs = (dev: string, hook: Hook, progPin: string): string[] => [
  ...['filter', 'replace', 'dev', dev, hook, 'pref', FILTER_PREF, 'handle', HANDLE],
  ...['bpf', 'direct-action', 'object-pinned', progPin],
];

/** Installs (or atomically replaces) our filter with the program pinned at progPin. */
export async function attachFilter(dev: string, hook: Hook, progPin: string): Promise<void> {
  // clsact may exist already (ours from an earlier run, or another tool's): both are fine
  await runCapture('tc', ['qdisc', 'add', 'dev', dev, 'clsact']);
  await run('tc', filterArgs(dev, hook, progPin));
}

/**
 * Our filters on devices just created (no qdisc, no filter yet): every clsact qdisc and filter in
 * one tc run, as a session's veth pair needs two and a tc process costs milliseconds. Any failure
 * fails the whole run. tc's batch input splits on whitespace: the pins' paths have none.
 */
export async function attachNewFilters(
  filters: readonly { dev: string; hook: Hook; progPin: string }[],
): Promise<void> {
  const devs = [...new Set(filters.map((f) => f.dev))];
  const lines = [
    ...devs.map((dev) => `qdisc add dev ${dev} clsact`),
    ...filters.map((f) => filterArgs(f.dev, f.hook, f.progPin).join(' ')),
  ];
  await run('tc', ['-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Removes our filter only; the qdisc stays (others may use it). Absent is fine. */
export async function detachFilter(dev: string, hook: Hook): Promise<void> {
  await runCapture('tc', ['filter', 'del', 'dev', dev, hook, 'pref', FILTER_PREF, 'handle', HANDLE, 'bpf']);
}
