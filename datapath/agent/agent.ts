// The node agent: makes this node's L2TPNodeState.spec real through a backend and reports what is
// true in its status. One reconcile runs at a time; events only schedule the next pass.
import type { PseudowireRef } from '../../lib/agent-protocol.js';
import { mergeSpecs } from '../../lib/api/node-shards.js';
import type { L2TPNodeState, NodeStateStatus } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';
import type { Backend, SessionCounters, TunnelCounters } from '../backend/types.js';
import { desiredFromSpec } from './desired.js';
import type { AgentMetrics } from './metrics.js';
import {
  desiredTargets,
  podMtuMessage,
  pwRefKey,
  reportTargets,
  type PodMtuPhase,
  type PodMtuProblem,
  type PodMtuTarget,
  type SyncPodMtu,
} from './pod-mtu-plan.js';
import { reconcile, type DesiredState, type ReconcileReport } from './reconcile.js';
import { ReportResolver } from './resolver.js';
import { buildStatus, hasCounters, splitReport, statusChanged } from './status.js';
import type { NodeStateSource } from './nodestate-source.js';

/** How often the agent runs a pass over its node state when nothing asked for one. */
export const DEFAULT_RESYNC_SECONDS = 10;

export interface AgentOptions {
  nodeName: string;
  source: NodeStateSource;
  backend: Backend;
  backendReason: string;
  metrics: AgentMetrics;
  logger: Logger;
  version: string;
  underlayMtu?: number;
  /** MTU policy "fixed": sessions without an explicit MTU get this instead of a derived one. */
  fixedMtu?: number;
  /** Full pass (repairs drift) even without events. */
  resyncMs?: number;
  /** Counters alone trigger a status write at most this often. */
  counterIntervalMs?: number;
  now?: () => Date;
  /** Underlay health per tunnel (default: none); the agent command passes probeUnderlay. */
  probeUnderlay?: (local: string, remote: string) => Promise<string | undefined>;
  /** Why a new session may not be made now (the pod's memory); the agent command passes memoryGate's. */
  refuseNewSession?: () => string | undefined;
  /** A pseudowire left this node: its node-side attachment bridge can go (the CNI plugin's call). */
  onPseudowireGone?: (ref: PseudowireRef, sessionId: number) => Promise<unknown>;
  /** After every pass, the session devices here: a re-made one rejoins its attachment bridge. */
  rejoinBridges?: (
    sessions: { pseudowire: PseudowireRef; ifname: string; sessionId: number }[],
    onError: (s: { pseudowire: PseudowireRef; ifname: string }, e: unknown) => void,
  ) => Promise<unknown>;
  /** After every pass, with the pseudowires this node carries: attachment bridges of others can go. */
  releaseOrphanBridges?: (carried: { pseudowire: PseudowireRef; sessionId: number }[]) => Promise<unknown>;
  /**
   * Attached pods follow their session's MTU: called before the backend's pass with the MTUs it is
   * about to set ("lower") and after it with those it holds ("all"); what fails shows in the session's status.
   */
  syncPodMtu?: SyncPodMtu;
}

const EMPTY: DesiredState = { tunnels: [] };

export class Agent {
  readonly resolver = new ReportResolver();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** What was last written to each shard's status, and when. */
  private readonly lastWritten = new Map<string, { status: NodeStateStatus; at: number }>();
  private lastError: { time: string; message: string } | undefined;
  /** Whether the last pass ended with an error (lastError's time is when that run of them began). */
  private failing = false;
  /** Tunnels this agent (or the one before it) reported up, until they are removed. */
  private readonly ownTunnels = new Set<number>();
  private passes = 0;

  constructor(private readonly o: AgentOptions) {}

  /** First pass, then watch + periodic resync. Resolves after the first pass. */
  async start(): Promise<ReconcileReport | undefined> {
    await this.kick();
    this.o.source.watch(() => void this.kick());
    this.schedule();
    return this.report;
  }

  get report(): ReconcileReport | undefined {
    return this.lastReport;
  }
  private lastReport: ReconcileReport | undefined;

  get reconcilePasses(): number {
    return this.passes;
  }

  /** Runs a pass now, or once more after the running one (events coalesce). */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule() {
    if (this.stopped) return;
    this.timer = setTimeout(
      () => {
        void this.kick().finally(() => this.schedule());
      },
      this.o.resyncMs ?? DEFAULT_RESYNC_SECONDS * 1000,
    );
  }

