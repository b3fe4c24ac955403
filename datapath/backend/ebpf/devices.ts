// The session device of the eBPF backend: a veth pair. l2tpethN is the end users see (bridge port, or
// moved into a pod in exclusive mode); its peer l2tpx<session id in hex> stays in the node's network
// namespace and carries the programs that work wherever l2tpethN is. Both ends carry the
// ownership marker of lib/device-marker.ts, as the TAPs do.
import { routeToPeer } from '../../../lib/netlink/route-to-peer.js';
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import { NUD } from '../../../lib/netlink/rtnl-neigh.js';
import type { LinkInfo } from '../../../lib/netlink/rtnl.js';
import { configureTap, deleteLink, setLinkUp, toTapLink, type TapLink } from '../userspace/tap.js';

export const peerName = (sessionId: number): string => `l2tpx${sessionId.toString(16)}`;

export interface VethLink extends TapLink {
  /** The other end's name, when it is in this network namespace. */
  peer?: string;
  /** The other end lives in another network namespace (a pod). */
  peerElsewhere: boolean;
}

/** Every veth in this network namespace, in one dump; sysctls: with hardening's values. */
export async function listVeths(opts: { sysctls?: boolean } = {}): Promise<VethLink[]> {
  const links = await withRtnl((r) => r.links.list(opts));
  const names = new Map(links.map((l) => [l.index, l.name]));
  return links
    .filter((l) => l.kind === 'veth')
    .map((l) => {
      const v: VethLink = { ...toTapLink(l), peerElsewhere: l.linkNetnsId !== undefined };
      const peer = l.link !== undefined && l.linkNetnsId === undefined ? names.get(l.link) : undefined;
      if (peer !== undefined) v.peer = peer;
      return v;
    });
}

/**
 * Creates the pair with `queues` queues per end, hardens, marks and sizes both ends, runs prepare
 * while they are still down, then brings both up; prepare's result is returned. Nothing is left
 * behind when a step fails. The marker goes on before prepare binds anything to shared tc blocks: a
 * device there without it reads as another tool's. (A veth made without a queue count gets one per
 * possible CPU and shrinks to one in use, which waits for an RCU grace period.)
 */
export async function createPair<T>(
  ifname: string,
  peer: string,
  ids: { tunnelId: number; sessionId: number },
  opts: { mtu: number; queues: number },
  prepare: () => Promise<T>,
): Promise<T> {
  const { tunnelId, sessionId } = ids;
  const { mtu, queues } = opts;
  await withRtnl((r) => r.links.createVeth({ name: ifname, mtu, queues }, { name: peer, mtu, queues }));
  try {
    await configureEnd(peer, tunnelId, sessionId, mtu, { up: false, fresh: true });
    await configureEnd(ifname, tunnelId, sessionId, mtu, { up: false, fresh: true });
    const prepared = await prepare();
    await setLinkUp(peer);
    await setLinkUp(ifname);
    return prepared;
  } catch (e) {
    await deletePair(peer);
    throw e;
  }
}

/**
 * Hardening, marker, MTU and (unless up is false) up on one end: a session TAP's own, so that one
 * place sets a kube-l2tp session device's identity.
 */
export const configureEnd: typeof configureTap = configureTap;

/**
 * A pair this backend began and never finished: an agent stopped after making it and before marking
 * it. Both ends are veths under the session's two names, each other's peer in this namespace, down
 * and without an alias; a device anyone else made and uses fails one of those.
 */
export async function unfinishedPair(peer: string, ifname: string): Promise<boolean> {
  return withRtnl(async (r) => {
    const [p, d] = [await r.links.byName(peer), await r.links.byName(ifname)];
    const bare = (l: LinkInfo | undefined): l is LinkInfo =>
      l?.kind === 'veth' && !l.up && !l.alias && l.linkNetnsId === undefined;
    return bare(p) && bare(d) && p.link === d.index && d.link === p.index;
  });
}

/** Deleting one end removes both, wherever the other end is; a pair that is gone already is fine. */
export const deletePair = (peer: string): Promise<void> => deleteLink(peer);

/** The device the kernel would send the tunnel's packets out of, and the next hop on it. */
export async function underlayRoute(
  local: string,
  remote: string,
): Promise<{ dev: string; nexthop: string }> {
  const r = await routeToPeer(local, remote).catch((e: unknown) => {
    throw new Error(`no route from ${local} to ${remote}: ${e instanceof Error ? e.message : String(e)}`);
  });
  if (r.local) throw new Error(`${remote} is local: a tunnel needs a remote host`);
  return { dev: r.link.name, nexthop: r.nexthop };
}

/** The next hop's MAC when the neighbour table knows it. */
export async function neighbourMac(dev: string, addr: string): Promise<string | undefined> {
  return withRtnl(async (r) => {
    const link = await r.links.byName(dev);
    const n = link && (await r.neighbours.get(link.index, addr));
    return n?.lladdr !== undefined && !(n.state & NUD.FAILED) ? n.lladdr : undefined;
  });
}
