// The controller manager: one informer per kind, one work queue for three key kinds ("tun/NAME",
// "pw/NS/NAME", "node/NAME"), the event fan-out that decides which keys an event touches, and the
// allocator seeded from what is recorded before anything new is allocated. The reconcilers, one
// per kind, are in reconcilers/.
import { reportedSessions } from '../lib/api/node-status.js';
import { nodeOfState } from '../lib/api/node-shards.js';
import {
  API_VERSION,
  GROUP,
  type KObject,
  type L2TPNodeState,
  type L2TPTunnel,
  type Pseudowire,
} from '../lib/api/schemas.js';
import {
  MAX_NODE_STATE_ITEMS,
  MAX_NODE_STATE_SHARDS,
  MAX_NODE_STATE_SPEC_BYTES,
  MAX_SESSIONS_PER_TUNNEL,
} from '../lib/api/limits.js';
import { deepEqual } from '../lib/deep-equal.js';
import type { Logger } from '../lib/log.js';
import { Allocator, DEFAULT_RANGES } from './allocator.js';
import { CacheIndex } from './cache-index.js';
import { Informer, objectKey, type InformerCache, type InformerOptions } from '../lib/kube/informer.js';
import { isConflict, isNotFound, resourcePath, type KubeApi } from '../lib/kube/client.js';
import type { Metrics } from './metrics.js';
import { WorkQueue } from './queue.js';
import {
  CRD,
  NAD,
  pwsOfTunnel,
  tunnelsOfNode,
  type Caches,
  type ControllerConfig,
  type NadObject,
  type NodeObject,
  type ReconcileContext,
  type ReconcileResult,
} from './reconcilers/context.js';
import { EventRecorder } from './reconcilers/events.js';
import { reconcileNode } from './reconcilers/node.js';
import { reconcilePseudowire } from './reconcilers/pseudowire.js';
import { CACHE_MS, CookieResolver, reconcileSecret, secretKeysOf } from './reconcilers/secrets.js';
import { WriteDebounce, WriteSpacing } from './reconcilers/spacing.js';
import { reconcileTunnel } from './reconcilers/tunnel.js';
import { tunnelNodes, tunnelSides, type PodObject } from './render.js';

export type { ControllerConfig } from './reconcilers/context.js';

export const DEFAULT_CONTROLLER: Omit<ControllerConfig, 'pod'> = {
  workers: 16,
  ranges: DEFAULT_RANGES,
  teardownTimeoutMs: 120_000,
  nadCheckIntervalMs: 30_000,
  writeSpacingMs: 5000,
  pendingHoldMs: 60_000,
  secretRecheckMs: CACHE_MS,
  limits: {
    sessionsPerTunnel: MAX_SESSIONS_PER_TUNNEL,
    nodeStateItems: MAX_NODE_STATE_ITEMS,
    nodeStateSpecBytes: MAX_NODE_STATE_SPEC_BYTES,
    nodeStateShards: MAX_NODE_STATE_SHARDS,
  },
};

/** Least time between two replacements of one node's ended datapath pod. */
const POD_REPLACEMENT_SPACING_MS = 30_000;

/** Makes the informer of one kind; the operator lists and watches the API, a test feeds its own. */
export type InformerFactory = <T extends KObject>(opts: InformerOptions, log: Logger) => InformerCache<T>;

/**
 * What a pseudowire's reconcile reads of its tunnel: its spec, deletion, IDs and addresses, and its
 * conditions only while those are missing. The tunnel's own roll-up (pseudowire count, endpoints,
 * Ready) changes with every pseudowire on it and would requeue all of them for nothing.
 */
function pwView(t: L2TPTunnel): unknown {
  const { pseudowires: _n, endpoints: _e, conditions, observedGeneration: _g, ...ids } = t.status ?? {};
  const allocated = Boolean(t.status?.localAddress && t.status.tunnelID);
  return {
    spec: t.spec,
    deleting: Boolean(t.metadata.deletionTimestamp),
    ids,
    conditions: allocated ? undefined : (conditions ?? null),
  };
}

const RECONCILERS: Record<string, (ctx: ReconcileContext, key: string) => Promise<ReconcileResult>> = {
  tun: reconcileTunnel,
  pw: reconcilePseudowire,
  node: reconcileNode,
  secret: reconcileSecret,
};