  private async pass(): Promise<void> {
    const log = this.o.logger;
    const now = (this.o.now ?? (() => new Date()))();
    let shards: L2TPNodeState[];
    try {
      shards = await this.o.source.get();
    } catch (e) {
      // Without the API we keep what we have: never tear down on a read error.
      log.warn({ err: String(e) }, 'cannot read the node state; keeping the current datapath');
      this.o.metrics.reconciles.inc({ result: 'api_error' });
      return;
    }
    const specs = shards.flatMap((s) => (s.spec ? [s.spec] : []));
    const desired = specs.length
      ? desiredFromSpec(mergeSpecs(this.o.nodeName, specs), {
          underlayMtu: this.o.underlayMtu ?? 1500,
          ...(this.o.fixedMtu !== undefined ? { fixedMtu: this.o.fixedMtu } : {}),
        })
      : EMPTY;
    // the status as the agent wrote it: a tunnel it had up is its own, even where the backend cannot
    // mark it (a kernel tunnel without sessions, after a restart)
    for (const s of shards)
      for (const t of s.status?.tunnels ?? []) if (t.state === 'Ready') this.ownTunnels.add(t.tunnelId);
    await this.syncPodMtu(desiredTargets(desired), 'lower');
    let report: ReconcileReport;
    try {
      report = await reconcile(this.o.backend, desired, log, {
        ownedTunnels: this.ownTunnels,
        ...(this.o.probeUnderlay ? { probeUnderlay: this.o.probeUnderlay } : {}),
        ...(this.o.refuseNewSession ? { refuseNewSession: this.o.refuseNewSession } : {}),
      });
    } catch (e) {
      // the backend could not say what exists (a dump or map read failed): nothing is changed on
      // that basis; the failure is shown and the next pass tries again
      await this.failedPass(shards, e instanceof Error ? e.message : String(e), now);
      return;
    }
    this.passes++;
    for (const t of report.tunnels) if (t.state === 'Up') this.ownTunnels.add(t.tunnelId);
    for (const r of report.removed) {
      const m = /^tunnel (\d+)$/.exec(r);
      if (m) this.ownTunnels.delete(Number(m[1]));
    }
    await this.releaseGone(this.lastReport, report);
    await this.rejoinBridges(report);
    this.notePodMtu(report, await this.syncPodMtu(reportTargets(report), 'all'));
    await this.o
      .releaseOrphanBridges?.(
        report.sessions.flatMap((s) =>
          s.pseudowire ? [{ pseudowire: s.pseudowire, sessionId: s.sessionId }] : [],
        ),
      )
      .catch((e: unknown) => log.warn({ err: String(e) }, 'could not release orphaned attachment bridges'));
    this.lastReport = report;
    this.resolver.update(report);

    // one read for all sessions (the kernel backend: one netlink dump, not a GET per session)
    const counters = await this.o.backend.allCounters().catch(() => new Map<string, SessionCounters>());
    this.o.metrics.setSessions(report.sessions, counters);
    this.o.metrics.setTunnels(report.tunnels, await this.tunnelCounters(report));
    const failed =
      report.sessions.find((s) => s.state === 'Error') ?? report.tunnels.find((t) => t.state === 'Error');
    if (failed?.error) this.noteError(failed.error, now);
    else this.failing = false;
    this.o.metrics.reconciles.inc({ result: failed ? 'error' : 'ok' });
    // nothing to report on once the operator removed this node's state
    const parts = splitReport(
      report,
      shards.map((s) => s.spec),
    );
    const names = new Set(shards.map((s) => s.metadata.name));
    for (const k of [...this.lastWritten.keys()]) if (!names.has(k)) this.lastWritten.delete(k);
    // shards' statuses are apart: written side by side, one round trip for all
    await Promise.all(shards.map((obj, k) => this.writeStatus(obj, parts[k]!, counters, now)));
  }

  /** Each tunnel's receive counters, where the backend keeps them (a failed read: none). */
  private async tunnelCounters(report: ReconcileReport): Promise<Map<number, TunnelCounters>> {
    const out = new Map<number, TunnelCounters>();
    const read = this.o.backend.tunnelCounters?.bind(this.o.backend);
    if (!read) return out;
    for (const t of report.tunnels) {
      const c = await read(t.tunnelId).catch(() => undefined);
      if (c) out.set(t.tunnelId, c);
    }
    return out;
  }

  /**
   * The last error and when it began: an error that each pass meets again keeps its time, so that
   * a session failing for good does not make the status differ, and be written, on every pass.
   */
  private noteError(message: string, now: Date): void {
    // after a clean pass the same error is a new one: its time says it came back
    if (!this.failing || this.lastError?.message !== message)
      this.lastError = { time: now.toISOString(), message };
    this.failing = true;
  }

  /** A pass that could not finish: logged, counted, and in status with the last known sessions. */
  private async failedPass(shards: L2TPNodeState[], error: string, now: Date): Promise<void> {
    this.o.logger.error({ err: error }, 'reconcile pass failed; the datapath stays as it is');
    this.o.metrics.reconciles.inc({ result: 'error' });
    this.noteError(`reconcile failed: ${error}`, now);
    const last = this.lastReport ?? { tunnels: [], sessions: [], removed: [], conflicts: [] };
    const parts = splitReport(
      last,
      shards.map((s) => s.spec),
    );
    const counters = await this.o.backend.allCounters().catch(() => new Map<string, SessionCounters>());
    await Promise.all(
      shards.map((obj, k) => this.writeStatus(obj, parts[k]!, counters, now, `reconcile failed: ${error}`)),
    );
  }

