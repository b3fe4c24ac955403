// What every reconciler works from: the API, the informer caches (current state), the allocator,
// and the shared helpers for Events and cookie Secrets. Reconcilers read the caches, compute what
// should be, and write only differences, so running one twice changes nothing.
import type { Condition, KObject, L2TPNodeState, L2TPTunnel, Pseudowire } from '../../lib/api/schemas.js';
import { GROUP, VERSION } from '../../lib/api/schemas.js';
import { mergeShards, shardsOf } from '../../lib/api/node-shards.js';
import type { Logger } from '../../lib/log.js';
import type { Allocator, Ranges } from '../allocator.js';
import type { CacheIndex } from '../cache-index.js';
import type { InformerCache } from '../../lib/kube/informer.js';
import type { KubeApi } from '../../lib/kube/client.js';
import type { PodConfig, PodObject } from '../render.js';
import type { EventRecorder } from './events.js';
import type { CookieResolver } from './secrets.js';
import type { Limits, Verdict } from './limits.js';
import type { WriteDebounce, WriteSpacing } from './spacing.js';

export interface NodeObject extends KObject {
  status?: { addresses?: { type: string; address: string }[] };
}
export interface NadObject extends KObject {
  spec?: { config?: string };
}

export interface ControllerConfig {
  pod: PodConfig;
  workers: number;
  ranges: Ranges;
  /** Grace period for datapath pod deletions (default: the pod's own). */
  podDeleteGraceSeconds?: number;
  /** Stop waiting for agents to report a removed session, or a node drained, after this long. */
  teardownTimeoutMs: number;
  nadCheckIntervalMs: number;
  /**
   * Least time between two writes of one node state (the first is at once). A tunnel's roll-up is
   * written once it has not changed for half of this, or at the latest six times this after it
   * first changed.
   */
  writeSpacingMs: number;
  /** Longest time a new pseudowire's waiting status is held back (see reconcilePseudowire). */
  pendingHoldMs: number;
  /**
   * Secrets are not watched (the operator may only get them): a Secret read is trusted this long, and
   * each Secret a pseudowire names is read again as often; the pseudowires naming it are reconciled
   * again when it changed, so a Secret created late, rotated or deleted reaches the node states.
   */
  secretRecheckMs: number;
  limits: Limits;
  /** Generate Multus NetworkAttachmentDefinitions when that CRD exists (default true). */
  multus?: boolean;
}

export const CRD = (plural: string) => ({ group: GROUP, version: VERSION, plural });
export const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' };

export interface Caches {
  tunnels: InformerCache<L2TPTunnel>;
  pws: InformerCache<Pseudowire>;
  nodeStates: InformerCache<L2TPNodeState>;
  nodes: InformerCache<NodeObject>;
  pods: InformerCache<PodObject & KObject>;
  /** Present once the NetworkAttachmentDefinition CRD has been found. */
  nads: InformerCache<NadObject> | undefined;
  pwsByTunnel: CacheIndex<Pseudowire>;
  tunnelsByNode: CacheIndex<L2TPTunnel>;
  /** Pseudowires by the cookie Secrets they name ("namespace/name", their own namespace's). */
  pwsBySecret: CacheIndex<Pseudowire>;
  /** A node's node states (its shards) by spec.nodeName. */
  nodeStatesByNode: CacheIndex<L2TPNodeState>;
}

export interface ReconcileContext {
  client: KubeApi;
  cfg: ControllerConfig;
  log: Logger;
  alloc: Allocator;
  caches: Caches;
  events: EventRecorder;
  cookies: CookieResolver;
  /** Queue a key ("node/NAME", ...) for its reconciler, now or after a delay. */
  enqueue(key: string, afterMs?: number): void;
  /** Spaces the writes of node states (see spacing.ts). */
  spacing: WriteSpacing;
  /** Holds a tunnel's roll-up back until it settles (see spacing.ts). */
  rollups: WriteDebounce;
  /** Holds a node state's spec back, during a burst of changes on its node, until it settles. */
  nodeSpecs: WriteDebounce;
  /** Spaces the replacements of a node's ended datapath pod (one the kubelet refuses ends at once). */
  podReplacements: WriteSpacing;
  /** node -> the pseudowires ("ns/name") its node state has no room for, and why (limits.ts). */
  refused: Map<string, Map<string, Verdict>>;
  /** node -> since when its emptied node state waits for its agent's report (reconcileNode). */
  draining: Map<string, number>;
  /** node -> why the API server last refused its datapath pod (recorded once as an Event). */
  podRefusals: Map<string, string>;
}

export type ReconcileResult = void | { requeueAfterMs?: number };

/** How soon an object for which a node had no ID (or UDP port) left asks again. */
export const ID_RETRY_MS = 30_000;

/** Kubernetes time (seconds precision), as status and Events carry it. */
export const kubeNow = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export const pwsOfTunnel = (c: Caches, name: string): Pseudowire[] => c.pwsByTunnel.get(name);

export const tunnelsOfNode = (c: Caches, node: string): L2TPTunnel[] => c.tunnelsByNode.get(node);

/** A node's shards, shard 0 first. */
export const nodeShards = (c: Caches, node: string): L2TPNodeState[] =>
  shardsOf(node, c.nodeStatesByNode.get(node));

/** What a node's state says, its shards read as one (undefined: the node has none). */
export const nodeStateOf = (c: Caches, node: string): L2TPNodeState | undefined =>
  mergeShards(nodeShards(c, node));

/** The node states of these nodes that exist, each node's shards read as one. */
export function nodeStateMap(c: Caches, nodes: string[]): Map<string, L2TPNodeState> {
  const m = new Map<string, L2TPNodeState>();
  for (const n of nodes) {
    const ns = nodeStateOf(c, n);
    if (ns) m.set(n, ns);
  }
  return m;
}

/**
 * A node state's generation moves with every change on that node, and until its agent reports the
 * new one everything there rolls up as Pending. An object that is Ready for its own current
 * generation keeps Ready through that lag when the roll-up over what the agents last reported (these
 * node states as of their observed generation) still says Ready: only a change of its own or a
 * report of trouble moves it, not a Ready, Pending, Ready flap (two writes) for every change on
 * either node.
 */
export function readyThroughLag(
  prev: Condition[] | undefined,
  generation: number | undefined,
  states: Map<string, L2TPNodeState>,
): Map<string, L2TPNodeState> | undefined {
  const ready = prev?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True' || ready.observedGeneration !== generation) return undefined;
  const reported = new Map<string, L2TPNodeState>();
  for (const [n, ns] of states) {
    const g = ns.status?.observedGeneration;
    reported.set(n, g === undefined ? ns : { ...ns, metadata: { ...ns.metadata, generation: g } });
  }
  return reported;
}
