// A node: its L2TPNodeState (what the agent must make real) and its datapath pod, both present
// while the node has endpoints, and until its agent has removed what it made once it has none; the
// pod is rolled when its template changes.
import { caughtUp, reportedSessions } from '../../lib/api/node-status.js';
import type { KObject, L2TPNodeState, Pseudowire } from '../../lib/api/schemas.js';
import { deepEqual } from '../../lib/deep-equal.js';
import { objectKey } from '../../lib/kube/informer.js';
import { isConflict, resourcePath } from '../../lib/kube/client.js';
import {
  ANNOTATION_HASH,
  desiredDatapathPod,
  desiredNodeState,
  mayRoll,
  renderNodeState,
  tunnelSides,
  type PodObject,
  type TunnelSides,
} from '../render.js';
import {
  CRD,
  nodeShards,
  pwsOfTunnel,
  tunnelsOfNode,
  type ReconcileContext,
  type ReconcileResult,
} from './context.js';
import { nodeOfState, shardIndex, shardName, shardNameFits } from '../../lib/api/node-shards.js';
import { place, type Verdict } from './limits.js';
import { deleteIfExists } from './patch.js';
import { withAllocatedTunnel } from './tunnel.js';
import type { Cookies } from './secrets.js';

/**
 * A pseudowire with the session IDs the allocator holds for it: a new one is rendered as soon as its
 * IDs are allocated, before its status records them. Without IDs on both sides (a conflict) it keeps
 * what its status says, which renders nothing new.
 */
function withAllocatedIds(ctx: ReconcileContext, p: Pseudowire, sides: TunnelSides): Pseudowire {
  const owner = `pw/${objectKey(p)}`;
  const sessionID = ctx.alloc.idOf('session', sides.localNode, owner);
  const peerSessionID = sides.peerNode
    ? ctx.alloc.idOf('session', sides.peerNode, owner)
    : (p.spec.peerSessionID ?? p.status?.peerSessionID);
  if (sessionID === undefined || peerSessionID === undefined) return p;
  if (sessionID === p.status?.sessionID && peerSessionID === p.status.peerSessionID) return p;
  return { ...p, status: { ...p.status, sessionID, peerSessionID } };
}

/** Records which pseudowires this node has no room for; those whose verdict changed are requeued. */
function noteRefused(ctx: ReconcileContext, node: string, now: Map<string, Verdict>): void {
  const before = ctx.refused.get(node) ?? new Map<string, Verdict>();
  for (const k of new Set([...before.keys(), ...now.keys()]))
    if (before.get(k)?.message !== now.get(k)?.message) ctx.enqueue(`pw/${k}`);
  if (now.size) ctx.refused.set(node, now);
  else ctx.refused.delete(node);
}

