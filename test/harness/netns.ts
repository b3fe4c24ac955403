// Network namespaces, veth and bridges for tests: real kernel objects, always cleaned up.
// Every test picks its own name prefix so suites never collide.
import { run, runCapture, runOk } from '../../lib/exec.js';
import { DEVICE_SYSCTLS } from '../../lib/netdev-hardening.js';

export const ip = (...args: string[]): Promise<string> => run('ip', args);
export const ipIn = (ns: string, ...args: string[]): Promise<string> => run('ip', ['-n', ns, ...args]);
/** Run any program inside a named netns. */
export const inNs = (ns: string, file: string, ...args: string[]): Promise<string> =>
  run('ip', ['netns', 'exec', ns, file, ...args]);
export const inNsCapture = (ns: string, file: string, ...args: string[]) =>
  runCapture('ip', ['netns', 'exec', ns, file, ...args]);

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (network namespaces, TAP devices)');
}

/** Tracks what a test created and removes it in reverse order. */
export class Lab {
  private readonly undo: (() => Promise<unknown>)[] = [];

  onCleanup(fn: () => Promise<unknown>): void {
    this.undo.push(fn);
  }

  async netns(name: string): Promise<string> {
    await runOk('ip', ['netns', 'del', name]); // a crashed earlier run may have left it
    await ip('netns', 'add', name);
    this.onCleanup(() => runOk('ip', ['netns', 'del', name]));
    await ipIn(name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** A veth pair between two namespaces, each end addressed (CIDR) and up. */
  async veth(a: { ns: string; name: string; addr?: string }, b: { ns: string; name: string; addr?: string }) {
    await ip('link', 'add', a.name, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns);
    for (const end of [a, b]) {
      if (end.addr) await ipIn(end.ns, 'addr', 'add', end.addr, 'dev', end.name);
      await ipIn(end.ns, 'link', 'set', end.name, 'up');
    }
  }

  async cleanup(): Promise<void> {
    while (this.undo.length > 0) {
      const fn = this.undo.pop()!;
      try {
        await fn();
      } catch {
        // best effort: keep undoing the rest
      }
    }
  }
}

/** A link as `ip -j link` shows it. */
export interface LinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  flags: string[];
  master?: string;
  ifalias?: string;
}

/** `dev` in namespace `ns` as `ip -j link` shows it (undefined: no such device). */
export async function linkIn(ns: string, dev: string): Promise<LinkJson | undefined> {
  const out = await ipIn(ns, '-j', 'link', 'show', 'dev', dev).catch(() => undefined);
  return out === undefined ? undefined : (JSON.parse(out) as LinkJson[])[0];
}

/** Whether `dev` in namespace `ns` is administratively up (undefined: no such device). */
export async function linkUpIn(ns: string, dev: string): Promise<boolean | undefined> {
  return (await linkIn(ns, dev))?.flags.includes('UP');
}

/** ping from a namespace; returns the number of replies received. */
export async function ping(ns: string, target: string, count = 3, extra: string[] = []): Promise<number> {
  const r = await inNsCapture(ns, 'ping', '-c', String(count), '-W', '2', ...extra, target);
  const m = /(\d+) (?:packets )?received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

export interface PingSummary {
  sent: number;
  received: number;
  rttAvgMs?: number;
  output: string;
}

/** The summary lines of iputils' or busybox's ping. */
export function pingSummary(stdout: string, stderr: string, count: number): PingSummary {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(stdout);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(stdout);
  return {
    sent: m ? Number(m[1]) : count,
    received: m ? Number(m[2]) : 0,
    ...(rtt ? { rttAvgMs: Number(rtt[1]) } : {}),
    output: stdout + stderr,
  };
}

/** One direction's counters of a device (ip -s link: stats64). */
export interface LinkCounters {
  packets: number;
  bytes: number;
  dropped: number;
}

/** The counters of dev in ns, or of every device in ns when dev is not given. */
export async function linkStats(
  ns: string,
  dev?: string,
): Promise<{ name: string; rx: LinkCounters; tx: LinkCounters }[]> {
  const r = await inNsCapture(ns, 'ip', '-j', '-s', 'link', 'show', ...(dev ? [dev] : []));
  if (r.code !== 0) throw new Error(`ip -s link show ${dev ?? ''} in ${ns}: ${r.stderr.trim()}`);
  type L = { ifname: string; stats64?: { rx?: Partial<LinkCounters>; tx?: Partial<LinkCounters> } };
  const c = (x: Partial<LinkCounters> | undefined): LinkCounters => ({
    packets: x?.packets ?? 0,
    bytes: x?.bytes ?? 0,
    dropped: x?.dropped ?? 0,
  });
  return (JSON.parse(r.stdout || '[]') as L[]).map((l) => ({
    name: l.ifname,
    rx: c(l.stats64?.rx),
    tx: c(l.stats64?.tx),
  }));
}

/** A device's hardening sysctls (lib/netdev-hardening.ts) as read in namespace ns, keyed like HARDENED_SYSCTLS. */
export async function deviceSysctlsIn(ns: string, dev: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [family, key] of DEVICE_SYSCTLS)
    out[`${family}.${key}`] = (await inNs(ns, 'cat', `/proc/sys/net/${family}/conf/${dev}/${key}`)).trim();
  return out;
}
