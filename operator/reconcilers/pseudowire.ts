// Pseudowire: allocates the session IDs, checks its cookies resolve, keeps its Multus
// NetworkAttachmentDefinition, and rolls the agents' reports up into status.
import { setReadyDegraded } from '../../lib/api/conditions.js';
import { ipamProblem } from '../../lib/api/ipam.js';
import { reportedSessions } from '../../lib/api/node-status.js';
import { IPAM_TYPES, namespaceAllowed, type PseudowireStatus } from '../../lib/api/schemas.js';
import { isConflict, isNotFound, resourcePath } from '../../lib/kube/client.js';
import {
  ANNOTATION_IPAM,
  FINALIZER,
  MANAGED_BY,
  desiredNAD,
  rollupPseudowire,
  tunnelNodes,
  tunnelSides,
} from '../render.js';
import {
  CRD,
  ID_RETRY_MS,
  NAD,
  kubeNow,
  nodeStateMap,
  nodeStateOf,
  readyThroughLag,
  type NadObject,
  type ReconcileContext,
  type ReconcileResult,
} from './context.js';
import { agentsDone, finishDeletion } from './deletion.js';
import { addFinalizer, deleteIfExists, writeStatus } from './patch.js';
import { releaseReplacedIds } from './replaced-ids.js';
import { withAllocatedTunnel } from './tunnel.js';

