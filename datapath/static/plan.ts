// Turns a validated static configuration into backend specs: device names and MTUs resolved the way
// the kernel resolves them (l2tpethN, lowest free N; MTU from the route to the peer).
import { routeToPeer } from '../../lib/netlink/route-to-peer.js';
import { withRtnl } from '../../lib/netlink/rtnl-handle.js';
import { sessionMtu } from '../../lib/wire/session.js';
import type { ObservedSession, SessionSpec, TunnelSpec } from '../backend/types.js';
import type { StaticConfig } from './config.js';

export interface Plan {
  tunnels: TunnelSpec[];
  sessions: SessionSpec[];
}

export interface PlanEnv {
  /** MTU of the device that routes to remote (from local). */
  underlayMtu(local: string, remote: string): Promise<number>;
  /** Names of every interface in this namespace. */
  interfaceNames(): Promise<Set<string>>;
  /** Sessions kube-l2tp already owns here (from a previous run): their names are reused. */
  ownedSessions(): Promise<ObservedSession[]>;
}

export async function makePlan(cfg: StaticConfig, env: PlanEnv): Promise<Plan> {
  const taken = await env.interfaceNames();
  const owned = await env.ownedSessions();
  for (const t of cfg.tunnels) for (const s of t.sessions) if (s.name) taken.add(s.name);
  let next = 0;
  const freeName = (): string => {
    while (taken.has(`l2tpeth${next}`)) next++;
    const n = `l2tpeth${next}`;
    taken.add(n);
    return n;
  };
  const tunnels: TunnelSpec[] = [];
  const sessions: SessionSpec[] = [];
  for (const { sessions: ss, ...t } of cfg.tunnels) {
    tunnels.push(t);
    const underlay = await env.underlayMtu(t.local, t.remote);
    for (const s of ss) {
      const prev = owned.find((o) => o.tunnelId === t.tunnelId && o.sessionId === s.sessionId);
      const ifname = s.name ?? prev?.ifname ?? freeName();
      const cookieLength = s.cookie === undefined ? 0 : ((s.cookie.length / 2) as 4 | 8);
      const mtu =
        s.mtu ??
        sessionMtu(
          { encap: t.encap, ipv6: t.local.includes(':'), cookieLength, l2specType: s.l2specType },
          underlay,
        );
      sessions.push({ ...s, tunnelId: t.tunnelId, ifname, mtu });
    }
  }
  return { tunnels, sessions };
}

/** PlanEnv backed by rtnetlink in the current network namespace. */
export function hostPlanEnv(ownedSessions: () => Promise<ObservedSession[]>): PlanEnv {
  return {
    async underlayMtu(local, remote) {
      // the kernel's fallback when the route is unknown
      return (await routeToPeer(local, remote).catch(() => undefined))?.link.mtu ?? 1500;
    },
    async interfaceNames() {
      return new Set((await withRtnl((r) => r.links.list())).map((l) => l.name));
    },
    ownedSessions,
  };
}
