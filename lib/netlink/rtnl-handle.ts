// rtnetlink on one socket (links, addresses, routes, neighbours, tc), in this process's network namespace or in
// another one: what every caller of lib/netlink's rtnetlink half opens.
import { RtnlAddrs } from './rtnl-addr.js';
import { RtnlNeighbours } from './rtnl-neigh.js';
import { RtnlRoutes } from './rtnl-route.js';
import { RtnlTc } from './rtnl-tc.js';
import { RtnlLinks } from './rtnl.js';
import { NETLINK_ROUTE, NetlinkSocket } from './socket.js';

export interface Rtnl {
  links: RtnlLinks;
  addrs: RtnlAddrs;
  routes: RtnlRoutes;
  neighbours: RtnlNeighbours;
  tc: RtnlTc;
}

/** A network namespace: a path (/run/netns/NAME, /proc/PID/ns/net) or an open descriptor of one. */
export type Netns = string | number;

export const rtnlOn = (sock: NetlinkSocket): Rtnl => ({
  links: new RtnlLinks(sock),
  addrs: new RtnlAddrs(sock),
  routes: new RtnlRoutes(sock),
  neighbours: new RtnlNeighbours(sock),
  tc: new RtnlTc(sock),
});

export interface RtnlHandle extends Rtnl {
  close(): void;
}

/** rtnetlink in netns, or in this process's own namespace without it; close() when done. */
export function openRtnl(netns?: Netns): RtnlHandle {
  const sock =
    netns === undefined ? NetlinkSocket.open(NETLINK_ROUTE) : NetlinkSocket.openIn(NETLINK_ROUTE, netns);
  return { ...rtnlOn(sock), close: () => sock.close() };
}

/** Runs fn on a socket of its own (in netns, when given) and closes it after. */
export async function withRtnl<T>(fn: (r: Rtnl) => Promise<T>, netns?: Netns): Promise<T> {
  const r = openRtnl(netns);
  try {
    return await fn(r);
  } finally {
    r.close();
  }
}
