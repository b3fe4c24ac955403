// One level-triggered pass: make the backend hold exactly the desired tunnels and sessions.
// Acts on what the backend reports now, never on the event that woke us, so running it twice is
// harmless and a device deleted by hand is recreated on the next pass. Only objects carrying our
// ownership marker are ever removed; a foreign device in our way is reported, not destroyed.
import type { Logger } from '../../lib/log.js';
import type { AttachMode, PseudowireRef } from '../../lib/agent-protocol.js';
import {
  ForeignObjectError,
  type Backend,
  type ObservedSession,
  type SessionSpec,
  type TunnelSpec,
} from '../backend/types.js';

/** Who may attach to a session's device and how (the CNI plugin's answer, from the Pseudowire). */
export interface AttachPolicy {
  mode: AttachMode;
  allowedNamespaces?: readonly string[];
}

export interface DesiredSession extends SessionSpec {
  pseudowire?: PseudowireRef;
  /** Why the session is not set up (e.g. an MTU the underlay cannot carry): reported, nothing changes. */
  refused?: string;
  attach?: AttachPolicy;
}

export interface DesiredTunnel {
  /** The L2TPTunnel this comes from (status is reported under this name). */
  name?: string;
  spec: TunnelSpec;
  sessions: DesiredSession[];
}

export interface DesiredState {
  tunnels: DesiredTunnel[];
}

export type ItemState = 'Up' | 'Down' | 'Error';

export interface SessionOutcome {
  tunnelId: number;
  sessionId: number;
  ifname: string;
  mtu: number;
  state: ItemState;
  error?: string;
  pseudowire?: PseudowireRef;
  attach?: AttachPolicy;
}

export interface TunnelOutcome {
  name?: string;
  tunnelId: number;
  state: ItemState;
  error?: string;
}

export interface ReconcileReport {
  tunnels: TunnelOutcome[];
  sessions: SessionOutcome[];
  /** Objects removed because they are ours and no longer desired. */
  removed: string[];
  /** Things in the way that we did not make (reported, left alone). */
  conflicts: string[];
}

const key = (t: number, s: number) => `${t}/${s}`;
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export interface ReconcileOptions {
  /** Reports an unusable underlay for a tunnel (link down, no route); its sessions show Down. */
  probeUnderlay?: (local: string, remote: string) => Promise<string | undefined>;
  /** Why a session that does not exist yet may not be made now (memory); undefined when it may. */
  refuseNewSession?: () => string | undefined;
  /**
   * Tunnels known to be ours although the backend may not say so: a kernel tunnel has no marker, and
   * after a restart one without sessions reads as another's. Removed like owned ones when not desired.
   */
  ownedTunnels?: ReadonlySet<number>;
}

