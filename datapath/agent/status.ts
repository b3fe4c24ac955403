// What the agent reports in L2TPNodeState.status, built from a reconcile report and the backend's
// counters. Pure; the writer decides when to send it.
import { setReadyDegraded } from '../../lib/api/conditions.js';
import {
  MAX_SESSIONS_LISTED_IN_STATUS,
  MAX_SESSIONS_WITH_STATUS_COUNTERS,
  MAX_STATUS_MESSAGE_BYTES,
  MAX_UP_GROUPS_PER_TUNNEL,
} from '../../lib/api/limits.js';
import { formatIdRanges } from '../../lib/api/node-status.js';
import type { Condition, NodeSessionStatus, NodeStateSpec, NodeStateStatus } from '../../lib/api/schemas.js';
import { deepEqual } from '../../lib/deep-equal.js';
import { sessionKey, type BackendKind, type SessionCounters } from '../backend/types.js';
import type { ReconcileReport, SessionOutcome } from './reconcile.js';

export interface StatusInput {
  generation: number | undefined;
  backend: BackendKind;
  backendReason: string;
  agentVersion: string;
  report: ReconcileReport;
  counters: Map<string, SessionCounters>;
  lastError?: { time: string; message: string } | undefined;
  now: string;
  previous?: Condition[] | undefined;
  /** The pass could not finish (the backend's listing failed): report holds the last one that did. */
  failure?: string | undefined;
}

type StatusState = NodeSessionStatus['state'];
type UnlistedGroup = { ids: number[]; state: StatusState; message?: string };

const statusState = (s: SessionOutcome): StatusState => (s.state === 'Error' ? 'Failed' : s.state);

/**
 * On a node with more than MAX_SESSIONS_LISTED_IN_STATUS sessions: those Up as the spec says, per
 * tunnel and MTU; of the rest, at most MAX_SESSIONS_LISTED_IN_STATUS listed (those not Up first), and
 * the others per tunnel and state with the first one's message, so that a whole shard failing at
 * once still fits its object.
 */
function compact(report: ReconcileReport): {
  up: Map<number, Map<number, number[]>>;
  listed: SessionOutcome[];
  unlisted: Map<number, Map<StatusState, UnlistedGroup>>;
} {
  const up = new Map<number, Map<number, number[]>>();
  const unlisted = new Map<number, Map<StatusState, UnlistedGroup>>();
  if (report.sessions.length <= MAX_SESSIONS_LISTED_IN_STATUS)
    return { up, listed: report.sessions, unlisted };
  const rest: SessionOutcome[] = [];
  for (const s of report.sessions) {
    const groups = up.get(s.tunnelId) ?? new Map<number, number[]>();
    const group = groups.get(s.mtu) ?? (groups.size < MAX_UP_GROUPS_PER_TUNNEL ? [] : undefined);
    if (s.state !== 'Up' || s.error !== undefined || !group) {
      rest.push(s);
      continue;
    }
    group.push(s.sessionId);
    groups.set(s.mtu, group);
    up.set(s.tunnelId, groups);
  }
  const byConcern = [...rest.filter((s) => s.state !== 'Up'), ...rest.filter((s) => s.state === 'Up')];
  const listed = byConcern.slice(0, MAX_SESSIONS_LISTED_IN_STATUS);
  for (const s of byConcern.slice(MAX_SESSIONS_LISTED_IN_STATUS)) {
    const groups = unlisted.get(s.tunnelId) ?? new Map<StatusState, UnlistedGroup>();
    const state = statusState(s);
    const g = groups.get(state) ?? {
      ids: [],
      state,
      ...(s.error !== undefined ? { message: truncate(s.error, MAX_STATUS_MESSAGE_BYTES) } : {}),
    };
    g.ids.push(s.sessionId);
    groups.set(state, g);
    unlisted.set(s.tunnelId, groups);
  }
  return { up, listed, unlisted };
}

/**
 * The conflicts in one condition message: all of them while they are few, else the first and how
 * many more (each session that clashes also says so in its own entry). A message over the
 * condition's limit would have the API server refuse the whole status.
 */
function conflictsMessage(conflicts: readonly string[]): string {
  const all = conflicts.join('; ');
  if (Buffer.byteLength(all) <= MAX_STATUS_MESSAGE_BYTES) return all;
  const more = ` (and ${conflicts.length - 1} more)`;
  return truncate(conflicts[0]!, MAX_STATUS_MESSAGE_BYTES - Buffer.byteLength(more)) + more;
}

/** At most `max` UTF-8 bytes, cut at a character boundary, "…" marking the cut. */
function truncate(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let out = '';
  let bytes = Buffer.byteLength('…');
  for (const ch of text) {
    bytes += Buffer.byteLength(ch);
    if (bytes > max) break;
    out += ch;
  }
  return `${out}…`;
}

