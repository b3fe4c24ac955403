// Link work through rtnetlink, in process (lib/netlink): no `ip` execs. The agent keeps one
// NETLINK_ROUTE socket in its own (the node's) namespace; pod-side work gets a socket created inside
// the pod's namespace for the length of one call. Node-side reads go through sysfs (free).
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
} from 'node:fs';
import { basename } from 'node:path';
import { NetlinkError } from '../../lib/netlink/errors.js';
import type { AddrInfo } from '../../lib/netlink/rtnl-addr.js';
import {
  openRtnl,
  rtnlOn,
  withRtnl,
  type Netns,
  type Rtnl,
  type RtnlHandle,
} from '../../lib/netlink/rtnl-handle.js';
import { macText, type LinkInfo } from '../../lib/netlink/rtnl.js';
import { NETLINK_ROUTE, NetlinkSocket } from '../../lib/netlink/socket.js';

export type { Netns, Rtnl } from '../../lib/netlink/rtnl-handle.js';

let nodeSock: Rtnl | undefined;

/** rtnetlink in this process's own (the node's) network namespace; one socket for the process. */
export function nodeRtnl(): Rtnl {
  nodeSock ??= rtnlOn(NetlinkSocket.open(NETLINK_ROUTE));
  return nodeSock;
}

/**
 * Delete a link in this process's own network namespace, on a socket of its own: the request returns
 * only after the kernel's RCU grace periods (10-30 ms for a veth), and requests of other ADDs queued
 * on the shared socket must not wait behind it.
 */
export function nodeDeleteLink(link: string | number): Promise<void> {
  return withRtnl((r) => r.links.del(link));
}

/** rtnetlink inside another network namespace; close() when done. */
export type NetnsRtnl = RtnlHandle;

/**
 * rtnetlink inside a pod's network namespace, reached as an open descriptor (the shim opened
 * CNI_NETNS where the runtime runs; the path may not exist in the agent's mount namespace), or a path.
 */
export const openNetnsRtnl = (netns: Netns): NetnsRtnl => openRtnl(netns);

/** Run fn with rtnetlink inside the network namespace `netns`; the socket is closed after. */
export const inNetns = <T>(netns: Netns, fn: (r: Rtnl) => Promise<T>): Promise<T> => withRtnl(fn, netns);

/** Run fn with an open fd of the network namespace `netns` (for IFLA_NET_NS_FD); a given fd stays open. */
export async function withNetnsFd<T>(netns: Netns, fn: (fd: number) => Promise<T>): Promise<T> {
  if (typeof netns === 'number') return fn(netns);
  const fd = openSync(netns, 'r'); // nsfs: a sync open costs microseconds, less than a pool round trip
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** The kernel's errno name of a netlink failure ("EEXIST", "ENODEV"...), else undefined. */
export const errnoOf = (e: unknown): string | undefined => (e instanceof NetlinkError ? e.code : undefined);

export interface PodLink extends LinkInfo {
  addrs: AddrInfo[];
}

let nsfsDev: number | undefined;
/** Whether an open descriptor is a namespace (nsfs): all namespaces share nsfs's device number. */
export function isNamespaceFd(fd: number): boolean {
  nsfsDev ??= statSync('/proc/self/ns/net').dev;
  try {
    return fstatSync(fd).dev === nsfsDev;
  } catch {
    return false;
  }
}

/** A link and its addresses inside a netns; undefined when the link does not exist. */
export async function podLinkInfo(netns: Netns, ifname: string): Promise<PodLink | undefined> {
  return inNetns(netns, async (r) => {
    const link = await r.links.byName(ifname);
    if (!link) return undefined;
    return { ...link, addrs: await r.addrs.list(link.index) };
  });
}

const sys = (dev: string, ...rest: string[]): string => ['/sys/class/net', dev, ...rest].join('/');

/** Whether a path exists (sync: a stat of a local path, cheaper than a thread-pool round trip). */
export const exists = (path: string): boolean => existsSync(path);

const readSys = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/**
 * Node-side (the agent's own netns) link facts, from sysfs. Synchronous on purpose: sysfs is
 * generated in memory, a read costs microseconds, while an async read costs a thread-pool round
 * trip (and, with the child_process fallback, waits behind the fork of the IPAM delegate) on the
 * ADD critical path.
 */
export const node = {
  /** Every link of this network namespace, by name. */
  links(): string[] {
    try {
      return readdirSync('/sys/class/net');
    } catch {
      return [];
    }
  },
  hasLink: (dev: string): boolean => existsSync(sys(dev)),
  isBridge: (dev: string): boolean => existsSync(sys(dev, 'bridge')),
  master(dev: string): string | undefined {
    try {
      return basename(readlinkSync(sys(dev, 'master')));
    } catch {
      return undefined;
    }
  },
  ports(bridge: string): string[] {
    try {
      return readdirSync(sys(bridge, 'brif'));
    } catch {
      return [];
    }
  },
  isUp(dev: string): boolean {
    const f = readSys(sys(dev, 'flags'));
    return f !== undefined && (Number.parseInt(f, 16) & 1) === 1;
  },
  mac: (dev: string): string | undefined => readSys(sys(dev, 'address')),
  alias: (dev: string): string | undefined => readSys(sys(dev, 'ifalias')) || undefined,
  ifindex(dev: string): number | undefined {
    const i = readSys(sys(dev, 'ifindex'));
    return i === undefined ? undefined : Number(i);
  },
  mtu(dev: string): number | undefined {
    const m = readSys(sys(dev, 'mtu'));
    return m === undefined ? undefined : Number(m);
  },
};

const short = (s: string, n = 10): string => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Names of what kube-l2tp makes on the node; all <= 15 bytes and deterministic (DEL and GC recompute them). */
const BRIDGE_PREFIX = 'kl2b';

export const names = {
  /** What every attachment bridge's name starts with, whichever release named it. */
  bridgePrefix: BRIDGE_PREFIX,
  /**
   * A pseudowire's attachment bridge, by its session ID: session IDs are unique on a node (the
   * kernel's are global per network namespace), so no two pseudowires can ever share the name.
   */
  bridge: (sessionId: number): string => `${BRIDGE_PREFIX}${sessionId}`,
  /** What releases before this one named it (a hash of the pseudowire): still adopted, never made. */
  legacyBridge: (pwNamespace: string, pwName: string): string =>
    `${BRIDGE_PREFIX}${short(`${pwNamespace}/${pwName}`)}`,
  hostVeth: (containerID: string, ifname: string): string => `kl2h${short(`${containerID}/${ifname}`)}`,
};

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return macText(b);
}
