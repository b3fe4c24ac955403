// L2TPTunnel: allocates the tunnel IDs and UDP ports both sides lack, resolves the node addresses,
// and rolls the agents' reports up into status (endpoints, Ready, Degraded).
import { setReadyDegraded } from '../../lib/api/conditions.js';
import { namespaceAllowed, type L2TPTunnel, type TunnelStatus } from '../../lib/api/schemas.js';
import { deepEqual } from '../../lib/deep-equal.js';
import { resourcePath } from '../../lib/kube/client.js';
import { FINALIZER, rollupTunnel, tunnelNodes, tunnelSides } from '../render.js';
import {
  CRD,
  ID_RETRY_MS,
  kubeNow,
  nodeStateMap,
  nodeStateOf,
  pwsOfTunnel,
  readyThroughLag,
  type Caches,
  type NodeObject,
  type ReconcileContext,
  type ReconcileResult,
} from './context.js';
import { agentsDone, finishDeletion } from './deletion.js';
import { addFinalizer, writeStatus } from './patch.js';
import { releaseReplacedIds, type RecordedId } from './replaced-ids.js';

const nodeAddress = (n: NodeObject | undefined, ipv6 = false): string | undefined => {
  const addrs = n?.status?.addresses ?? [];
  const pick = (type: string) =>
    addrs.find((a) => a.type === type && a.address.includes(':') === ipv6)?.address;
  return pick('InternalIP') ?? pick('ExternalIP');
};

interface Problem {
  reason: string;
  message: string;
}

/** Where a tunnel's two ends are (addresses from the spec or the nodes), and what is in the way. */
function tunnelAddressing(caches: Caches, t: L2TPTunnel): { la?: string; pa?: string; problems: Problem[] } {
  const { localNode: L, peerNode: P } = tunnelSides(t);
  const ext = t.spec.peer.external;
  const problems: Problem[] = [];
  const localNode = caches.nodes.get(L);
  const peerNodeObj = P ? caches.nodes.get(P) : undefined;
  // the family of an address given, else IPv4 where both nodes have one, else IPv6 (an IPv6-only
  // cluster's nodes have IPv6 InternalIPs only)
  const given = t.spec.local.address ?? ext?.address ?? t.spec.peer.address;
  const v6 = given
    ? given.includes(':')
    : !(nodeAddress(localNode) && (!P || nodeAddress(peerNodeObj))) &&
      !!nodeAddress(localNode, true) &&
      (!P || !!nodeAddress(peerNodeObj, true));
  const family = v6 ? 'IPv6' : 'IPv4';
  const la = t.spec.local.address ?? nodeAddress(localNode, v6);
  const pa = ext ? ext.address : (t.spec.peer.address ?? nodeAddress(peerNodeObj, v6));
  if (!localNode) problems.push({ reason: 'NodeNotFound', message: `node ${L} does not exist` });
  else if (!la)
    problems.push({
      reason: 'NoAddress',
      message: `node ${L} has no ${family} InternalIP or ExternalIP; set spec.local.address`,
    });
  if (P && !peerNodeObj) problems.push({ reason: 'NodeNotFound', message: `node ${P} does not exist` });
  else if (P && !pa)
    problems.push({
      reason: 'NoAddress',
      message: `node ${P} has no ${family} InternalIP or ExternalIP; set spec.peer.address`,
    });
  if (la && pa && la.includes(':') !== pa.includes(':')) {
    problems.push({
      reason: 'AddressFamilyMismatch',
      message: `local ${la} and peer ${pa} are different IP families`,
    });
  }
  return { ...(la ? { la } : {}), ...(pa ? { pa } : {}), problems };
}

/** The peer's tunnel ID and UDP port as given: an external peer's own (never allocated or claimed
 * here), else the spec's or what the status recorded. */
function givenPeer(t: L2TPTunnel): { tunnelID: number | undefined; udpPort: number | undefined } {
  const ext = t.spec.peer.external;
  if (ext) return { tunnelID: ext.tunnelID, udpPort: ext.udpPort };
  return {
    tunnelID: t.spec.peer.tunnelID ?? t.status?.peerTunnelID,
    udpPort: t.spec.peer.udpPort ?? t.status?.peerUDPPort,
  };
}

/**
 * A tunnel with the IDs and ports the allocator holds for it and the addresses of its nodes: a new
 * one is rendered (node states, pseudowires) as soon as its IDs are allocated, before its status
 * records them. One that cannot be (an ID another owner holds, a node without an address) keeps
 * what its status says.
 */