export class Controller {
  readonly tunnels: InformerCache<L2TPTunnel>;
  readonly pws: InformerCache<Pseudowire>;
  readonly nodeStates: InformerCache<L2TPNodeState>;
  readonly nodes: InformerCache<NodeObject>;
  readonly pods: InformerCache<PodObject & KObject>;
  nads: InformerCache<NadObject> | undefined;
  readonly queue = new WorkQueue();
  readonly alloc: Allocator;
  private readonly ctx: ReconcileContext;
  private readonly makeInformer: InformerFactory;
  private nadTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly client: KubeApi,
    private readonly cfg: ControllerConfig,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    makeInformer?: InformerFactory,
  ) {
    // an object refused an ID (a clash) asks again once the holder lets it go
    this.alloc = new Allocator(cfg.ranges, (waiter) => this.queue.add(waiter));
    this.makeInformer =
      makeInformer ?? (<T extends KObject>(o: InformerOptions, l: Logger) => new Informer<T>(client, o, l));
    const inf = <T extends KObject>(path: string, apiVersion: string, kind: string, extra: object = {}) =>
      this.makeInformer<T>({ path, apiVersion, kind, ...extra }, log.child({ informer: kind }));
    this.tunnels = inf(resourcePath(CRD('l2tptunnels')), API_VERSION, 'L2TPTunnel');
    this.pws = inf(resourcePath(CRD('pseudowires')), API_VERSION, 'Pseudowire');
    this.nodeStates = inf(resourcePath(CRD('l2tpnodestates')), API_VERSION, 'L2TPNodeState');
    // a Node's status (images, conditions, capacity) and a pod's spec are most of their size and
    // nothing here reads them: their caches keep the addresses, and the phase and Ready condition
    this.nodes = inf('/api/v1/nodes', 'v1', 'Node', {
      transform: (n: NodeObject) => ({
        apiVersion: n.apiVersion,
        kind: n.kind,
        metadata: n.metadata,
        status: { addresses: n.status?.addresses ?? [] },
      }),
    });
    this.pods = inf(`/api/v1/namespaces/${cfg.pod.namespace}/pods`, 'v1', 'Pod', {
      labelSelector: 'app.kubernetes.io/component=datapath,app.kubernetes.io/name=kube-l2tp-datapath',
      transform: (p: PodObject & KObject) => ({
        apiVersion: p.apiVersion,
        kind: p.kind,
        metadata: p.metadata,
        spec: {},
        // the phase says whether the pod has ended (the kubelet restarts none in a final phase)
        status: {
          ...(p.status?.phase !== undefined ? { phase: p.status.phase } : {}),
          conditions: p.status?.conditions ?? [],
        },
      }),
    });
    // NAD support appears once Multus is found: the reconcilers read the informer of the moment
    const currentNads = () => this.nads;
    const caches: Caches = {
      tunnels: this.tunnels,
      pws: this.pws,
      nodeStates: this.nodeStates,
      nodes: this.nodes,
      pods: this.pods,
      get nads() {
        return currentNads();
      },
      pwsByTunnel: new CacheIndex(this.pws, (p) => [p.spec.tunnelRef.name]),
      pwsBySecret: new CacheIndex(this.pws, secretKeysOf),
      tunnelsByNode: new CacheIndex(this.tunnels, tunnelNodes),
      nodeStatesByNode: new CacheIndex(this.nodeStates, (ns) => [nodeOfState(ns)]),
    };
    this.ctx = {
      client,
      cfg,
      log,
      alloc: this.alloc,
      caches,
      events: new EventRecorder(client, log),
      // a Secret that changed requeues the pseudowires naming it (and only then)
      cookies: new CookieResolver(client, Date.now, cfg.secretRecheckMs, (ns, name) => {
        for (const p of caches.pwsBySecret.get(`${ns}/${name}`)) this.queue.add(`pw/${objectKey(p)}`);
      }),
      enqueue: (key, afterMs) => this.queue.addAfter(key, afterMs ?? 0),
      spacing: new WriteSpacing(cfg.writeSpacingMs),
      rollups: new WriteDebounce(cfg.writeSpacingMs / 2, cfg.writeSpacingMs * 6),
      nodeSpecs: new WriteDebounce(Math.min(1000, cfg.writeSpacingMs), cfg.writeSpacingMs * 3),
      podReplacements: new WriteSpacing(POD_REPLACEMENT_SPACING_MS),
      refused: new Map(),
      draining: new Map(),
      podRefusals: new Map(),
    };
    this.wire();
  }

  // ---- event fan-out ---------------------------------------------------------------------------------

  private enqueueNode(n: string | undefined): void {
    if (n) this.queue.addAfter(`node/${n}`, 200);
  }

  private wire(): void {
    this.tunnels.on((type, t, old) => {
      this.queue.add(`tun/${t.metadata.name}`);
      for (const n of new Set([...tunnelNodes(t), ...(old ? tunnelNodes(old) : [])])) this.enqueueNode(n);
      // a deletion carries the object as it was last seen: its view has not changed, its absence has
      if (type === 'DELETED' || !old || !deepEqual(pwView(old), pwView(t))) {
        for (const p of pwsOfTunnel(this.ctx.caches, t.metadata.name)) this.queue.add(`pw/${objectKey(p)}`);
      }
    });
    this.pws.on((type, p, old) => {
      this.queue.add(`pw/${objectKey(p)}`);
      // each Secret named is looked after once, whoever names it; one no longer named is forgotten
      const secrets = secretKeysOf(p);
      const before = old ? secretKeysOf(old) : [];
      if (type !== 'MODIFIED' || !deepEqual(secrets, before))
        for (const k of new Set([...secrets, ...before])) this.queue.add(`secret/${k}`);
      const t = this.tunnels.get(p.spec.tunnelRef.name);
      if (t) {
        for (const n of tunnelNodes(t)) this.enqueueNode(n);
        this.queue.addAfter(`tun/${t.metadata.name}`, 500);
      }
    });
    this.nodeStates.on((_type, ns, old) => {
      this.enqueueNode(nodeOfState(ns));
      if (!old || !deepEqual(old.status, ns.status)) {
        for (const t of ns.spec?.tunnels ?? []) {
          this.queue.add(`tun/${t.name}`);
          for (const s of t.sessions) this.queue.add(`pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
        }
        // sessions the agent still reports after they left the spec (teardown in progress), and
        // those it reported before and no longer does (their status stops saying they are up)
        for (const s of [...reportedSessions(ns), ...(old ? reportedSessions(old) : [])])
          if (s.pseudowire) this.queue.add(`pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
        // and tunnels it no longer reports: one whose peer moved off this node lets its IDs here go
        for (const t of [...(ns.status?.tunnels ?? []), ...(old?.status?.tunnels ?? [])])
          this.queue.add(`tun/${t.name}`);
      }
    });
    this.nodes.on((type, n, old) => {
      const addrChanged =
        !old || type === 'DELETED' || !deepEqual(old.status?.addresses, n.status?.addresses);
      if (type === 'MODIFIED' && !addrChanged) return;
      this.enqueueNode(n.metadata.name);
      for (const t of tunnelsOfNode(this.ctx.caches, n.metadata.name))
        this.queue.add(`tun/${t.metadata.name}`);
    });
    this.pods.on((_type, p) => {
      const node = p.metadata.annotations?.[`${GROUP}/node-name`];
      if (node) this.enqueueNode(node);
    });
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const infs = [this.tunnels, this.pws, this.nodeStates, this.nodes, this.pods];
    for (const i of infs) i.start();
    await this.checkNAD();
    await Promise.all(infs.map((i) => i.waitForSync()));
    if (this.nads) await this.nads.waitForSync();
    if (this.stopped) return; // leadership lost while the caches were filling
    this.seed();
    this.nadTimer = setInterval(() => void this.checkNAD(), this.cfg.nadCheckIntervalMs);
    this.nadTimer.unref?.();
    for (const t of this.tunnels.list()) this.queue.add(`tun/${t.metadata.name}`);
    for (const p of this.pws.list()) this.queue.add(`pw/${objectKey(p)}`);
    for (const n of new Set([
      ...this.nodes.list().map((n) => n.metadata.name),
      ...this.nodeStates.list().map(nodeOfState),
    ])) {
      this.queue.add(`node/${n}`);
    }
    this.running = this.queue.run(
      this.cfg.workers,
      (key) => this.reconcile(key),
      (key, e) => {
        this.metrics.errors.inc({ controller: key.split('/')[0]! });
        const level = isConflict(e) ? 'debug' : 'warn';
        this.log[level]({ key, err: e }, 'reconcile failed; retrying with backoff');
      },
    );
  }

  hasSynced(): boolean {
    return [this.tunnels, this.pws, this.nodeStates, this.nodes, this.pods].every((i) => i.hasSynced());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.nadTimer) clearInterval(this.nadTimer);
    this.queue.stop();
    await Promise.all(
      [this.tunnels, this.pws, this.nodeStates, this.nodes, this.pods, ...(this.nads ? [this.nads] : [])].map(
        (i) => i.stop(),
      ),
    );
    await this.running;
  }

  /** Seed the allocator from everything recorded before allocating anything new (restart stability). */
  private seed(): void {
    // what node states carry or agents still report is in use, whoever owns it now; what a spec
    // carries is claimed after what its agent reports (a new object's IDs are recorded only there
    // until its status is written)
    for (const ns of this.nodeStates.list()) {
      const node = nodeOfState(ns);
      for (const t of ns.status?.tunnels ?? []) this.alloc.claim('tunnel', node, t.tunnelId, `tun/${t.name}`);
      // a compact range's ID that the spec no longer names is the agent still removing it; the
      // pseudowire that had it is being deleted and keeps its ID until the agent reports it gone
      for (const s of reportedSessions(ns)) {
        if (!s.pseudowire) continue;
        this.alloc.claim('session', node, s.sessionId, `pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
      }
      for (const t of ns.spec?.tunnels ?? []) {
        this.alloc.claim('tunnel', node, t.tunnelId, `tun/${t.name}`);
        if (t.udpSourcePort) this.alloc.claim('port', node, t.udpSourcePort, `tun/${t.name}`);
        for (const s of t.sessions)
          this.alloc.claim('session', node, s.sessionId, `pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
      }
    }
    // last, so that what an object's status records is the ID the allocator calls current
    for (const t of this.tunnels.list()) {
      const owner = `tun/${t.metadata.name}`;
      const s = tunnelSides(t);
      if (t.status?.tunnelID) this.alloc.claim('tunnel', s.localNode, t.status.tunnelID, owner);
      if (s.peerNode && t.status?.peerTunnelID)
        this.alloc.claim('tunnel', s.peerNode, t.status.peerTunnelID, owner);
      if (t.status?.udpPort) this.alloc.claim('port', s.localNode, t.status.udpPort, owner);
      if (s.peerNode && t.status?.peerUDPPort)
        this.alloc.claim('port', s.peerNode, t.status.peerUDPPort, owner);
    }
    for (const p of this.pws.list()) {
      const t = this.tunnels.get(p.spec.tunnelRef.name);
      if (!t) continue;
      const owner = `pw/${objectKey(p)}`;
      const s = tunnelSides(t);
      if (p.status?.sessionID) this.alloc.claim('session', s.localNode, p.status.sessionID, owner);
      if (s.peerNode && p.status?.peerSessionID)
        this.alloc.claim('session', s.peerNode, p.status.peerSessionID, owner);
    }
  }

  /** Multus is optional and may be installed later: look for its CRD now and then. */
  private async checkNAD(): Promise<void> {
    if (this.nads || this.stopped || this.cfg.multus === false) return;
    try {
      const r = await this.client.get<{ resources?: { name: string }[] }>('/apis/k8s.cni.cncf.io/v1');
      if (!r.resources?.some((x) => x.name === 'network-attachment-definitions')) return;
    } catch (e) {
      if (!isNotFound(e)) this.log.debug({ err: e }, 'NAD discovery failed');
      return;
    }
    this.log.info('NetworkAttachmentDefinition CRD found: generating NADs for pseudowires');
    this.nads = this.makeInformer<NadObject>(
      {
        path: resourcePath(NAD),
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        labelSelector: 'app.kubernetes.io/managed-by=kube-l2tp-operator',
      },
      this.log.child({ informer: 'NetworkAttachmentDefinition' }),
    );
    this.nads.on((_t, n) => this.queue.add(`pw/${objectKey(n)}`));
    this.nads.start();
    if (this.running) {
      await this.nads.waitForSync();
      for (const p of this.pws.list()) this.queue.add(`pw/${objectKey(p)}`);
    }
  }

  private async reconcile(key: string): Promise<ReconcileResult> {
    const kind = key.slice(0, key.indexOf('/'));
    const end = this.metrics.duration.startTimer({ controller: kind });
    try {
      const r = await (RECONCILERS[kind] ?? reconcileNode)(this.ctx, key.slice(kind.length + 1));
      this.metrics.reconciles.inc({ controller: kind, result: 'ok' });
      return r;
    } catch (e) {
      this.metrics.reconciles.inc({ controller: kind, result: 'error' });
      throw e;
    } finally {
      end();
      this.metrics.queueDepth.set(this.queue.depth);
    }
  }
}