export async function reconcile(
  backend: Backend,
  desired: DesiredState,
  log: Logger,
  opts: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const report: ReconcileReport = { tunnels: [], sessions: [], removed: [], conflicts: [] };
  const wantSessions = new Map<string, DesiredSession>();
  for (const t of desired.tunnels)
    for (const s of t.sessions) wantSessions.set(key(t.spec.tunnelId, s.sessionId), s);
  const wantTunnels = new Set(desired.tunnels.map((t) => t.spec.tunnelId));

  const [observedTunnels, observedSessions] = await Promise.all([
    backend.listTunnels(),
    backend.listSessions(),
  ]);

  // Remove what we own and no longer want: sessions first (the kernel refuses to leave orphans),
  // all at once where the backend can.
  const unwanted = observedSessions.filter((s) => s.owned && !wantSessions.has(key(s.tunnelId, s.sessionId)));
  if (backend.deleteSessions && unwanted.length > 1) await removeSessions(backend, unwanted, report, log);
  else for (const s of unwanted) await removeSession(backend, s, report, log);
  for (const t of observedTunnels) {
    if (!(t.owned || opts.ownedTunnels?.has(t.tunnelId)) || wantTunnels.has(t.tunnelId)) continue;
    try {
      await backend.deleteTunnel(t.tunnelId);
      report.removed.push(`tunnel ${t.tunnelId}`);
      log.info({ tunnelId: t.tunnelId }, 'removed tunnel no longer desired');
    } catch (e) {
      log.error({ tunnelId: t.tunnelId, err: message(e) }, 'could not remove tunnel');
    }
  }

  // A device with one of our names that we did not make stays, and that session reports the clash.
  const foreignByName = new Map<string, ObservedSession>();
  for (const s of observedSessions) if (!s.owned) foreignByName.set(s.ifname, s);
  const ours = new Set(observedSessions.filter((s) => s.owned).map((s) => key(s.tunnelId, s.sessionId)));
  const refused = { count: 0, why: '' };

  for (const t of desired.tunnels) {
    const tunnelId = t.spec.tunnelId;
    let underlay: string | undefined;
    try {
      await backend.ensureTunnel(t.spec);
      underlay = await opts.probeUnderlay?.(t.spec.local, t.spec.remote).catch(() => undefined);
      if (underlay) log.warn({ tunnelId, problem: underlay }, 'underlay outage');
      report.tunnels.push({
        ...named(t),
        tunnelId,
        state: underlay ? 'Down' : 'Up',
        ...(underlay ? { error: underlay } : {}),
      });
    } catch (e) {
      const error = message(e);
      if (e instanceof ForeignObjectError) report.conflicts.push(error);
      report.tunnels.push({ ...named(t), tunnelId, state: 'Error', error });
      log.error({ tunnelId, err: error }, 'tunnel failed');
      for (const s of t.sessions)
        report.sessions.push(outcome(t, s, 'Error', `tunnel ${tunnelId}: ${error}`));
      continue;
    }
    for (const s of t.sessions) {
      if (s.refused !== undefined) {
        report.sessions.push(outcome(t, s, 'Error', s.refused));
        continue;
      }
      const clash = foreignByName.get(s.ifname);
      if (clash) {
        const error = `interface ${s.ifname} exists and was not created by kube-l2tp; left alone`;
        report.conflicts.push(error);
        report.sessions.push(outcome(t, s, 'Error', error));
        continue;
      }
      // a refusal stands for the rest of the pass: making sessions only adds to what it measured
      const refusal = ours.has(key(tunnelId, s.sessionId))
        ? undefined
        : refused.why || opts.refuseNewSession?.();
      if (refusal !== undefined) {
        report.sessions.push(outcome(t, s, 'Error', refusal));
        refused.count++;
        refused.why = refusal;
        continue;
      }
      try {
        // sessions are kept configured through an outage, so traffic resumes when the underlay does
        await backend.ensureSession(s);
        report.sessions.push(underlay ? outcome(t, s, 'Down', underlay) : outcome(t, s, 'Up'));
      } catch (e) {
        const error = message(e);
        if (e instanceof ForeignObjectError) report.conflicts.push(error);
        report.sessions.push(outcome(t, s, 'Error', error));
        log.error({ tunnelId, sessionId: s.sessionId, err: error }, 'session failed');
      }
    }
  }
  if (refused.count) log.warn({ sessions: refused.count, why: refused.why }, 'new sessions not made');
  return report;
}

const named = (t: DesiredTunnel) => (t.name !== undefined ? { name: t.name } : {});

function outcome(t: DesiredTunnel, s: DesiredSession, state: ItemState, error?: string): SessionOutcome {
  return {
    tunnelId: t.spec.tunnelId,
    sessionId: s.sessionId,
    ifname: s.ifname,
    mtu: s.mtu,
    state,
    ...(error !== undefined ? { error } : {}),
    ...(s.pseudowire ? { pseudowire: s.pseudowire } : {}),
    ...(s.attach ? { attach: s.attach } : {}),
  };
}

async function removeSession(backend: Backend, s: ObservedSession, report: ReconcileReport, log: Logger) {
  try {
    await backend.deleteSession(s.tunnelId, s.sessionId);
    report.removed.push(`session ${s.tunnelId}/${s.sessionId} (${s.ifname})`);
    log.info(
      { tunnelId: s.tunnelId, sessionId: s.sessionId, ifname: s.ifname },
      'removed session no longer desired',
    );
  } catch (e) {
    log.error({ tunnelId: s.tunnelId, sessionId: s.sessionId, err: message(e) }, 'could not remove session');
  }
}

async function removeSessions(
  backend: Backend,
  sessions: ObservedSession[],
  report: ReconcileReport,
  log: Logger,
) {
  try {
    await backend.deleteSessions!(sessions.map((s) => ({ tunnelId: s.tunnelId, sessionId: s.sessionId })));
    for (const s of sessions) report.removed.push(`session ${s.tunnelId}/${s.sessionId} (${s.ifname})`);
    log.info({ sessions: sessions.length }, 'removed sessions no longer desired');
  } catch (e) {
    // then one by one, so one that cannot go does not keep the others
    log.error({ sessions: sessions.length, err: message(e) }, 'could not remove sessions at once');
    for (const s of sessions) await removeSession(backend, s, report, log);
  }
}
