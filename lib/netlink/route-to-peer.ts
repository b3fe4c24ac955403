// The datapath's one route lookup: which device carries a tunnel's packets from local to remote, and
// the next hop on it, as `ip route get REMOTE from LOCAL` shows them, through rtnetlink.
import { withRtnl, type Netns } from './rtnl-handle.js';
import { RTN_LOCAL } from './rtnl-route.js';
import type { LinkInfo } from './rtnl.js';

export interface PeerRoute {
  /** remote is an address of this host (RTN_LOCAL: the route goes through lo). */
  local: boolean;
  /** The output device as it is now (name, MTU, up, carrier...). */
  link: LinkInfo;
  /** The gateway, or remote itself on a directly connected network. */
  nexthop: string;
}

/**
 * The route from local to remote in this network namespace, or in netns. A NetlinkError when the
 * kernel has none (ENETUNREACH, EHOSTUNREACH, or EINVAL when local is not an address of this host).
 */
export function routeToPeer(local: string, remote: string, netns?: Netns): Promise<PeerRoute> {
  return withRtnl(async (r) => {
    const route = await r.routes.get(remote, local);
    if (route.oif === undefined) throw new Error(`the route from ${local} to ${remote} has no device`);
    const link = await r.links.get(route.oif);
    return { local: route.type === RTN_LOCAL, link, nexthop: route.gateway ?? remote };
  }, netns);
}
