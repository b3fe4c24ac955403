// Which pseudowires a node carries within the limits of lib/api/limits.ts, and in which of its
// node states (shards, lib/api/node-shards.ts) each one is written. The oldest are taken first, so a
// new pseudowire beyond a limit never displaces a running session, and one removed makes room for
// the next in line. A session stays in the shard it is in (moving it would be two writes the agent
// could see apart); a new one goes to the first shard with room, preferring one that already holds
// its tunnel. Those left out get a verdict that their pseudowire's reconciler reports as status
// (Ready False with the limit's reason).
import type { NodeSessionSpec, NodeStateSpec, NodeTunnelSpec } from '../../lib/api/schemas.js';

export interface Limits {
  sessionsPerTunnel: number;
  /** Tunnels plus sessions in one node state. */
  nodeStateItems: number;
  nodeStateSpecBytes: number;
  /** Node states one node may have. */
  nodeStateShards: number;
}

export interface Verdict {
  reason: 'TunnelFull' | 'NodeStateFull';
  message: string;
}

export interface Placement {
  /** Each shard's spec by index: shard 0 always, a higher one undefined when it holds nothing. */
  shards: (NodeStateSpec | undefined)[];
  /** A verdict per pseudowire ("ns/name") left out. */
  refused: Map<string, Verdict>;
}

interface Shard {
  sessions: Map<string, Set<NodeSessionSpec>>;
  items: number;
  bytes: number;
}

const pwKey = (s: NodeSessionSpec) => `${s.pseudowire.namespace}/${s.pseudowire.name}`;

/**
 * Places `spec` (all the node should carry) over at most `limits.nodeStateShards` shards. `current`
 * holds the shards' specs as they are (by index), `order` gives each pseudowire its place in line
 * (creation time, then name), and `usable(k)` says whether shard k can exist (its name may be too
 * long, or taken by another node's object).
 */