export async function reconcileNode(ctx: ReconcileContext, node: string): Promise<ReconcileResult> {
  const { caches, client, cfg, log } = ctx;
  const nodeObj = caches.nodes.get(node);
  const tunnels = tunnelsOfNode(caches, node);
  const shards = nodeShards(caches, node);
  const podName = desiredDatapathPod(node, cfg.pod).metadata.name;
  const pod = caches.pods.get(`${cfg.pod.namespace}/${podName}`);
  const podPath = `/api/v1/namespaces/${cfg.pod.namespace}/pods/${podName}`;
  const grace =
    cfg.podDeleteGraceSeconds !== undefined ? { gracePeriodSeconds: cfg.podDeleteGraceSeconds } : {};
  if (!nodeObj || tunnels.length === 0) {
    noteRefused(ctx, node, new Map());
    const wait = await drainNode(ctx, node, shards, pod);
    if (wait > 0) return { requeueAfterMs: wait };
    // the node state goes before the pod: an agent stopped by the pod's deletion that finds it gone
    // removes whatever is left
    for (const ns of [...shards].reverse()) await deleteShard(ctx, ns);
    if (pod && !pod.metadata.deletionTimestamp) {
      await deleteIfExists(client, podPath, grace);
      log.info({ node, reason: nodeObj ? 'no endpoints' : 'node deleted' }, 'datapath pod deleted');
    }
    return;
  }
  ctx.draining.delete(node);
  // pseudowires whose cookies cannot be resolved stay out of the node state (their status says why);
  // Secrets are read in parallel, each at most once (the resolver caches and shares lookups)
  const candidates = tunnels.flatMap((t) =>
    pwsOfTunnel(caches, t.metadata.name).map((p) => withAllocatedIds(ctx, p, tunnelSides(t))),
  );
  const resolved = await Promise.all(
    candidates.map((p) => (p.spec.cookie || p.spec.peerCookie ? ctx.cookies.of(p) : {})),
  );
  // pseudowires the operator has not reached yet (no IDs, no status): in a burst they are on their
  // way, and the node state waits for them rather than being written once for each few
  const behind = candidates.some(
    (p) =>
      p.status?.sessionID === undefined &&
      p.status?.conditions === undefined &&
      !p.metadata.deletionTimestamp,
  );
  const pws: Pseudowire[] = [];
  const cookieMap = new Map<string, Cookies>();
  candidates.forEach((p, i) => {
    const c = resolved[i]!;
    if ('error' in c) return;
    cookieMap.set(objectKey(p), c);
    pws.push(p);
  });
  const created = new Map(
    pws.map((p) => [objectKey(p), `${p.metadata.creationTimestamp ?? ''} ${objectKey(p)}`]),
  );
  const byIndex: (L2TPNodeState | undefined)[] = [];
  for (const ns of shards) byIndex[shardIndex(ns, node)] = ns;
  // a shard name held by an object of another node (or too long to exist) is skipped
  const usable = (k: number) => {
    const other = caches.nodeStates.get(shardName(node, k));
    return shardNameFits(node, k) && (!other || nodeOfState(other) === node);
  };
  const { shards: specs, refused } = place(
    renderNodeState(
      node,
      tunnels.map((t) => withAllocatedTunnel(ctx, t)),
      pws,
      (p, which) => cookieMap.get(objectKey(p))?.[which],
    ),
    byIndex.map((ns) => ns?.spec),
    (pw) => created.get(`${pw.namespace}/${pw.name}`) ?? '',
    cfg.limits,
    usable,
  );
  noteRefused(ctx, node, refused);
  // a node state with nothing to carry yet (its tunnels' IDs are not allocated) is not made: the
  // allocation requeues the node, which then creates it once, with its tunnels
  if (!byIndex[0] && !specs[0]?.tunnels.length) return;
  let owner: L2TPNodeState | undefined;
  let wait = 0;
  // the shards a change touches are written together: the agent waits for their events to stop,
  // and one pass of it then applies the whole change
  const writes: (() => Promise<void>)[] = [];
  for (const [k, spec] of specs.entries()) {
    if (!spec) continue;
    const current = byIndex[k];
    const name = shardName(node, k);
    const key = `node/${name}`;
    if (k === 0) owner = current;
    if (current && deepEqual(current.spec, spec) && !ownedByNode(current)) continue;
    // A new node state waits until its spec has stayed the same for a moment: a manifest that
    // brings tunnels and their pseudowires together makes it once, with all of them. A change is
    // written at once when the node is idle (nothing written within the spacing interval); in a
    // burst of changes on the node, no sooner than the spacing interval after the last write and
    // once the spec has stayed the same for a moment (each write costs the apiserver and wakes
    // the agent, which answers with a status write).
    const idle = current && ctx.spacing.wait(key) === 0 && !ctx.nodeSpecs.has(key) && !behind;
    const busyMax = behind ? cfg.writeSpacingMs * 6 : undefined;
    const w = idle
      ? 0
      : Math.max(ctx.spacing.wait(key), ctx.nodeSpecs.wait(key, JSON.stringify(spec), busyMax));
    if (w > 0) {
      wait = Math.max(wait, w);
      continue;
    }
    ctx.spacing.wrote(key);
    ctx.nodeSpecs.forget(key);
    writes.push(async () => {
      let written: L2TPNodeState;
      if (!current) {
        written = await client.create<L2TPNodeState>(
          resourcePath(CRD('l2tpnodestates')),
          desiredNodeState(node, spec, k),
        );
        log.info({ node, shard: name, tunnels: spec.tunnels.length }, 'node state created');
      } else {
        written = await client.patch<L2TPNodeState>(statePath(name), { ...disowned(current), spec });
        log.debug({ node, shard: name, generation: written.metadata.generation }, 'node state updated');
      }
      if (k === 0) owner = written;
    });
  }
  // a shard left with nothing is emptied first and deleted once its agent reports it empty: its
  // status is what holds the finalizers of the pseudowires it carried until their devices are gone
  const drainedShards: L2TPNodeState[] = [];
  if (wait === 0) {
    for (const ns of shards) {
      const k = shardIndex(ns, node);
      if (k === 0 || specs[k]) continue;
      if (ns.spec?.tunnels.length) {
        ctx.spacing.wrote(`node/${ns.metadata.name}`);
        writes.push(() => emptyShard(ctx, node, ns));
      } else if (drained(ns)) drainedShards.push(ns);
    }
  }
  await Promise.all(writes.map((write) => write()));
  if (wait > 0) return { requeueAfterMs: wait };
  for (const ns of drainedShards) await deleteShard(ctx, ns);
  const current = owner!;
  const want = desiredDatapathPod(node, cfg.pod, { name: node, uid: current.metadata.uid! });
  const hash = want.metadata.annotations[ANNOTATION_HASH]!;
  if (!pod) {
    try {
      await client.create(`/api/v1/namespaces/${cfg.pod.namespace}/pods`, want);
      log.info({ node, pod: podName, hash }, 'datapath pod created');
      ctx.podRefusals.delete(node);
    } catch (e) {
      if (isConflict(e)) return { requeueAfterMs: 1000 }; // the old one is still terminating
      // refused (an admission policy, a quota, a priority class a cluster keeps to kube-system):
      // without an Event only the operator's log would say why the node has no agent
      const message = `datapath pod ${cfg.pod.namespace}/${podName} was not created: ${(e as Error).message}`;
      if (ctx.podRefusals.get(node) !== message) {
        ctx.podRefusals.set(node, message);
        await ctx.events.record(current, 'Warning', 'DatapathPodRefused', message);
      }
      throw e;
    }
    return;
  }
  if (pod.metadata.deletionTimestamp) return { requeueAfterMs: 1000 };
  // a pod in a final phase (evicted, or shut down with its node) is never restarted by the kubelet,
  // and nothing else replaces a bare pod: the node would stay without its agent
  if (podEnded(pod)) {
    const wait = ctx.podReplacements.wait(`node/${node}`);
    if (wait > 0) return { requeueAfterMs: wait };
    ctx.podReplacements.wrote(`node/${node}`);
    await deleteIfExists(client, podPath, pod.metadata.uid ? { uid: pod.metadata.uid } : {});
    log.warn({ node, pod: podName, phase: pod.status?.phase }, 'datapath pod ended; replacing it');
    return { requeueAfterMs: 500 };
  }
  if (pod.metadata.annotations?.[ANNOTATION_HASH] !== hash) {
    if (!mayRoll(caches.pods.list(), hash)) return { requeueAfterMs: 2000 };
    await client.delete(podPath, { ...grace, ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}) });
    log.info(
      { node, pod: podName, from: pod.metadata.annotations?.[ANNOTATION_HASH], to: hash },
      'rolling datapath pod',
    );
    return { requeueAfterMs: 500 };
  }
}

