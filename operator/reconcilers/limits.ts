// Which pseudowires a node state takes within the limits of lib/api/limits.ts. The oldest are taken
// first, so a new pseudowire beyond a limit never displaces a running session, and one removed
// makes room for the next in line. Those left out get a verdict that their pseudowire's reconciler
// reports as status (Ready False with the limit's reason).
import type { NodeStateSpec } from '../../lib/api/schemas.js';

export interface Limits {
  sessionsPerTunnel: number;
  nodeStateItems: number;
  nodeStateSpecBytes: number;
}

export interface Verdict {
  reason: 'TunnelFull' | 'NodeStateFull';
  message: string;
}

/**
 * The spec with what fits, and a verdict per pseudowire ("ns/name") left out. `order` gives each
 * pseudowire its place in line (creation time, then name).
 */
export function admit(
  spec: NodeStateSpec,
  order: (pw: { namespace: string; name: string }) => string,
  limits: Limits,
): { spec: NodeStateSpec; refused: Map<string, Verdict> } {
  const refused = new Map<string, Verdict>();
  const node = spec.nodeName;
  let items = spec.tunnels.length;
  let bytes = JSON.stringify({ ...spec, tunnels: spec.tunnels.map((t) => ({ ...t, sessions: [] })) }).length;
  const line = spec.tunnels
    .flatMap((t) => t.sessions.map((s) => ({ t, s, at: order(s.pseudowire) })))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const taken = new Map<string, Set<object>>(spec.tunnels.map((t) => [t.name, new Set()]));
  for (const { t, s } of line) {
    const key = `${s.pseudowire.namespace}/${s.pseudowire.name}`;
    const inTunnel = taken.get(t.name)!;
    const size = JSON.stringify(s).length + 1;
    if (inTunnel.size >= limits.sessionsPerTunnel) {
      refused.set(key, {
        reason: 'TunnelFull',
        message: `L2TPTunnel ${t.name} already carries ${limits.sessionsPerTunnel} sessions, the most one tunnel carries; put this pseudowire on another tunnel`,
      });
    } else if (items >= limits.nodeStateItems || bytes + size > limits.nodeStateSpecBytes) {
      refused.set(key, {
        reason: 'NodeStateFull',
        message: `the state of node ${node} already holds ${items} tunnels and sessions (${Math.round(bytes / 1024)} KiB), the most one node state holds (at most ${limits.nodeStateItems} items, ${Math.round(limits.nodeStateSpecBytes / 1024)} KiB); use a tunnel between other nodes`,
      });
    } else {
      inTunnel.add(s);
      items++;
      bytes += size;
    }
  }
  if (!refused.size) return { spec, refused };
  return {
    spec: {
      ...spec,
      tunnels: spec.tunnels.map((t) => ({
        ...t,
        sessions: t.sessions.filter((s) => taken.get(t.name)!.has(s)),
      })),
    },
    refused,
  };
}