// A pseudowire naming a cookie Secret comes back when that Secret changes (reconcileSecret).
export async function reconcilePseudowire(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const { caches, alloc, client } = ctx;
  const owner = `pw/${key}`;
  const p = caches.pws.get(key);
  if (!p) {
    alloc.release(owner);
    return;
  }
  const [namespace, name] = [p.metadata.namespace!, p.metadata.name];
  const path = resourcePath({ ...CRD('pseudowires'), namespace, name });
  const t = caches.tunnels.get(p.spec.tunnelRef.name);
  /** The nodes whose agents still report this pseudowire's session. */
  const reportedOn = (): string[] => {
    if (!t) return [];
    // a compact range names session IDs only (unique per node): this pseudowire's ID on that node
    // there counts as reported
    const localNode = tunnelSides(t).localNode;
    return tunnelNodes(t).filter((n) => {
      const id = n === localNode ? p.status?.sessionID : p.status?.peerSessionID;
      return reportedSessions(nodeStateOf(caches, n)).some((s) =>
        s.pseudowire
          ? s.pseudowire.namespace === namespace && s.pseudowire.name === name
          : s.sessionId === id,
      );
    });
  };
  if (p.metadata.deletionTimestamp) {
    if (!p.metadata.finalizers?.includes(FINALIZER)) return;
    if (!(await agentsDone(ctx, p, reportedOn(), 'session'))) return { requeueAfterMs: 1000 };
    // no garbage collector may run (ownerReferences alone would do it otherwise)
    if (caches.nads?.get(key)) await deleteIfExists(client, resourcePath({ ...NAD, namespace, name }));
    await finishDeletion(ctx, path, p, owner);
    return;
  }
  if (!p.metadata.finalizers?.includes(FINALIZER)) return addFinalizer(client, path, p);

  const st: PseudowireStatus = { ...(p.status ?? {}) };
  st.observedGeneration = p.metadata.generation ?? 0;
  st.tunnel = p.spec.tunnelRef.name;
  const now = kubeNow();
  const fail = async (reason: string, message: string) => {
    const prevReason = p.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
    // the endpoints as the agents report them now: what failed may have taken the session off its
    // nodes, and without its tunnel it has none
    if (st.endpoints) {
      const roll = t && rollupPseudowire({ ...p, status: st }, t, nodeStateMap(caches, tunnelNodes(t)));
      if (roll) st.endpoints = roll.endpoints.map((e) => ({ ...e }));
      else delete st.endpoints;
      if (roll?.mtu !== undefined) st.mtu = roll.mtu;
      else delete st.mtu;
    }
    st.conditions = setReadyDegraded(
      st.conditions,
      { status: 'False', reason, message },
      { status: 'True', reason, message },
      st.observedGeneration!,
      now,
    );
    if ((await writeStatus(client, path, p, st)) && prevReason !== reason)
      await ctx.events.record(p, 'Warning', reason, message);
  };
  if (p.metadata.annotations?.[ANNOTATION_IPAM] !== undefined && p.spec.ipam === undefined) {
    return fail(
      'IPAMAnnotationIgnored',
      `the annotation ${ANNOTATION_IPAM} is no longer read: move its JSON to spec.ipam (validated; type one of ` +
        `${IPAM_TYPES.join(', ')}) and remove the annotation`,
    );
  }
  // the CRD's rule reads dataDir and resolvConf as spelled; a plugin's decoder also takes DataDir, ...
  const ipam = p.spec.ipam === undefined ? undefined : ipamProblem(p.spec.ipam, { at: 'spec.ipam' });
  if (ipam !== undefined) return fail('InvalidIPAM', ipam);
  if (!t) return fail('TunnelNotFound', `L2TPTunnel ${p.spec.tunnelRef.name} does not exist`);
  if (t.metadata.deletionTimestamp)
    return fail('TunnelDeleting', `L2TPTunnel ${t.metadata.name} is being deleted`);
  if (!namespaceAllowed(t.spec.allowedNamespaces, namespace)) {
    // before any ID is claimed: a refused Pseudowire holds nothing on the tunnel and reaches no node.
    // One the tunnel shared until now keeps its IDs while an agent still runs its session (its
    // device, and the pods on it): given to another pseudowire they would join that session.
    const running = reportedOn();
    if (!running.length) alloc.release(owner);
    for (const k of ['sessionID', 'peerSessionID', 'endpoints', 'mtu'] as const) delete st[k];
    await fail(
      'TunnelNotAllowed',
      `L2TPTunnel ${t.metadata.name} is not shared with namespace ${namespace}: its spec.allowedNamespaces ` +
        `must list "${namespace}" (or "*"); the tunnel's owner (a cluster admin) sets it`,
    );
    return running.length ? { requeueAfterMs: 1000 } : undefined;
  }
  const sides = tunnelSides(t);
  if (sides.external && (p.spec.sessionID === undefined || p.spec.peerSessionID === undefined)) {
    return fail(
      'InvalidSpec',
      'a pseudowire on a tunnel to an external peer needs explicit sessionID and peerSessionID (mirrored at the other side)',
    );
  }
  const ids = alloc.allocatePair(
    'session',
    'session ID',
    owner,
    { local: sides.localNode, peer: sides.peerNode },
    {
      local: p.spec.sessionID ?? p.status?.sessionID,
      peer: p.spec.peerSessionID ?? p.status?.peerSessionID,
    },
  );
  // IDs an edit replaced go once no node runs them and the status written no longer names them
  releaseReplacedIds(ctx, owner, sides, [
    { kind: 'session', node: sides.localNode, id: p.status?.sessionID },
    ...(sides.peerNode
      ? [{ kind: 'session' as const, node: sides.peerNode, id: p.status?.peerSessionID }]
      : []),
  ]);
  if (ids.conflicts.length || ids.exhausted.length) {
    // a running session keeps the IDs it holds (node states render from the allocator): the status
    // names those, not the refused edit's; a new one holds none
    const local = alloc.idOf('session', sides.localNode, owner);
    const peer = sides.peerNode
      ? alloc.idOf('session', sides.peerNode, owner)
      : (p.spec.peerSessionID ?? p.status?.peerSessionID);
    if (local !== undefined && peer !== undefined)
      Object.assign(st, { sessionID: local, peerSessionID: peer });
    else {
      delete st.sessionID;
      delete st.peerSessionID;
    }
    if (ids.conflicts.length) return fail('IDConflict', ids.conflicts.join('; '));
    await fail('IDsExhausted', ids.exhausted.join('; '));
    return { requeueAfterMs: ID_RETRY_MS }; // nothing announces an ID that another object frees
  }
  // an external peer's session ID is the spec's, never allocated here
  const psid = sides.peerNode ? ids.peer : (p.spec.peerSessionID ?? p.status?.peerSessionID);
  st.sessionID = ids.local!;
  if (psid !== undefined) st.peerSessionID = psid;
  // node states render from the allocator, so new IDs reach the agents before status records them
  if (st.sessionID !== p.status?.sessionID || st.peerSessionID !== p.status?.peerSessionID)
    for (const n of tunnelNodes(t)) ctx.enqueue(`node/${n}`, 200);
  // A new pseudowire's waiting status (its tunnel not reconciled yet, agents not reporting yet) is
  // held back while it is young: the agents' report then brings the one status write, with the
  // result. Past the hold (agents down, a node far behind) the waiting status is written.
  const age = Date.now() - Date.parse(p.metadata.creationTimestamp ?? '');
  const hold = p.status?.conditions === undefined && age < ctx.cfg.pendingHoldMs;
  const held = (): ReconcileResult => ({ requeueAfterMs: Math.max(1000, ctx.cfg.pendingHoldMs - age) });
  const cookies = await ctx.cookies.of(p);
  if ('error' in cookies) {
    ctx.log.info({ pseudowire: key, reason: cookies.detail }, 'cookie Secret unusable');
    return fail('CookieUnavailable', cookies.error);
  }
  // a node state carrying other cookies than the Secrets hold now (rotated since) is rendered again
  for (const n of tunnelNodes(t)) {
    const local = n === sides.localNode;
    const s = nodeStateOf(caches, n)
      ?.spec?.tunnels.filter((x) => x.name === t.metadata.name)
      .flatMap((x) => x.sessions)
      .find((x) => x.pseudowire.namespace === namespace && x.pseudowire.name === name);
    const send = local ? cookies.cookie : cookies.peerCookie;
    const expect = local ? cookies.peerCookie : cookies.cookie;
    if (s && (s.cookie !== send || s.peerCookie !== expect)) ctx.enqueue(`node/${n}`, 200);
  }
  const full = tunnelNodes(t)
    .map((n) => ctx.refused.get(n)?.get(key))
    .find((v) => v !== undefined);
  if (full) return fail(full.reason, full.message);
  if (caches.nads) {
    const want = desiredNAD(p);
    const cur = caches.nads.get(key);
    const nadPath = resourcePath({ ...NAD, namespace, name });
    if (!cur) {
      const created = await client.create(resourcePath({ ...NAD, namespace }), want).then(
        () => true,
        (e: unknown) => {
          if (!isConflict(e)) throw e;
          return false;
        },
      );
      // one of that name exists: ours, not in the cache yet, or one the operator did not make (its
      // cache holds only its own), which pods asking Multus for this name would get instead
      const other = created
        ? undefined
        : await client.get<NadObject>(nadPath).catch((e: unknown) => {
            if (!isNotFound(e)) throw e; // retried with the queue's backoff
            return undefined;
          });
      if (other && other.metadata.labels?.['app.kubernetes.io/managed-by'] !== MANAGED_BY) {
        delete st.networkAttachmentDefinition;
        await fail(
          'NADConflict',
          `NetworkAttachmentDefinition ${namespace}/${name} exists and was not generated by kube-l2tp: pods ` +
            `that ask Multus for "${name}" get that network, not this pseudowire. Delete or rename it ` +
            '(kube-l2tp then generates its own), or give the Pseudowire another name',
        );
        // that NAD is not watched: look again for it to go
        return { requeueAfterMs: ctx.cfg.nadCheckIntervalMs };
      }
      if (!created && !other) ctx.enqueue(`pw/${key}`, 1000); // gone meanwhile: made next time
    } else if (cur.spec?.config !== (want.spec as { config: string }).config) {
      await client.patch(nadPath, { spec: want.spec });
    }
    st.networkAttachmentDefinition = name;
  }
  // a new tunnel is rendered before its status records its IDs, and so are its pseudowires
  const allocated = withAllocatedTunnel(ctx, t).status;
  if (!allocated?.localAddress || !allocated.tunnelID) {
    const tr = t.status?.conditions?.find((c) => c.type === 'Ready');
    st.conditions = setReadyDegraded(
      st.conditions,
      {
        status: 'False',
        reason: 'TunnelNotReady',
        message: `tunnel ${t.metadata.name}: ${tr?.message ?? 'not allocated yet'}`,
      },
      { status: 'False', reason: 'AsExpected', message: '' },
      st.observedGeneration,
      now,
    );
    if (hold && t.status?.conditions === undefined) return held();
    await writeStatus(client, path, p, st);
    return;
  }
  const states = nodeStateMap(caches, tunnelNodes(t));
  let roll = rollupPseudowire({ ...p, status: st }, t, states);
  if (roll.ready.reason === 'Pending') {
    const reported = readyThroughLag(p.status?.conditions, st.observedGeneration, states);
    const asReported = reported && rollupPseudowire({ ...p, status: st }, t, reported);
    if (asReported?.ready.status === 'True') roll = asReported;
  }
  st.endpoints = roll.endpoints.map((e) => ({ ...e }));
  if (roll.mtu !== undefined) st.mtu = roll.mtu;
  else delete st.mtu;
  const prev = p.status?.conditions?.find((c) => c.type === 'Degraded');
  st.conditions = setReadyDegraded(st.conditions, roll.ready, roll.degraded, st.observedGeneration, now);
  if (hold && roll.ready.reason === 'Pending') return held();
  if (
    (await writeStatus(client, path, p, st)) &&
    roll.degraded.status === 'True' &&
    prev?.reason !== roll.degraded.reason
  ) {
    await ctx.events.record(p, 'Warning', roll.degraded.reason, roll.degraded.message);
  }
}
