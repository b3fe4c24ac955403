// A node's L2TPNodeState may be several objects ("shards"): one object must fit etcd's request limit,
// so a node with more tunnels and sessions than one holds gets more of them. Shard 0 is named after
// the node (the datapath pod's owner, and what every node had before shards); shard k is
// "<node>.shard-<k>". Every shard carries the node's label and spec.nodeName, which is what the agent
// selects and the operator indexes by. Readers of a node's state (the operator's roll-ups, the
// agent's desired state) go through mergeShards and see one object.
import { createHash } from 'node:crypto';
import { caughtUp } from './node-status.js';
import { GROUP, type L2TPNodeState, type NodeStateSpec, type NodeStateStatus } from './schemas.js';

type NodeTunnelStatus = NonNullable<NodeStateStatus['tunnels']>[number];

export const LABEL_NODE = `${GROUP}/node`;

const SHARD_INFIX = '.shard-';

/** A label value names the node when it can (at most 63 characters); a longer name goes by a hash. */
export function nodeLabelValue(node: string): string {
  if (node.length <= 63) return node;
  return `${node.slice(0, 46)}-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
}

/** The label selector of every shard of a node (spec.nodeName still decides: a hash may collide). */
export const nodeSelector = (node: string): string => `${LABEL_NODE}=${nodeLabelValue(node)}`;

export function shardName(node: string, index: number): string {
  return index === 0 ? node : `${node}${SHARD_INFIX}${index}`;
}

/** Object names are DNS subdomains: a shard whose name would be longer cannot exist. */
export const shardNameFits = (node: string, index: number): boolean => shardName(node, index).length <= 253;

/** The node a node state belongs to. */
export const nodeOfState = (ns: L2TPNodeState): string => ns.spec?.nodeName ?? ns.metadata.name;

/** The shard index of a node state of `node`, or -1 for a name that is not one of its shards. */
export function shardIndex(ns: L2TPNodeState, node = nodeOfState(ns)): number {
  const name = ns.metadata.name;
  if (name === node) return 0;
  if (!name.startsWith(node + SHARD_INFIX)) return -1;
  const rest = name.slice(node.length + SHARD_INFIX.length);
  return /^[1-9][0-9]{0,3}$/.test(rest) ? Number(rest) : -1;
}

/** The shards of `node` among `states`, by index (objects of another node, or stray names, left out). */
export function shardsOf(node: string, states: Iterable<L2TPNodeState>): L2TPNodeState[] {
  return [...states]
    .filter((s) => nodeOfState(s) === node && shardIndex(s, node) >= 0)
    .sort((a, b) => shardIndex(a, node) - shardIndex(b, node));
}

/** Specs of several shards as one: tunnels by name (parameters from the lowest shard), sessions joined. */
export function mergeSpecs(node: string, specs: NodeStateSpec[]): NodeStateSpec {
  if (specs.length === 1) return specs[0]!;
  const tunnels = new Map<string, NodeStateSpec['tunnels'][number]>();
  for (const spec of specs)
    for (const t of spec.tunnels) {
      const have = tunnels.get(t.name);
      if (have) have.sessions.push(...t.sessions);
      else tunnels.set(t.name, { ...t, sessions: [...t.sessions] });
    }
  return { nodeName: node, tunnels: [...tunnels.values()] };
}

const TUNNEL_STATE_RANK: Record<NodeTunnelStatus['state'], number> = { Ready: 0, Pending: 1, Failed: 2 };

/**
 * A node's shards read as one node state. Its status is caught up (observedGeneration ≥
 * generation) only when every shard's is, so a roll-up never reads a shard the agent has not seen;
 * backend, conditions and lastError are shard 0's. One shard is returned as it is.
 */
export function mergeShards(shards: L2TPNodeState[]): L2TPNodeState | undefined {
  if (shards.length <= 1) return shards[0];
  const first = shards[0]!;
  const node = nodeOfState(first);
  const withStatus = shards.filter((s) => s.status);
  const allSeen = shards.every(caughtUp);
  const tunnels = new Map<string, NodeTunnelStatus>();
  for (const s of withStatus)
    for (const t of s.status!.tunnels ?? []) {
      const have = tunnels.get(t.name);
      if (!have) tunnels.set(t.name, { ...t, ...(t.up ? { up: [...t.up] } : {}) });
      else {
        const worse = TUNNEL_STATE_RANK[t.state] > TUNNEL_STATE_RANK[have.state] ? t : have;
        const up = [...(have.up ?? []), ...(t.up ?? [])];
        tunnels.set(t.name, { ...worse, ...(up.length ? { up } : {}) });
      }
    }
  const base = first.status ?? withStatus[0]?.status;
  const specs = shards.flatMap((s) => (s.spec ? [s.spec] : []));
  return {
    ...first,
    metadata: { ...first.metadata, name: node, generation: 1 },
    ...(specs.length ? { spec: mergeSpecs(node, specs) } : {}),
    ...(base
      ? {
          status: {
            ...base,
            observedGeneration: allSeen ? 1 : 0,
            tunnels: [...tunnels.values()],
            sessions: withStatus.flatMap((s) => s.status!.sessions ?? []),
          },
        }
      : {}),
  };
}