const podEnded = (pod: PodObject) => ['Succeeded', 'Failed'].includes(pod.status?.phase ?? '');

const statePath = (name: string) => resourcePath({ ...CRD('l2tpnodestates'), name });

/**
 * Earlier versions made the Node the owner of its node states; the garbage collector then deleted
 * them with the Node, before the agent could remove the node's devices. The operator alone deletes
 * them now, and takes the owner off the ones it finds.
 */
const ownedByNode = (ns: L2TPNodeState) =>
  ns.metadata.ownerReferences?.some((r) => r.kind === 'Node' && r.apiVersion === 'v1') ?? false;
const disowned = (ns: L2TPNodeState) => (ownedByNode(ns) ? { metadata: { ownerReferences: null } } : {});

/**
 * A node that carries nothing any more (no endpoints, or the Node deleted): every shard is emptied
 * first and deleted once the agent reports it drained, as a shard left with nothing is. So the devices
 * go even when the datapath pod is being replaced as the node leaves (a drain evicts it): its new
 * agent starts, finds the state empty and removes them. Returns how long to wait; 0 once there is
 * nothing to wait for: the shards are drained, no agent is there to drain them (no pod, or its pod is
 * going or gone), or the agent has not reported within the teardown timeout.
 */
async function drainNode(
  ctx: ReconcileContext,
  node: string,
  shards: L2TPNodeState[],
  pod: (PodObject & KObject) | undefined,
): Promise<number> {
  const agentGone = !pod || !!pod.metadata.deletionTimestamp || podEnded(pod);
  if (agentGone || shards.every(drained)) {
    ctx.draining.delete(node);
    return 0;
  }
  const since = ctx.draining.get(node) ?? Date.now();
  ctx.draining.set(node, since);
  const full = shards.filter((ns) => ns.spec?.tunnels.length || ownedByNode(ns));
  for (const ns of full) {
    ctx.spacing.wrote(`node/${ns.metadata.name}`);
    ctx.nodeSpecs.forget(`node/${ns.metadata.name}`);
    await emptyShard(ctx, node, ns);
  }
  if (full.length) ctx.log.info({ node, shards: full.length }, 'node state emptied; waiting for its agent');
  if (Date.now() - since <= ctx.cfg.teardownTimeoutMs) return 1000;
  ctx.log.warn(
    { node, waitedMs: Date.now() - since },
    'the agent did not report the node drained in time: deleting its node state and datapath pod',
  );
  ctx.draining.delete(node);
  return 0;
}

/** A shard left with nothing: its agent removes what it carried and reports it empty (drained). */
async function emptyShard(ctx: ReconcileContext, node: string, ns: L2TPNodeState): Promise<void> {
  await ctx.client.patch(statePath(ns.metadata.name), {
    ...disowned(ns),
    spec: { nodeName: node, tunnels: [] },
  });
  ctx.log.debug({ node, shard: ns.metadata.name }, 'node state emptied');
}

/** The agent has seen the shard's current spec and reports nothing on it. */
function drained(ns: L2TPNodeState): boolean {
  if (!ns.status) return true; // no agent ever reported on it
  return caughtUp(ns) && !ns.status.tunnels?.length && reportedSessions(ns).length === 0;
}

async function deleteShard(ctx: ReconcileContext, ns: L2TPNodeState): Promise<void> {
  const name = ns.metadata.name;
  ctx.spacing.forget(`node/${name}`);
  ctx.nodeSpecs.forget(`node/${name}`);
  await deleteIfExists(ctx.client, statePath(name));
  ctx.log.info({ node: nodeOfState(ns), shard: name }, 'node state deleted');
}
