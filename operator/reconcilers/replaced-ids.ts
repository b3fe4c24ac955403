// IDs an edit replaced. A tunnel or pseudowire edited to other IDs (or whose tunnel's peer moved to
// another node) holds the old ones until nothing can still run with them, then lets them go, so
// that an object refused one of them (IDConflict) takes it. Until then the old session or tunnel
// may still be up: the node state's spec names it until it is rewritten, the agent runs it until
// it has applied the new spec, and it lists it until its removal succeeded. The object's status
// names it until the new IDs are written there, and a restarted operator seeds the allocator, and
// finalizers match the agents' reports, from that status.
import { caughtUp, reportedSessions } from '../../lib/api/node-status.js';
import type { IdKind } from '../allocator.js';
import type { TunnelSides } from '../render.js';
import { nodeShards, type Caches, type ReconcileContext } from './context.js';

/** An ID the object's status records on a node. */
export interface RecordedId {
  kind: IdKind;
  node: string;
  id: number | undefined;
}

/** Whether a node may still run, or be told to run, `id` (whoever it is for). */
export function idInUseOn(caches: Caches, kind: IdKind, node: string, id: number): boolean {
  const shards = nodeShards(caches, node);
  // an agent behind its spec may still run what an earlier spec named; a node state without a
  // report yet is such a spec (its agent may have applied it and not written yet)
  if (!shards.every(caughtUp)) return true;
  return shards.some((ns) => {
    const spec = ns.spec?.tunnels ?? [];
    switch (kind) {
      case 'tunnel':
        return (
          spec.some((t) => t.tunnelId === id) || (ns.status?.tunnels ?? []).some((t) => t.tunnelId === id)
        );
      // the agent reports no ports: a caught-up agent has closed those its spec no longer names
      case 'port':
        return spec.some((t) => t.udpSourcePort === id);
      case 'session':
        return (
          spec.some((t) => t.sessions.some((s) => s.sessionId === id)) ||
          reportedSessions(ns).some((s) => s.sessionId === id)
        );
    }
  });
}

/**
 * Releases what `owner` holds beyond the IDs it asks for now (the latest on each of its nodes) once
 * no node can still run them and its status no longer records them. Called by its reconciler, which
 * the agents' reports and its own status writes bring back.
 */
export function releaseReplacedIds(
  ctx: ReconcileContext,
  owner: string,
  sides: TunnelSides,
  recorded: RecordedId[],
): void {
  const nodes = new Set([sides.localNode, ...(sides.peerNode ? [sides.peerNode] : [])]);
  ctx.alloc.releaseUnless(
    owner,
    (kind, node, id, latest) =>
      (latest && nodes.has(node)) ||
      recorded.some((r) => r.kind === kind && r.node === node && r.id === id) ||
      idInUseOn(ctx.caches, kind, node, id),
  );
}
