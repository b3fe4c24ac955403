// The session device of the eBPF backend: a veth pair. l2tpethN is the end users see (bridge port, or
// moved into a pod in exclusive mode); its peer l2tpx<session id in hex> stays in the node's network
// namespace and carries the programs that work wherever l2tpethN is. Both ends carry the
// ownership marker of lib/device-marker.ts, as the TAPs do.
import { parseMarker } from '../../../lib/device-marker.js';
import { run, runCapture } from '../../../lib/exec.js';
import { configureTap } from '../userspace/tap.js';

export const peerName = (sessionId: number): string => `l2tpx${sessionId.toString(16)}`;

export interface VethLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  up: boolean;
  owner?: { tunnelId: number; sessionId: number };
  /** The other end's name, when it is in this network namespace. */
  peer?: string;
  /** The other end lives in another network namespace (a pod). */
  peerElsewhere: boolean;
}

interface IpLinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  flags?: string[];
  ifalias?: string;
  link?: string;
  link_netnsid?: number;
}

/** Every veth in this network namespace, in one iproute2 call. */
export async function listVeths(): Promise<VethLink[]> {
  const out = await run('ip', ['-j', '-d', 'link', 'show', 'type', 'veth']);
  return (JSON.parse(out || '[]') as IpLinkJson[]).map((l) => {
    const v: VethLink = {
      ifname: l.ifname,
      ifindex: l.ifindex,
      mtu: l.mtu,
      up: (l.flags ?? []).includes('UP'),
      peerElsewhere: l.link_netnsid !== undefined,
    };
    const owner = parseMarker(l.ifalias);
    if (owner) v.owner = owner;
    if (l.link !== undefined && l.link_netnsid === undefined) v.peer = l.link;
    return v;
  });
}

/** Creates the pair, both ends marked, sized and up. */
export async function createPair(
  ifname: string,
  peer: string,
  tunnelId: number,
  sessionId: number,
  mtu: number,
): Promise<void> {
  await run('ip', ['link', 'add', ifname, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', peer]);
  try {
    await configureEnd(peer, tunnelId, sessionId, mtu);
    await configureEnd(ifname, tunnelId, sessionId, mtu);
  } catch (e) {
    await runCapture('ip', ['link', 'del', 'dev', peer]);
    throw e;
  }
}

/** Marker, MTU and up on one end: sysfs writes, or iproute2 where /sys is read-only. */
export async function configureEnd(ifname: string, tunnelId: number, sessionId: number, mtu: number) {
  // the same marker, MTU and up as a session TAP: one place sets a kube-l2tp session device's identity
  await configureTap(ifname, tunnelId, sessionId, mtu);
}

/** Deleting one end removes both, wherever the other end is. */
export async function deletePair(peer: string): Promise<void> {
  await runCapture('ip', ['link', 'del', 'dev', peer]);
}

interface RouteJson {
  dev?: string;
  gateway?: string;
}

/** The device the kernel would send the tunnel's packets out of, and the next hop on it. */
export async function underlayRoute(
  local: string,
  remote: string,
): Promise<{ dev: string; nexthop: string }> {
  const r = await runCapture('ip', ['-j', 'route', 'get', remote, 'from', local]);
  if (r.code !== 0) {
    throw new Error(`no route from ${local} to ${remote}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  const route = (JSON.parse(r.stdout || '[]') as RouteJson[])[0];
  if (!route?.dev) throw new Error(`no underlay device for ${local} -> ${remote}`);
  if (route.dev === 'lo') throw new Error(`${remote} is local: a tunnel needs a remote host`);
  return { dev: route.dev, nexthop: route.gateway ?? remote };
}

interface NeighJson {
  lladdr?: string;
  state?: string[];
}

/** The next hop's MAC when the neighbour table knows it. */
export async function neighbourMac(dev: string, addr: string): Promise<string | undefined> {
  const r = await runCapture('ip', ['-j', 'neigh', 'show', 'to', addr, 'dev', dev]);
  if (r.code !== 0) return undefined;
  const n = (JSON.parse(r.stdout || '[]') as NeighJson[])[0];
  return n?.lladdr && !(n.state ?? []).includes('FAILED') ? n.lladdr : undefined;
}