export function withAllocatedTunnel(ctx: ReconcileContext, t: L2TPTunnel): L2TPTunnel {
  const { localNode: L, peerNode: P } = tunnelSides(t);
  const owner = `tun/${t.metadata.name}`;
  const given = givenPeer(t);
  // an explicit ID counts only once the allocator holds it for this tunnel (no conflict)
  const held = (kind: 'tunnel' | 'port', node: string, explicit: number | undefined) => {
    const id = ctx.alloc.idOf(kind, node, owner);
    return explicit === undefined || id === explicit ? id : undefined;
  };
  const { la, pa, problems } = tunnelAddressing(ctx.caches, t);
  const fields: TunnelStatus = {
    tunnelID: held('tunnel', L, t.spec.local.tunnelID),
    peerTunnelID: P ? held('tunnel', P, t.spec.peer.tunnelID) : given.tunnelID,
    localAddress: la,
    peerAddress: pa,
  };
  if (t.spec.encapsulation === 'UDP') {
    fields.udpPort = held('port', L, t.spec.local.udpPort);
    fields.peerUDPPort = P ? held('port', P, t.spec.peer.udpPort) : given.udpPort;
  }
  const keys = Object.keys(fields) as (keyof TunnelStatus)[];
  if (problems.length || keys.some((k) => fields[k] === undefined)) return t;
  if (keys.every((k) => t.status?.[k] === fields[k])) return t;
  return { ...t, status: { ...t.status, ...fields } };
}