export function buildStatus(i: StatusInput): NodeStateStatus {
  const total = i.report.sessions.length;
  const withCounters = total <= MAX_SESSIONS_WITH_STATUS_COUNTERS;
  const { up, listed, unlisted } = compact(i.report);
  const sessions: NodeSessionStatus[] = listed.map((s) => {
    const c = withCounters ? i.counters.get(sessionKey(s.tunnelId, s.sessionId)) : undefined;
    return {
      pseudowire: s.pseudowire ?? { namespace: '', name: '' },
      tunnelId: s.tunnelId,
      sessionId: s.sessionId,
      ifname: s.ifname,
      state: statusState(s),
      mtu: s.mtu,
      ...(s.error !== undefined ? { message: s.error } : {}),
      ...(c ? { counters: { ...c, drops: { ...c.drops } as Record<string, number> } } : {}),
    };
  });
  const failed = sessions.filter((s) => s.state === 'Failed' || s.state === 'Down');
  const failedUnlisted = [...unlisted.values()]
    .flatMap((g) => [...g.values()])
    .filter((g) => g.state === 'Failed' || g.state === 'Down')
    .reduce((n, g) => n + g.ids.length, 0);
  const failedTunnels = i.report.tunnels.filter((t) => t.state !== 'Up');
  const outage = i.report.tunnels.find((t) => t.state === 'Down');
  const ready = failed.length === 0 && failedUnlisted === 0 && failedTunnels.length === 0;
  const conditions = i.failure
    ? setReadyDegraded(
        i.previous,
        { status: 'False', reason: 'ReconcileFailed', message: i.failure },
        { status: 'True', reason: 'ReconcileFailed', message: i.failure },
        i.generation,
        i.now,
      )
    : readyDegraded(i, { ready, outage, failed, failedUnlisted, failedTunnels, total });
  return {
    ...(i.generation !== undefined ? { observedGeneration: i.generation } : {}),
    backend: i.backend,
    backendReason: i.backendReason,
    agentVersion: i.agentVersion,
    tunnels: i.report.tunnels.map((t) => ({
      name: t.name ?? String(t.tunnelId),
      tunnelId: t.tunnelId,
      state: t.state === 'Up' ? 'Ready' : 'Failed',
      ...(t.error !== undefined ? { message: t.error } : {}),
      ...(up.has(t.tunnelId)
        ? {
            up: [...up.get(t.tunnelId)!].map(([mtu, ids]) => ({ sessionIds: formatIdRanges(ids), mtu })),
          }
        : {}),
      ...(unlisted.has(t.tunnelId)
        ? {
            unlisted: [...unlisted.get(t.tunnelId)!.values()].map((g) => ({
              sessionIds: formatIdRanges(g.ids),
              state: g.state,
              ...(g.message !== undefined ? { message: g.message } : {}),
            })),
          }
        : {}),
    })),
    sessions,
    ...(i.lastError ? { lastError: i.lastError } : {}),
    conditions,
  };
}

/** Ready and Degraded from a pass that finished. */
function readyDegraded(
  i: StatusInput,
  o: {
    ready: boolean;
    outage: ReconcileReport['tunnels'][number] | undefined;
    failed: NodeSessionStatus[];
    failedUnlisted: number;
    failedTunnels: ReconcileReport['tunnels'];
    total: number;
  },
): Condition[] {
  const { ready, outage, failed, failedUnlisted, failedTunnels, total } = o;
  return setReadyDegraded(
    i.previous,
    {
      status: ready ? 'True' : 'False',
      reason: ready ? 'Reconciled' : outage ? 'UnderlayDown' : 'SessionsFailed',
      message: ready
        ? `${total} sessions up on the ${i.backend} backend`
        : (outage?.error ??
          `${failed.length + failedUnlisted + failedTunnels.length} of ${total + i.report.tunnels.length} items failed`),
    },
    {
      status: i.report.conflicts.length > 0 || !ready ? 'True' : 'False',
      reason:
        i.report.conflicts.length > 0
          ? 'ForeignDevice'
          : ready
            ? 'AsExpected'
            : outage
              ? 'UnderlayDown'
              : 'SessionsFailed',
      message:
        conflictsMessage(i.report.conflicts) ||
        (ready ? 'no problems' : (outage?.error ?? failed[0]?.message ?? 'tunnel failed')),
    },
    i.generation,
    i.now,
  );
}

/**
 * Whether a new status is worth a write: anything but counters changed, or counters are older
 * than the counter interval. Keeps a busy node from flooding the API server.
 */
export function statusChanged(a: NodeStateStatus | undefined, b: NodeStateStatus): boolean {
  if (!a) return true;
  const strip = (s: NodeStateStatus) => ({
    ...s,
    sessions: s.sessions?.map(({ counters: _c, ...rest }) => rest),
  });
  return !deepEqual(strip(a), strip(b));
}

/** Whether a status carries per-session counters (only those make a write due with time alone). */
export const hasCounters = (s: NodeStateStatus): boolean => (s.sessions ?? []).some((x) => x.counters);

/**
 * The report of one pass split by shard (lib/api/node-shards.ts): each shard's status reports the
 * tunnels and sessions its spec names; shard 0 also takes what no shard names (a session being
 * removed) and the conflicts. One shard gets the report as it is.
 */
export function splitReport(
  report: ReconcileReport,
  specs: (NodeStateSpec | undefined)[],
): ReconcileReport[] {
  if (specs.length <= 1) return [report];
  const sessionOf = new Map<string, number>();
  const inShards = specs.map(() => new Set<number>());
  specs.forEach((spec, k) => {
    for (const t of spec?.tunnels ?? []) {
      inShards[k]!.add(t.tunnelId);
      for (const s of t.sessions) sessionOf.set(sessionKey(t.tunnelId, s.sessionId), k);
    }
  });
  const parts = specs.map((_, k) => ({
    tunnels: [] as ReconcileReport['tunnels'],
    sessions: [] as ReconcileReport['sessions'],
    removed: k === 0 ? report.removed : [],
    conflicts: k === 0 ? report.conflicts : [],
  }));
  for (const t of report.tunnels) {
    let any = false;
    inShards.forEach((ids, k) => {
      if (ids.has(t.tunnelId)) {
        parts[k]!.tunnels.push(t);
        any = true;
      }
    });
    if (!any) parts[0]!.tunnels.push(t);
  }
  for (const s of report.sessions)
    parts[sessionOf.get(sessionKey(s.tunnelId, s.sessionId)) ?? 0]!.sessions.push(s);
  return parts;
}
