// The reconcilers. Three key kinds share one work queue: "tun/NAME", "pw/NS/NAME", "node/NAME".
// Each reconcile reads the informer caches (current state), computes what should be, and writes
// only differences, so running it twice changes nothing.
import type { Logger } from '../lib/log.js';
import {
  API_VERSION,
  GROUP,
  VERSION,
  type KObject,
  type L2TPNodeState,
  type L2TPTunnel,
  type Pseudowire,
  type PseudowireStatus,
  type TunnelStatus,
} from '../lib/api/schemas.js';
import { Allocator, DEFAULT_RANGES, type Ranges } from './allocator.js';
import { Informer, objectKey, type InformerCache, type InformerOptions } from './informer.js';
import { ApiError, isConflict, isNotFound, resourcePath, type KubeApi } from './kube.js';
import { WorkQueue } from './queue.js';
import {
  ANNOTATION_HASH,
  FINALIZER,
  desiredDatapathPod,
  desiredNAD,
  desiredNodeState,
  mayRoll,
  renderNodeState,
  rollupPseudowire,
  rollupTunnel,
  setCondition,
  tunnelNodes,
  tunnelSides,
  type PodConfig,
  type PodObject,
} from './render.js';
import type { Metrics } from './metrics.js';

interface NodeObject extends KObject {
  status?: { addresses?: { type: string; address: string }[] };
}
interface NadObject extends KObject {
  spec?: { config?: string };
}

export interface ControllerConfig {
  pod: PodConfig;
  workers: number;
  ranges: Ranges;
  /** Grace period for datapath pod deletions (default: the pod's own). */
  podDeleteGraceSeconds?: number;
  /** Stop waiting for agents to report a removed session after this long. */
  teardownTimeoutMs: number;
  nadCheckIntervalMs: number;
  /** Generate Multus NetworkAttachmentDefinitions when that CRD exists (default true). */
  multus?: boolean;
}

export const DEFAULT_CONTROLLER: Omit<ControllerConfig, 'pod'> = {
  workers: 4,
  ranges: DEFAULT_RANGES,
  teardownTimeoutMs: 120_000,
  nadCheckIntervalMs: 30_000,
};

const CRD = (plural: string) => ({ group: GROUP, version: VERSION, plural });
const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' };

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ak = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bk = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const nodeAddress = (n: NodeObject | undefined, ipv6 = false): string | undefined => {
  const addrs = n?.status?.addresses ?? [];
  const pick = (type: string) =>
    addrs.find((a) => a.type === type && a.address.includes(':') === ipv6)?.address;
  return pick('InternalIP') ?? pick('ExternalIP');
};

/** Makes the informer of one kind; the operator lists and watches the API, a test feeds its own. */
export type InformerFactory = <T extends KObject>(opts: InformerOptions, log: Logger) => InformerCache<T>;

export class Controller {
  readonly tunnels: InformerCache<L2TPTunnel>;
  readonly pws: InformerCache<Pseudowire>;
  readonly nodeStates: InformerCache<L2TPNodeState>;
  readonly nodes: InformerCache<NodeObject>;
  readonly pods: InformerCache<PodObject & KObject>;
  nads: InformerCache<NadObject> | undefined;
  readonly queue = new WorkQueue();
  readonly alloc: Allocator;
  private readonly cookieCache = new Map<string, { value: string; at: number }>();
  private nadTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  private readonly makeInformer: InformerFactory;

  constructor(
    private readonly client: KubeApi,
    private readonly cfg: ControllerConfig,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    makeInformer?: InformerFactory,
  ) {
    this.alloc = new Allocator(cfg.ranges);
    this.makeInformer =
      makeInformer ?? (<T extends KObject>(o: InformerOptions, l: Logger) => new Informer<T>(client, o, l));
    const inf = <T extends KObject>(path: string, apiVersion: string, kind: string, extra: object = {}) =>
      this.makeInformer<T>({ path, apiVersion, kind, ...extra }, log.child({ informer: kind }));
    this.tunnels = inf(resourcePath(CRD('l2tptunnels')), API_VERSION, 'L2TPTunnel');
    this.pws = inf(resourcePath(CRD('pseudowires')), API_VERSION, 'Pseudowire');
    this.nodeStates = inf(resourcePath(CRD('l2tpnodestates')), API_VERSION, 'L2TPNodeState');
    this.nodes = inf('/api/v1/nodes', 'v1', 'Node');
    this.pods = inf(`/api/v1/namespaces/${cfg.pod.namespace}/pods`, 'v1', 'Pod', {
      labelSelector: 'app.kubernetes.io/component=datapath,app.kubernetes.io/name=kube-l2tp-datapath',
    });
    this.wire();
  }