export async function reconcileTunnel(ctx: ReconcileContext, name: string): Promise<ReconcileResult> {
  const { caches, alloc } = ctx;
  const owner = `tun/${name}`;
  const t = caches.tunnels.get(name);
  if (!t) {
    alloc.release(owner);
    ctx.rollups.forget(owner);
    return;
  }
  const path = resourcePath({ ...CRD('l2tptunnels'), name });
  const sides = tunnelSides(t);
  if (t.metadata.deletionTimestamp) {
    if (!t.metadata.finalizers?.includes(FINALIZER)) return;
    const reported = tunnelNodes(t).filter((n) =>
      nodeStateOf(caches, n)?.status?.tunnels?.some((x) => x.name === name),
    );
    if (!(await agentsDone(ctx, t, reported, 'tunnel'))) return { requeueAfterMs: 1000 };
    await finishDeletion(ctx, path, t, owner);
    return;
  }
  if (!t.metadata.finalizers?.includes(FINALIZER)) return addFinalizer(ctx.client, path, t);

  const st: TunnelStatus = { ...(t.status ?? {}) };
  const problems: Problem[] = [];
  const conflicts = (r: { conflicts: string[]; exhausted: string[] }) => {
    for (const message of r.conflicts) problems.push({ reason: 'IDConflict', message });
    for (const message of r.exhausted) problems.push({ reason: 'IDsExhausted', message });
  };
  const L = sides.localNode;
  const P = sides.peerNode;
  const nodes = { local: L, peer: P };
  const given = givenPeer(t);
  const peerId = given.tunnelID;
  // A side whose ID (or port) another tunnel holds keeps the one this tunnel holds there, if any:
  // a running tunnel edited to a taken ID goes on running as it was (with its sessions) and says
  // why its edit is not applied; a new one holds nothing and reaches no node.
  const kept = (kind: 'tunnel' | 'port', node: string | undefined, id: number | undefined) =>
    id ?? (node ? alloc.idOf(kind, node, owner) : undefined);
  const ids = alloc.allocatePair('tunnel', 'tunnel ID', owner, nodes, {
    local: t.spec.local.tunnelID ?? t.status?.tunnelID,
    peer: peerId,
  });
  conflicts(ids);
  const ptid = P ? kept('tunnel', P, ids.peer) : peerId;
  let port: number | undefined;
  let pport: number | undefined;
  if (t.spec.encapsulation === 'UDP') {
    const peerPort = given.udpPort;
    const ports = alloc.allocatePair('port', 'UDP port', owner, nodes, {
      local: t.spec.local.udpPort ?? t.status?.udpPort,
      peer: peerPort,
    });
    conflicts(ports);
    port = kept('port', L, ports.local);
    pport = P ? kept('port', P, ports.peer) : peerPort;
  }

  // IDs and ports an edit replaced (or held on the node its peer left) go once no node runs them
  // and the status written no longer names them
  const recorded = (node: string | undefined, tunnelID?: number, udpPort?: number): RecordedId[] =>
    node
      ? [
          { kind: 'tunnel', node, id: tunnelID },
          { kind: 'port', node, id: udpPort },
        ]
      : [];
  releaseReplacedIds(ctx, owner, sides, [
    ...recorded(L, t.status?.tunnelID, t.status?.udpPort),
    ...recorded(P, t.status?.peerTunnelID, t.status?.peerUDPPort),
  ]);

  const addressing = tunnelAddressing(caches, t);
  problems.push(...addressing.problems);
  const { la, pa } = addressing;
  const assign = <K extends keyof TunnelStatus>(k: K, v: TunnelStatus[K] | undefined) => {
    if (v === undefined) delete st[k];
    else st[k] = v;
  };
  assign('tunnelID', kept('tunnel', L, ids.local));
  assign('peerTunnelID', ptid);
  assign('udpPort', port);
  assign('peerUDPPort', pport);
  // addresses are only published when usable: renderNodeState needs both, and every ID (a clash
  // alone leaves running what runs)
  const usable =
    addressing.problems.length === 0 &&
    problems.every((p) => p.reason === 'IDConflict') &&
    [st.tunnelID, st.peerTunnelID].every((x) => x !== undefined) &&
    (t.spec.encapsulation !== 'UDP' || [st.udpPort, st.peerUDPPort].every((x) => x !== undefined));
  assign('localAddress', usable ? la : undefined);
  assign('peerAddress', usable ? pa : undefined);
  st.observedGeneration = t.metadata.generation ?? 0;
  // only the pseudowires it carries: a refused one (namespace not allowed) changes nothing here
  st.pseudowires = pwsOfTunnel(caches, name).filter((p) =>
    namespaceAllowed(t.spec.allowedNamespaces, p.metadata.namespace ?? ''),
  ).length;
  const states = nodeStateMap(caches, tunnelNodes(t));
  let roll = rollupTunnel({ ...t, status: st }, states);
  if (roll.ready.reason === 'Pending') {
    const reported = readyThroughLag(t.status?.conditions, st.observedGeneration, states);
    const asReported = reported && rollupTunnel({ ...t, status: st }, reported);
    if (asReported?.ready.status === 'True') roll = asReported;
  }
  st.endpoints = roll.endpoints.map((e) => ({
    node: e.node,
    ...(e.sessionID !== undefined ? { tunnelID: e.sessionID } : {}),
    state: e.state,
    ...(e.message ? { message: e.message } : {}),
  }));
  const first = problems[0];
  const message = problems.map((p) => p.message).join('; ');
  const ready = first ? { status: 'False' as const, reason: first.reason, message } : roll.ready;
  const degraded = first ? { status: 'True' as const, reason: first.reason, message } : roll.degraded;
  const prevReason = t.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
  st.conditions = setReadyDegraded(st.conditions, ready, degraded, st.observedGeneration, kubeNow());
  const keys = ['tunnelID', 'peerTunnelID', 'udpPort', 'peerUDPPort', 'localAddress', 'peerAddress'] as const;
  const moved = keys.some((k) => t.status?.[k] !== st[k]);
  // A new tunnel's waiting status is held back while it is young: node states and pseudowires
  // render it from the allocator and its nodes meanwhile (withAllocatedTunnel), and the agents'
  // report brings its one status write, with the result. Past the hold (agents down, a node far
  // behind) the waiting status is written.
  const age = Date.now() - Date.parse(t.metadata.creationTimestamp ?? '');
  if (
    !first &&
    t.status?.conditions === undefined &&
    ready.reason === 'Pending' &&
    age < ctx.cfg.pendingHoldMs
  ) {
    if (moved) for (const n of tunnelNodes(t)) ctx.enqueue(`node/${n}`, 200);
    return { requeueAfterMs: Math.max(1000, ctx.cfg.pendingHoldMs - age) };
  }
  // a change of what pseudowires and node states need (IDs, addresses) goes out at once; the
  // roll-up alone (pseudowire count, endpoints, conditions) once it has settled (see WriteDebounce)
  if (!moved && !deepEqual(t.status ?? {}, st)) {
    const value = JSON.stringify({
      ...st,
      conditions: st.conditions?.map(({ lastTransitionTime: _, ...c }) => c),
    });
    const wait = ctx.rollups.wait(owner, value);
    if (wait > 0) return { requeueAfterMs: wait };
  }
  ctx.rollups.forget(owner);
  if ((await writeStatus(ctx.client, path, t, st)) && first && prevReason !== first.reason)
    await ctx.events.record(t, 'Warning', first.reason, ready.message);
  // nothing announces an ID that another object frees: look again
  if (problems.some((p) => p.reason === 'IDsExhausted')) return { requeueAfterMs: ID_RETRY_MS };
}
