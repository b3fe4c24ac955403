// Is the underlay between a tunnel's endpoints usable from this node? An outage (link down, route
// gone, address removed) does not remove anything: it is reported, and traffic resumes by itself.
import { NetlinkError } from '../../lib/netlink/errors.js';
import { routeToPeer, type PeerRoute } from '../../lib/netlink/route-to-peer.js';
import type { Netns } from '../../lib/netlink/rtnl-handle.js';
import { IF_OPER } from '../../lib/netlink/rtnl.js';

export type UnderlayProbe = (local: string, remote: string) => Promise<string | undefined>;

/** What is wrong with a route, in words for the status; undefined when nothing is. */
export function underlayProblem(r: PeerRoute): string | undefined {
  if (r.local) return undefined; // both ends on this host (tests)
  // flags first: they change with the request, the operstate a moment later (linkwatch)
  if (!r.link.up) return `underlay interface ${r.link.name} is down`;
  if (!r.link.lowerUp) return `underlay interface ${r.link.name} has no carrier`;
  if (r.link.operstate === IF_OPER.DOWN) return `underlay interface ${r.link.name} is down`;
  return undefined;
}

/** undefined when fine, else what is wrong, in words for the status (netns: where to look, for tests). */
export const probeUnderlay = async (
  local: string,
  remote: string,
  netns?: Netns,
): Promise<string | undefined> => {
  let route: PeerRoute;
  try {
    route = await routeToPeer(local, remote, netns);
  } catch (e) {
    const why = e instanceof NetlinkError ? e.code : e instanceof Error ? e.message : String(e);
    return `no underlay route from ${local} to ${remote} (${why})`;
  }
  return underlayProblem(route);
};