  /** One shard's status, written when it changed or its counters are due. */
  private async writeStatus(
    obj: L2TPNodeState,
    report: ReconcileReport,
    counters: Map<string, SessionCounters>,
    now: Date,
    failure?: string,
  ): Promise<void> {
    const name = obj.metadata.name;
    const status = buildStatus({
      failure,
      generation: obj.metadata.generation,
      backend: this.o.backend.kind,
      backendReason: this.o.backendReason,
      agentVersion: this.o.version,
      report,
      counters,
      lastError: this.lastError,
      now: now.toISOString(),
      previous: obj.status?.conditions,
    });
    const last = this.lastWritten.get(name);
    const countersDue =
      hasCounters(status) && now.getTime() - (last?.at ?? 0) >= (this.o.counterIntervalMs ?? 30_000);
    if (!statusChanged(last?.status ?? obj.status, status) && !countersDue) return;
    try {
      await this.o.source.writeStatus(name, status);
      this.lastWritten.set(name, { status, at: now.getTime() });
    } catch (e) {
      this.o.logger.warn(
        { err: String(e), nodeState: name },
        'status write failed; retrying on the next pass',
      );
    }
  }

  /** Attached pods to their session's MTU; a failure of the whole step is logged, not the pass's. */
  private async syncPodMtu(
    targets: PodMtuTarget[],
    phase: PodMtuPhase,
  ): Promise<ReadonlyMap<string, PodMtuProblem[]>> {
    if (!this.o.syncPodMtu) return new Map();
    return this.o.syncPodMtu(targets, phase).catch((e: unknown) => {
      this.o.logger.warn({ err: String(e), phase }, "could not bring attached pods to their session's MTU");
      return new Map();
    });
  }

  /** Pods that kept their MTU show in their session's status (its message; its state stays). */
  private notePodMtu(report: ReconcileReport, problems: ReadonlyMap<string, PodMtuProblem[]>): void {
    for (const s of report.sessions) {
      const note = s.pseudowire && podMtuMessage(problems.get(pwRefKey(s.pseudowire)) ?? []);
      if (note) s.error = s.error !== undefined ? `${s.error}; ${note}` : note;
    }
  }

  private async rejoinBridges(now: ReconcileReport): Promise<void> {
    await this.o.rejoinBridges?.(
      now.sessions.flatMap((s) =>
        s.pseudowire && s.state !== 'Error'
          ? [{ pseudowire: s.pseudowire, ifname: s.ifname, sessionId: s.sessionId }]
          : [],
      ),
      (s, e) =>
        this.o.logger.warn(
          { pseudowire: s.pseudowire, ifname: s.ifname, err: String(e) },
          'could not return the session device to its attachment bridge',
        ),
    );
  }

  private async releaseGone(before: ReconcileReport | undefined, now: ReconcileReport): Promise<void> {
    if (!before || !this.o.onPseudowireGone) return;
    const key = (r: PseudowireRef) => `${r.namespace}/${r.name}`;
    const still = new Set(now.sessions.flatMap((s) => (s.pseudowire ? [key(s.pseudowire)] : [])));
    for (const s of before.sessions) {
      if (!s.pseudowire || still.has(key(s.pseudowire))) continue;
      await this.o
        .onPseudowireGone(s.pseudowire, s.sessionId)
        .catch((e: unknown) =>
          this.o.logger.warn(
            { pseudowire: s.pseudowire, err: String(e) },
            'could not release the attachment bridge',
          ),
        );
    }
  }

  /**
   * The node's shards from the API, not the watch (the SIGTERM handler asks what to leave behind: the
   * uninstall mark or the deletion comes moments before the pod's, and its watch event may not have
   * arrived yet).
   */
  nodeShards(): Promise<L2TPNodeState[]> {
    return this.o.source.get({ fresh: true });
  }

  /**
   * Uninstall, or a node that carries nothing any more: stop reconciling and remove every tunnel,
   * session and device this agent made, and the attachment bridges of its pseudowires that no pod
   * uses any more.
   */
  async teardown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.o.source.stop();
    await this.running;
    for (const s of this.lastReport?.sessions ?? []) {
      if (!s.pseudowire || !this.o.onPseudowireGone) continue;
      await this.o
        .onPseudowireGone(s.pseudowire, s.sessionId)
        .catch((e: unknown) =>
          this.o.logger.warn({ pseudowire: s.pseudowire, err: String(e) }, 'attachment bridge stays'),
        );
    }
    await this.o.backend.close({ keepDevices: false });
  }

  /**
   * SIGTERM: stop reconciling and leave every device in place, so a rolling update of the agent
   * never cuts pods off; the next agent adopts them.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.o.source.stop();
    await this.running;
    await this.o.backend.close({ keepDevices: true });
  }
}