  // ---- event fan-out ---------------------------------------------------------------------------------

  private enqueueNode(n: string | undefined): void {
    if (n) this.queue.addAfter(`node/${n}`, 200);
  }

  private pwsOfTunnel(name: string): Pseudowire[] {
    return this.pws.list().filter((p) => p.spec.tunnelRef.name === name);
  }

  private tunnelsOfNode(node: string): L2TPTunnel[] {
    return this.tunnels.list().filter((t) => tunnelNodes(t).includes(node));
  }

  private wire(): void {
    this.tunnels.on((_type, t, old) => {
      this.queue.add(`tun/${t.metadata.name}`);
      for (const n of new Set([...tunnelNodes(t), ...(old ? tunnelNodes(old) : [])])) this.enqueueNode(n);
      if (!old || !deepEqual(old.status, t.status) || t.metadata.deletionTimestamp) {
        for (const p of this.pwsOfTunnel(t.metadata.name)) this.queue.add(`pw/${objectKey(p)}`);
      }
    });
    this.pws.on((_type, p) => {
      this.queue.add(`pw/${objectKey(p)}`);
      const t = this.tunnels.get(p.spec.tunnelRef.name);
      if (t) {
        for (const n of tunnelNodes(t)) this.enqueueNode(n);
        this.queue.addAfter(`tun/${t.metadata.name}`, 500);
      }
    });
    this.nodeStates.on((_type, ns, old) => {
      this.enqueueNode(ns.metadata.name);
      if (!old || !deepEqual(old.status, ns.status)) {
        for (const t of ns.spec?.tunnels ?? []) {
          this.queue.add(`tun/${t.name}`);
          for (const s of t.sessions) this.queue.add(`pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
        }
        // sessions the agent still reports after they left the spec (teardown in progress)
        for (const s of ns.status?.sessions ?? [])
          this.queue.add(`pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
        for (const t of ns.status?.tunnels ?? []) this.queue.add(`tun/${t.name}`);
      }
    });
    this.nodes.on((type, n, old) => {
      const addrChanged =
        !old || type === 'DELETED' || !deepEqual(old.status?.addresses, n.status?.addresses);
      if (type === 'MODIFIED' && !addrChanged) return;
      this.enqueueNode(n.metadata.name);
      for (const t of this.tunnelsOfNode(n.metadata.name)) this.queue.add(`tun/${t.metadata.name}`);
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
    this.seed();
    this.nadTimer = setInterval(() => void this.checkNAD(), this.cfg.nadCheckIntervalMs);
    this.nadTimer.unref?.();
    for (const t of this.tunnels.list()) this.queue.add(`tun/${t.metadata.name}`);
    for (const p of this.pws.list()) this.queue.add(`pw/${objectKey(p)}`);
    for (const n of new Set([
      ...this.nodes.list().map((n) => n.metadata.name),
      ...this.nodeStates.list().map((n) => n.metadata.name),
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
    // what node states carry or agents still report is in use, whoever owns it now
    for (const ns of this.nodeStates.list()) {
      const node = ns.metadata.name;
      for (const t of ns.spec?.tunnels ?? []) {
        this.alloc.claim('tunnel', node, t.tunnelId, `tun/${t.name}`);
        if (t.udpSourcePort) this.alloc.claim('port', node, t.udpSourcePort, `tun/${t.name}`);
        for (const s of t.sessions)
          this.alloc.claim('session', node, s.sessionId, `pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
      }
      for (const t of ns.status?.tunnels ?? []) this.alloc.claim('tunnel', node, t.tunnelId, `tun/${t.name}`);
      for (const s of ns.status?.sessions ?? []) {
        this.alloc.claim('session', node, s.sessionId, `pw/${s.pseudowire.namespace}/${s.pseudowire.name}`);
      }
    }
  }

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

  // ---- reconcile -----------------------------------------------------------------------------------------

  private async reconcile(key: string): Promise<void | { requeueAfterMs?: number }> {
    const kind = key.slice(0, key.indexOf('/'));
    const rest = key.slice(kind.length + 1);
    const end = this.metrics.duration.startTimer({ controller: kind });
    try {
      const r =
        kind === 'tun'
          ? await this.reconcileTunnel(rest)
          : kind === 'pw'
            ? await this.reconcilePseudowire(rest)
            : await this.reconcileNode(rest);
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

  private now(): string {
    return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  async event(obj: KObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const ns = obj.metadata.namespace ?? 'default';
    const now = this.now();
    await this.client
      .create(`/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.metadata.name}.`, namespace: ns },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
          uid: obj.metadata.uid,
        },
        reason,
        message,
        type,
        source: { component: 'kube-l2tp-operator' },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      })
      .catch((e: unknown) => this.log.debug({ err: e }, 'event not recorded'));
  }

  /**
   * Deletion waits until no agent reports the object any more, or until the teardown timeout (then
   * with a Warning event). True when the finalizer may go.
   */
  private async agentsDone(obj: KObject, reported: string[], what: string): Promise<boolean> {
    if (!reported.length) return true;
    if (!this.timedOut(obj)) return false;
    await this.event(
      obj,
      'Warning',
      'TeardownTimeout',
      `agents on ${reported.join(', ')} did not confirm the ${what} removal`,
    );
    return true;
  }

  /** Drop our finalizer (the API server then deletes the object) and free its IDs. */
  private async finishDeletion(path: string, obj: KObject, owner: string): Promise<void> {
    const fins = obj.metadata.finalizers ?? [];
    await this.setFinalizers(
      path,
      obj,
      fins.filter((f) => f !== FINALIZER),
    );
    this.alloc.release(owner);
  }

  private async setFinalizers(path: string, obj: KObject, finalizers: string[]): Promise<void> {
    await this.client.patch(path, {
      metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
    });
  }

  private nodeStateMap(nodes: string[]): Map<string, L2TPNodeState> {
    const m = new Map<string, L2TPNodeState>();
    for (const n of nodes) {
      const ns = this.nodeStates.get(n);
      if (ns) m.set(n, ns);
    }
    return m;
  }

  private timedOut(obj: KObject): boolean {
    const d = obj.metadata.deletionTimestamp;
    return d !== undefined && Date.now() - Date.parse(d) > this.cfg.teardownTimeoutMs;
  }

  /** Apply conditions and write the status when it differs. */
  private async writeStatus(
    path: string,
    obj: { status?: object | undefined },
    next: object,
  ): Promise<boolean> {
    if (deepEqual(obj.status ?? {}, next)) return false;
    await this.client.patch(`${path}/status`, { status: nullify(obj.status, next) });
    return true;
  }

  private async reconcileTunnel(name: string): Promise<void | { requeueAfterMs?: number }> {
    const owner = `tun/${name}`;
    const t = this.tunnels.get(name);
    if (!t) {
      this.alloc.release(owner);
      return;
    }
    const path = resourcePath({ ...CRD('l2tptunnels'), name });
    const sides = tunnelSides(t);
    const fins = t.metadata.finalizers ?? [];
    if (t.metadata.deletionTimestamp) {
      if (!fins.includes(FINALIZER)) return;
      const reported = tunnelNodes(t).filter((n) =>
        this.nodeStates.get(n)?.status?.tunnels?.some((x) => x.name === name),
      );
      if (!(await this.agentsDone(t, reported, 'tunnel'))) return { requeueAfterMs: 1000 };
      await this.finishDeletion(path, t, owner);
      return;
    }
    if (!fins.includes(FINALIZER)) {
      await this.setFinalizers(path, t, [...fins, FINALIZER]);
      return; // the update event brings us back
    }
    const st: TunnelStatus = { ...(t.status ?? {}) };
    const problems: { reason: string; message: string }[] = [];
    const udp = t.spec.encapsulation === 'UDP';
    const L = sides.localNode;
    const P = sides.peerNode;
    const claim = (kind: 'tunnel' | 'port', node: string, id: number, what: string): boolean => {
      const other = this.alloc.claim(kind, node, id, owner);
      if (other)
        problems.push({
          reason: 'IDConflict',
          message: `${what} ${id} on node ${node} is already used by ${other}`,
        });
      return !other;
    };
    // tunnel IDs
    let tid = t.spec.local.tunnelID ?? t.status?.tunnelID;
    let ptid = t.spec.peer.external
      ? t.spec.peer.external.tunnelID
      : (t.spec.peer.tunnelID ?? t.status?.peerTunnelID);
    if (P && tid === undefined && ptid === undefined) {
      tid = ptid = this.alloc.allocate('tunnel', [L, P], owner);
    } else {
      if (tid === undefined) tid = this.alloc.allocate('tunnel', [L], owner);
      else if (!claim('tunnel', L, tid, 'tunnel ID')) tid = undefined;
      if (P) {
        if (ptid === undefined) ptid = this.alloc.allocate('tunnel', [P], owner);
        else if (!claim('tunnel', P, ptid, 'tunnel ID')) ptid = undefined;
      }
    }
    // UDP ports
    let port: number | undefined;
    let pport: number | undefined;
    if (udp) {
      port = t.spec.local.udpPort ?? t.status?.udpPort;
      pport = t.spec.peer.external
        ? t.spec.peer.external.udpPort
        : (t.spec.peer.udpPort ?? t.status?.peerUDPPort);
      if (P && port === undefined && pport === undefined) {
        port = pport = this.alloc.allocate('port', [L, P], owner);
      } else {
        if (port === undefined) port = this.alloc.allocate('port', [L], owner);
        else if (!claim('port', L, port, 'UDP port')) port = undefined;
        if (P) {
          if (pport === undefined) pport = this.alloc.allocate('port', [P], owner);
          else if (!claim('port', P, pport, 'UDP port')) pport = undefined;
        }
      }
    }
    // addresses
    const localNode = this.nodes.get(L);
    const peerNodeObj = P ? this.nodes.get(P) : undefined;
    const ext = t.spec.peer.external;
    const v6 = (t.spec.local.address ?? ext?.address ?? t.spec.peer.address ?? '').includes(':');
    const la = t.spec.local.address ?? nodeAddress(localNode, v6);
    const pa = ext ? ext.address : (t.spec.peer.address ?? nodeAddress(peerNodeObj, v6));
    if (!localNode) problems.push({ reason: 'NodeNotFound', message: `node ${L} does not exist` });
    else if (!la)
      problems.push({ reason: 'NoAddress', message: `node ${L} has no InternalIP; set spec.local.address` });
    if (P && !peerNodeObj) problems.push({ reason: 'NodeNotFound', message: `node ${P} does not exist` });
    else if (P && !pa)
      problems.push({ reason: 'NoAddress', message: `node ${P} has no InternalIP; set spec.peer.address` });
    if (la && pa && la.includes(':') !== pa.includes(':')) {
      problems.push({
        reason: 'AddressFamilyMismatch',
        message: `local ${la} and peer ${pa} are different IP families`,
      });
    }
    const assign = <K extends keyof TunnelStatus>(k: K, v: TunnelStatus[K] | undefined) => {
      if (v === undefined) delete st[k];
      else st[k] = v;
    };
    assign('tunnelID', tid);
    assign('peerTunnelID', ptid);
    assign('udpPort', port);
    assign('peerUDPPort', pport);
    // addresses are only published when usable: renderNodeState needs both
    const usable = problems.length === 0;
    assign('localAddress', usable ? la : undefined);
    assign('peerAddress', usable ? pa : undefined);
    st.observedGeneration = t.metadata.generation ?? 0;
    st.pseudowires = this.pwsOfTunnel(name).length;
    const now = this.now();
    const roll = rollupTunnel({ ...t, status: st }, this.nodeStateMap(tunnelNodes(t)));
    st.endpoints = roll.endpoints.map((e) => ({
      node: e.node,
      ...(e.sessionID !== undefined ? { tunnelID: e.sessionID } : {}),
      state: e.state,
      ...(e.message ? { message: e.message } : {}),
    }));
    const first = problems[0];
    const ready = first
      ? { status: 'False' as const, ...first, message: problems.map((p) => p.message).join('; ') }
      : roll.ready;
    const degraded = first
      ? { status: 'True' as const, ...first, message: problems.map((p) => p.message).join('; ') }
      : roll.degraded;
    const prevReason = t.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
    st.conditions = setCondition(
      setCondition(
        st.conditions,
        { type: 'Ready', ...ready, observedGeneration: st.observedGeneration },
        now,
      ),
      { type: 'Degraded', ...degraded, observedGeneration: st.observedGeneration },
      now,
    );
    if (await this.writeStatus(path, t, st)) {
      if (first && prevReason !== first.reason) await this.event(t, 'Warning', first.reason, ready.message);
    }
  }

  private async resolveCookie(ns: string, src: NonNullable<Pseudowire['spec']['cookie']>): Promise<string> {
    if (src.value !== undefined) return src.value.toLowerCase();
    const ref = src.secretRef!;
    const ck = `${ns}/${ref.name}/${ref.key}`;
    const hit = this.cookieCache.get(ck);
    if (hit && Date.now() - hit.at < 60_000) return hit.value;
    const secret = await this.client.get<{ data?: Record<string, string> }>(
      `/api/v1/namespaces/${ns}/secrets/${ref.name}`,
    );
    const b64 = secret.data?.[ref.key];
    if (b64 === undefined) throw new Error(`Secret ${ns}/${ref.name} has no key ${ref.key}`);
    const v = Buffer.from(b64, 'base64')
      .toString()
      .trim()
      .replace(/^0x/i, '')
      .replaceAll(':', '')
      .toLowerCase();
    if (!/^([0-9a-f]{8}|[0-9a-f]{16})$/.test(v))
      throw new Error(`Secret ${ns}/${ref.name} key ${ref.key} is not a 4- or 8-byte hex cookie`);
    this.cookieCache.set(ck, { value: v, at: Date.now() });
    return v;
  }

  /** Both cookies of a pseudowire, or the reason they cannot be resolved. */
  private async cookiesOf(
    p: Pseudowire,
  ): Promise<{ cookie?: string; peerCookie?: string } | { error: string }> {
    const ns = p.metadata.namespace ?? 'default';
    try {
      const out: { cookie?: string; peerCookie?: string } = {};
      if (p.spec.cookie) out.cookie = await this.resolveCookie(ns, p.spec.cookie);
      if (p.spec.peerCookie) out.peerCookie = await this.resolveCookie(ns, p.spec.peerCookie);
      return out;
    } catch (e) {
      return {
        error:
          e instanceof ApiError && e.status === 404
            ? `cookie Secret not found: ${e.message}`
            : (e as Error).message,
      };
    }
  }

  private async reconcilePseudowire(key: string): Promise<void | { requeueAfterMs?: number }> {
    const owner = `pw/${key}`;
    const p = this.pws.get(key);
    if (!p) {
      this.alloc.release(owner);
      return;
    }
    const [namespace, name] = [p.metadata.namespace!, p.metadata.name];
    const path = resourcePath({ ...CRD('pseudowires'), namespace, name });
    const fins = p.metadata.finalizers ?? [];
    const t = this.tunnels.get(p.spec.tunnelRef.name);
    if (p.metadata.deletionTimestamp) {
      if (!fins.includes(FINALIZER)) return;
      const nodes = t ? tunnelNodes(t) : [];
      const reported = nodes.filter((n) =>
        this.nodeStates
          .get(n)
          ?.status?.sessions?.some((s) => s.pseudowire.namespace === namespace && s.pseudowire.name === name),
      );
      if (!(await this.agentsDone(p, reported, 'session'))) return { requeueAfterMs: 1000 };
      if (this.nads?.get(key)) {
        // no garbage collector may run (ownerReferences alone would do it otherwise)
        await this.client.delete(resourcePath({ ...NAD, namespace, name })).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
      }
      await this.finishDeletion(path, p, owner);
      return;
    }
    if (!fins.includes(FINALIZER)) {
      await this.setFinalizers(path, p, [...fins, FINALIZER]);
      return;
    }
    const st: PseudowireStatus = { ...(p.status ?? {}) };
    st.observedGeneration = p.metadata.generation ?? 0;
    st.tunnel = p.spec.tunnelRef.name;
    const now = this.now();
    const fail = async (reason: string, message: string) => {
      const prevReason = p.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
      st.conditions = setCondition(
        setCondition(
          st.conditions,
          { type: 'Ready', status: 'False', reason, message, observedGeneration: st.observedGeneration },
          now,
        ),
        { type: 'Degraded', status: 'True', reason, message, observedGeneration: st.observedGeneration },
        now,
      );
      if ((await this.writeStatus(path, p, st)) && prevReason !== reason)
        await this.event(p, 'Warning', reason, message);
    };
    if (!t) return fail('TunnelNotFound', `L2TPTunnel ${p.spec.tunnelRef.name} does not exist`);
    if (t.metadata.deletionTimestamp)
      return fail('TunnelDeleting', `L2TPTunnel ${t.metadata.name} is being deleted`);
    const sides = tunnelSides(t);
    const L = sides.localNode;
    const P = sides.peerNode;
    let sid = p.spec.sessionID ?? p.status?.sessionID;
    let psid = p.spec.peerSessionID ?? p.status?.peerSessionID;
    if (sides.external && (p.spec.sessionID === undefined || p.spec.peerSessionID === undefined)) {
      return fail(
        'InvalidSpec',
        'a pseudowire on a tunnel to an external peer needs explicit sessionID and peerSessionID (mirrored at the other side)',
      );
    }
    const conflicts: string[] = [];
    if (P && sid === undefined && psid === undefined) {
      sid = psid = this.alloc.allocate('session', [L, P], owner);
    } else {
      if (sid === undefined) sid = this.alloc.allocate('session', [L], owner);
      else {
        const o = this.alloc.claim('session', L, sid, owner);
        if (o) conflicts.push(`session ID ${sid} on node ${L} is already used by ${o}`);
      }
      if (P) {
        if (psid === undefined) psid = this.alloc.allocate('session', [P], owner);
        else {
          const o = this.alloc.claim('session', P, psid, owner);
          if (o) conflicts.push(`session ID ${psid} on node ${P} is already used by ${o}`);
        }
      }
    }
    if (conflicts.length) {
      delete st.sessionID;
      delete st.peerSessionID;
      return fail('IDConflict', conflicts.join('; '));
    }
    st.sessionID = sid;
    if (psid !== undefined) st.peerSessionID = psid;
    const cookies = await this.cookiesOf(p);
    if ('error' in cookies) return fail('CookieUnavailable', cookies.error);
    // Multus NAD
    if (this.nads) {
      const want = desiredNAD(p);
      const cur = this.nads.get(key);
      const nadPath = resourcePath({ ...NAD, namespace, name });
      if (!cur) {
        await this.client.create(resourcePath({ ...NAD, namespace }), want).catch((e: unknown) => {
          if (!isConflict(e)) throw e;
        });
      } else if (cur.spec?.config !== (want.spec as { config: string }).config) {
        await this.client.patch(nadPath, { spec: want.spec });
      }
      st.networkAttachmentDefinition = name;
    }
    if (!t.status?.localAddress || !t.status.tunnelID) {
      const tr = t.status?.conditions?.find((c) => c.type === 'Ready');
      st.conditions = setCondition(
        setCondition(
          st.conditions,
          {
            type: 'Ready',
            status: 'False',
            reason: 'TunnelNotReady',
            message: `tunnel ${t.metadata.name}: ${tr?.message ?? 'not allocated yet'}`,
            observedGeneration: st.observedGeneration,
          },
          now,
        ),
        {
          type: 'Degraded',
          status: 'False',
          reason: 'AsExpected',
          message: '',
          observedGeneration: st.observedGeneration,
        },
        now,
      );
      await this.writeStatus(path, p, st);
      return;
    }
    const roll = rollupPseudowire({ ...p, status: st }, t, this.nodeStateMap(tunnelNodes(t)));
    st.endpoints = roll.endpoints.map((e) => ({ ...e }));
    if (roll.mtu !== undefined) st.mtu = roll.mtu;
    else delete st.mtu;
    const prev = p.status?.conditions?.find((c) => c.type === 'Degraded');
    st.conditions = setCondition(
      setCondition(
        st.conditions,
        { type: 'Ready', ...roll.ready, observedGeneration: st.observedGeneration },
        now,
      ),
      { type: 'Degraded', ...roll.degraded, observedGeneration: st.observedGeneration },
      now,
    );
    if (
      (await this.writeStatus(path, p, st)) &&
      roll.degraded.status === 'True' &&
      prev?.reason !== roll.degraded.reason
    ) {
      await this.event(p, 'Warning', roll.degraded.reason, roll.degraded.message);
    }
  }

  private async reconcileNode(node: string): Promise<void | { requeueAfterMs?: number }> {
    const nodeObj = this.nodes.get(node);
    const tunnels = this.tunnelsOfNode(node);
    const ns = this.nodeStates.get(node);
    const podName = desiredDatapathPod(node, this.cfg.pod).metadata.name;
    const pod = this.pods.get(`${this.cfg.pod.namespace}/${podName}`);
    const nsPath = resourcePath({ ...CRD('l2tpnodestates'), name: node });
    const podPath = `/api/v1/namespaces/${this.cfg.pod.namespace}/pods/${podName}`;
    const grace =
      this.cfg.podDeleteGraceSeconds !== undefined
        ? { gracePeriodSeconds: this.cfg.podDeleteGraceSeconds }
        : {};
    if (!nodeObj || tunnels.length === 0) {
      if (pod && !pod.metadata.deletionTimestamp) {
        await this.client.delete(podPath, grace).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
        this.log.info({ node, reason: nodeObj ? 'no endpoints' : 'node deleted' }, 'datapath pod deleted');
      }
      if (ns) {
        await this.client.delete(nsPath).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
        this.log.info({ node }, 'node state deleted');
      }
      return;
    }
    // pseudowires whose cookies cannot be resolved stay out of the node state (their status says why)
    const pws: Pseudowire[] = [];
    const cookieMap = new Map<string, { cookie?: string; peerCookie?: string }>();
    for (const t of tunnels) {
      for (const p of this.pwsOfTunnel(t.metadata.name)) {
        const c = p.spec.cookie || p.spec.peerCookie ? await this.cookiesOf(p) : {};
        if ('error' in c) continue;
        cookieMap.set(objectKey(p), c);
        pws.push(p);
      }
    }
    const spec = renderNodeState(node, tunnels, pws, (p, which) => cookieMap.get(objectKey(p))?.[which]);
    let current = ns;
    if (!current) {
      current = await this.client.create<L2TPNodeState>(
        resourcePath(CRD('l2tpnodestates')),
        desiredNodeState(node, nodeObj.metadata.uid, spec),
      );
      this.log.info({ node, tunnels: spec.tunnels.length }, 'node state created');
    } else if (!deepEqual(current.spec, spec)) {
      current = await this.client.patch<L2TPNodeState>(nsPath, { spec });
      this.log.debug({ node, generation: current.metadata.generation }, 'node state updated');
    }
    // datapath pod
    const want = desiredDatapathPod(node, this.cfg.pod, { name: node, uid: current.metadata.uid! });
    const hash = want.metadata.annotations[ANNOTATION_HASH]!;
    if (!pod) {
      try {
        await this.client.create(`/api/v1/namespaces/${this.cfg.pod.namespace}/pods`, want);
        this.log.info({ node, pod: podName, hash }, 'datapath pod created');
      } catch (e) {
        if (isConflict(e)) return { requeueAfterMs: 1000 }; // the old one is still terminating
        throw e;
      }
      return;
    }
    if (pod.metadata.deletionTimestamp) return { requeueAfterMs: 1000 };
    if (pod.metadata.annotations?.[ANNOTATION_HASH] !== hash) {
      if (!mayRoll(this.pods.list(), hash)) return { requeueAfterMs: 2000 };
      await this.client.delete(podPath, { ...grace, ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}) });
      this.log.info(
        { node, pod: podName, from: pod.metadata.annotations?.[ANNOTATION_HASH], to: hash },
        'rolling datapath pod',
      );
      return { requeueAfterMs: 500 };
    }
  }
}

/** A merge patch from `prev` to `next` that also removes keys `next` dropped (null). */
function nullify(prev: object | undefined, next: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...next };
  for (const k of Object.keys(prev ?? {})) if (!(k in next)) out[k] = null;
  return out;
}
