// A node: its L2TPNodeState (what the agent must make real) and its datapath pod, both present
// exactly while the node has endpoints; the pod is rolled when its template changes.
import type { L2TPNodeState, Pseudowire } from '../../lib/api/schemas.js';
import { objectKey } from '../informer.js';
import { isConflict, resourcePath } from '../kube.js';
import {
  ANNOTATION_HASH,
  desiredDatapathPod,
  desiredNodeState,
  mayRoll,
  renderNodeState,
} from '../render.js';
import { CRD, pwsOfTunnel, tunnelsOfNode, type ReconcileContext, type ReconcileResult } from './context.js';
import { deepEqual, deleteIfExists } from './patch.js';
import type { Cookies } from './secrets.js';

export async function reconcileNode(ctx: ReconcileContext, node: string): Promise<ReconcileResult> {
  const { caches, client, cfg, log } = ctx;
  const nodeObj = caches.nodes.get(node);
  const tunnels = tunnelsOfNode(caches, node);
  const ns = caches.nodeStates.get(node);
  const podName = desiredDatapathPod(node, cfg.pod).metadata.name;
  const pod = caches.pods.get(`${cfg.pod.namespace}/${podName}`);
  const nsPath = resourcePath({ ...CRD('l2tpnodestates'), name: node });
  const podPath = `/api/v1/namespaces/${cfg.pod.namespace}/pods/${podName}`;
  const grace =
    cfg.podDeleteGraceSeconds !== undefined ? { gracePeriodSeconds: cfg.podDeleteGraceSeconds } : {};
  if (!nodeObj || tunnels.length === 0) {
    if (pod && !pod.metadata.deletionTimestamp) {
      await deleteIfExists(client, podPath, grace);
      log.info({ node, reason: nodeObj ? 'no endpoints' : 'node deleted' }, 'datapath pod deleted');
    }
    if (ns) {
      await deleteIfExists(client, nsPath);
      log.info({ node }, 'node state deleted');
    }
    return;
  }
  // pseudowires whose cookies cannot be resolved stay out of the node state (their status says why)
  const pws: Pseudowire[] = [];
  const cookieMap = new Map<string, Cookies>();
  for (const t of tunnels) {
    for (const p of pwsOfTunnel(caches, t.metadata.name)) {
      const c = p.spec.cookie || p.spec.peerCookie ? await ctx.cookies.of(p) : {};
      if ('error' in c) continue;
      cookieMap.set(objectKey(p), c);
      pws.push(p);
    }
  }
  const spec = renderNodeState(node, tunnels, pws, (p, which) => cookieMap.get(objectKey(p))?.[which]);
  let current = ns;
  if (!current) {
    current = await client.create<L2TPNodeState>(
      resourcePath(CRD('l2tpnodestates')),
      desiredNodeState(node, nodeObj.metadata.uid, spec),
    );
    log.info({ node, tunnels: spec.tunnels.length }, 'node state created');
  } else if (!deepEqual(current.spec, spec)) {
    current = await client.patch<L2TPNodeState>(nsPath, { spec });
    log.debug({ node, generation: current.metadata.generation }, 'node state updated');
  }
  const want = desiredDatapathPod(node, cfg.pod, { name: node, uid: current.metadata.uid! });
  const hash = want.metadata.annotations[ANNOTATION_HASH]!;
  if (!pod) {
    try {
      await client.create(`/api/v1/namespaces/${cfg.pod.namespace}/pods`, want);
      log.info({ node, pod: podName, hash }, 'datapath pod created');
    } catch (e) {
      if (isConflict(e)) return { requeueAfterMs: 1000 }; // the old one is still terminating
      throw e;
    }
    return;
  }
  if (pod.metadata.deletionTimestamp) return { requeueAfterMs: 1000 };
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