export function place(
  spec: NodeStateSpec,
  current: (NodeStateSpec | undefined)[],
  order: (pw: { namespace: string; name: string }) => string,
  limits: Limits,
  usable: (index: number) => boolean = () => true,
): Placement {
  const refused = new Map<string, Verdict>();
  const node = spec.nodeName;
  const baseBytes = JSON.stringify({ nodeName: node, tunnels: [] }).length;
  const tunnelBytes = (t: NodeTunnelSpec) => JSON.stringify({ ...t, sessions: [] }).length + 1;
  const shards: (Shard | undefined)[] = [];
  const indexes = Array.from({ length: limits.nodeStateShards }, (_, i) => i);
  /** Sessions of each tunnel placed so far (the tunnel limit counts those). */
  const perTunnel = new Map<string, number>();
  const placed = (t: NodeTunnelSpec) => perTunnel.get(t.name) ?? 0;
  const shard = (k: number): Shard => (shards[k] ??= { sessions: new Map(), items: 0, bytes: baseBytes });
  const fits = (k: number, t: NodeTunnelSpec, size: number): boolean => {
    if (k >= limits.nodeStateShards || !usable(k)) return false;
    const sh = shard(k);
    const add = sh.sessions.has(t.name) ? 0 : 1;
    return (
      sh.items + add + (size ? 1 : 0) <= limits.nodeStateItems &&
      sh.bytes + size + (add ? tunnelBytes(t) : 0) <= limits.nodeStateSpecBytes
    );
  };
  const put = (k: number, t: NodeTunnelSpec, s?: NodeSessionSpec, size = 0): void => {
    const sh = shard(k);
    let set = sh.sessions.get(t.name);
    if (!set) {
      sh.sessions.set(t.name, (set = new Set()));
      sh.items++;
      sh.bytes += tunnelBytes(t);
    }
    if (s) {
      set.add(s);
      sh.items++;
      sh.bytes += size;
      perTunnel.set(t.name, placed(t) + 1);
    }
  };
  shard(0);

  // where each session and tunnel is now
  const sessionWas = new Map<string, number>();
  const tunnelWas = new Map<string, number>();
  current.forEach((c, k) => {
    for (const t of c?.tunnels ?? []) {
      if (!tunnelWas.has(t.name)) tunnelWas.set(t.name, k);
      for (const s of t.sessions) sessionWas.set(`${t.name} ${pwKey(s)}`, k);
    }
  });

  const line = spec.tunnels
    .flatMap((t) => t.sessions.map((s) => ({ t, s, at: order(s.pseudowire) })))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const waiting: { t: NodeTunnelSpec; s: NodeSessionSpec; size: number }[] = [];
  for (const { t, s } of line) {
    const size = JSON.stringify(s).length + 1;
    const was = sessionWas.get(`${t.name} ${pwKey(s)}`);
    if (was !== undefined && placed(t) < limits.sessionsPerTunnel && fits(was, t, size)) put(was, t, s, size);
    else waiting.push({ t, s, size });
  }
  // a tunnel is on the node even without sessions: where it was if that shard stays (it holds
  // sessions), else the first shard with room, so that a shard of empty tunnels does not linger
  const holdsSessions = (k: number) => [...(shards[k]?.sessions.values() ?? [])].some((set) => set.size > 0);
  for (const t of spec.tunnels) {
    if (shards.some((sh) => sh?.sessions.has(t.name))) continue;
    const was = tunnelWas.get(t.name);
    const k =
      was !== undefined && (was === 0 || holdsSessions(was)) && fits(was, t, 0)
        ? was
        : indexes.find((i) => fits(i, t, 0));
    if (k !== undefined) put(k, t);
  }
  for (const { t, s, size } of waiting) {
    if (placed(t) >= limits.sessionsPerTunnel) {
      refused.set(pwKey(s), {
        reason: 'TunnelFull',
        message: `L2TPTunnel ${t.name} already carries ${limits.sessionsPerTunnel} sessions, the most one tunnel carries; put this pseudowire on another tunnel`,
      });
      continue;
    }
    const k =
      indexes.find((i) => shards[i]?.sessions.has(t.name) && fits(i, t, size)) ??
      indexes.find((i) => fits(i, t, size));
    if (k !== undefined) {
      put(k, t, s, size);
      continue;
    }
    const items = shards.reduce((n, sh) => n + (sh?.items ?? 0), 0);
    const kib = Math.round(limits.nodeStateSpecBytes / 1024);
    refused.set(pwKey(s), {
      reason: 'NodeStateFull',
      message:
        limits.nodeStateShards === 1
          ? `the state of node ${node} already holds ${items} tunnels and sessions, the most one node state holds (at most ${limits.nodeStateItems} items, ${kib} KiB); use a tunnel between other nodes`
          : `the state of node ${node} already holds ${items} tunnels and sessions in its node states, the most a node holds (${limits.nodeStateShards} node states of at most ${limits.nodeStateItems} items and ${kib} KiB each); use a tunnel between other nodes`,
    });
  }

  const specOf = (sh: Shard | undefined, k: number): NodeStateSpec | undefined => {
    if (!sh || (k > 0 && sh.sessions.size === 0)) return undefined;
    const tunnels: NodeTunnelSpec[] = [];
    for (const t of spec.tunnels) {
      const set = sh.sessions.get(t.name);
      if (!set) continue;
      // a tunnel's entry without sessions, where other node states carry its sessions, is dead
      // weight: every change of its node state would rewrite it
      if (set.size === 0 && shards.some((o) => (o?.sessions.get(t.name)?.size ?? 0) > 0)) continue;
      tunnels.push(
        set.size === t.sessions.length ? t : { ...t, sessions: t.sessions.filter((s) => set.has(s)) },
      );
    }
    if (k > 0 && tunnels.length === 0) return undefined;
    return { nodeName: node, tunnels };
  };
  const out = Array.from({ length: shards.length }, (_, k) => specOf(shards[k], k));
  while (out.length > 1 && out[out.length - 1] === undefined) out.pop();
  // one shard holding everything is the spec itself
  if (out.length === 1 && !refused.size && out[0]!.tunnels.length === spec.tunnels.length) out[0] = spec;
  return { shards: out, refused };
}
