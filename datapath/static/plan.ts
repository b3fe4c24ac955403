// Static mode speaks the agent's language: its file becomes the node-state spec the operator would
// have written, and the agent's own desiredFromSpec and reconcile apply it (run.ts), so cookies,
// sublayer and MTU are derived in one place for both modes. What static mode decides itself is what
// the operator decides for the agent: device names (l2tpethN, lowest free N, as the kernel names
// them; a name from a previous run is reused) and each tunnel's underlay MTU (the MTU of the device
// on the route to the peer, as the kernel derives it).
import type { NodeStateSpec } from '../../lib/api/schemas.js';
import { routeToPeer } from '../../lib/netlink/route-to-peer.js';
import { withRtnl } from '../../lib/netlink/rtnl-handle.js';
import { desiredFromSpec } from '../agent/desired.js';
import type { DesiredState } from '../agent/reconcile.js';
import type { ObservedSession } from '../backend/types.js';
import type { StaticConfig } from './config.js';

export interface PlanEnv {
  /** MTU of the device that routes to remote (from local). */
  underlayMtu(local: string, remote: string): Promise<number>;
  /** Names of every interface in this namespace. */
  interfaceNames(): Promise<Set<string>>;
  /** Sessions kube-l2tp already owns here (from a previous run): their names are reused. */
  ownedSessions(): Promise<ObservedSession[]>;
}

/** The name static mode gives its node: node-state specs name a node, this one is no cluster's. */
export const STATIC_NODE = 'static';

export interface Plan {
  /** The file as a node-state spec: tunnel "tunnel-<id>", pseudowire "<ifname>" in no namespace. */
  spec: NodeStateSpec;
  /** The underlay MTU of each tunnel, by tunnel ID. */
  underlayMtu: Map<number, number>;
  /** What the backend must hold: desiredFromSpec of the two above. */
  desired: DesiredState;
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
  const underlayMtu = new Map<number, number>();
  const spec: NodeStateSpec = { nodeName: STATIC_NODE, tunnels: [] };
  for (const { sessions, ...t } of cfg.tunnels) {
    underlayMtu.set(t.tunnelId, await env.underlayMtu(t.local, t.remote));
    spec.tunnels.push({
      name: `tunnel-${t.tunnelId}`,
      ...t,
      sessions: sessions.map(({ name, ...s }) => {
        const prev = owned.find((o) => o.tunnelId === t.tunnelId && o.sessionId === s.sessionId);
        const ifname = name ?? prev?.ifname ?? freeName();
        // static mode attaches nothing to pods: the reference only names the session in logs
        return { ...s, ifname, pseudowire: { namespace: '', name: ifname }, mode: 'bridge' as const };
      }),
    });
  }
  const desired = desiredFromSpec(spec, {
    underlayMtu: 1500,
    tunnelUnderlayMtu: (t) => underlayMtu.get(t.tunnelId),
    mtuWords: { field: "the session's mtu", underlay: 'the MTU of the device on the route to the peer' },
  });
  return { spec, underlayMtu, desired };
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
