// Link work through iproute2. Every step is a batch ("ip -batch -") so one ADD costs a couple of
// execs, not one per change. Node-side reads go through sysfs (free); pod-side reads enter the netns.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { runCapture } from '../../lib/exec.js';

export class IpBatchError extends Error {
  constructor(
    /** 0-based index of the failing command, or -1 when unknown. */
    readonly index: number,
    readonly stderr: string,
  ) {
    super(stderr.trim() || 'ip batch failed');
    this.name = 'IpBatchError';
  }
}

/**
 * `ip ARGS` inside a netns: `ip -n NAME` for named namespaces (/run/netns/NAME, what runtimes
 * make), one exec less than nsenter, which handles any other path.
 */
function ipIn(netns: string | undefined, args: string[]): [string, string[]] {
  if (netns === undefined) return ['ip', args];
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  if (m) return ['ip', ['-n', m[1]!, ...args]];
  return ['nsenter', [`--net=${netns}`, 'ip', ...args]];
}

/**
 * Run iproute2 commands (one per entry, without the leading "ip"), stopping at the first failure.
 * With `netns` (a path) they run inside that network namespace.
 */
export async function ipBatch(cmds: readonly string[], netns?: string): Promise<void> {
  if (cmds.length === 0) return;
  const input = cmds.join('\n') + '\n';
  const r = await runCapture(...ipIn(netns, ['-batch', '-']), { input });
  if (r.code !== 0) {
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    throw new IpBatchError(m ? Number(m[1]) - 1 : -1, r.stderr.replace(/Command failed -:\d+\s*/g, ''));
  }
}

export interface PodLink {
  ifname: string;
  mtu: number;
  address: string;
  operstate: string;
  flags: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** `ip -j addr show dev NAME` inside a netns; undefined when the link does not exist. */
export async function podLinkInfo(netns: string, ifname: string): Promise<PodLink | undefined> {
  const r = await runCapture(...ipIn(netns, ['-j', 'addr', 'show', 'dev', ifname]));
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
    throw new Error(`ip addr show ${ifname} in ${netns}: ${r.stderr.trim()}`);
  }
  const arr = JSON.parse(r.stdout) as PodLink[];
  return arr[0];
}

const sys = (dev: string, ...rest: string[]): string => ['/sys/class/net', dev, ...rest].join('/');

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Node-side (the agent's own netns) link facts, from sysfs. */
export const node = {
  hasLink: (dev: string): Promise<boolean> => exists(sys(dev)),
  isBridge: (dev: string): Promise<boolean> => exists(sys(dev, 'bridge')),
  async master(dev: string): Promise<string | undefined> {
    try {
      return basename(await readlink(sys(dev, 'master')));
    } catch {
      return undefined;
    }
  },
  async ports(bridge: string): Promise<string[]> {
    try {
      return await readdir(sys(bridge, 'brif'));
    } catch {
      return [];
    }
  },
  async isUp(dev: string): Promise<boolean> {
    try {
      return (Number.parseInt((await readFile(sys(dev, 'flags'), 'utf8')).trim(), 16) & 1) === 1;
    } catch {
      return false;
    }
  },
  async mac(dev: string): Promise<string | undefined> {
    try {
      return (await readFile(sys(dev, 'address'), 'utf8')).trim();
    } catch {
      return undefined;
    }
  },
  async mtu(dev: string): Promise<number | undefined> {
    try {
      return Number((await readFile(sys(dev, 'mtu'), 'utf8')).trim());
    } catch {
      return undefined;
    }
  },
};

const short = (s: string, n = 10): string => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Names of what kube-l2tp makes on the node; all <= 15 bytes and deterministic (DEL and GC recompute them). */
export const names = {
  bridge: (pwNamespace: string, pwName: string): string => `kl2b${short(`${pwNamespace}/${pwName}`)}`,
  hostVeth: (containerID: string, ifname: string): string => `kl2h${short(`${containerID}/${ifname}`)}`,
  tmpPeer: (containerID: string, ifname: string): string => `kl2p${short(`${containerID}/${ifname}`)}`,
};

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
