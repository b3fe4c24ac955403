// The sessions a node state's status reports, whichever form the agent wrote: listed one by one in
// status.sessions, or (a node with many sessions) as ranges of session IDs per tunnel in
// status.tunnels[].up, each meaning "Up, as the spec says", and status.tunnels[].unlisted, those
// not Up beyond the list, by state. Everything that reads an agent's per-session report goes
// through reportedSessions.
import type { L2TPNodeState, NodeSessionStatus } from './schemas.js';

/** "1-3,7,9-10" for [1, 2, 3, 7, 9, 10]; the IDs in any order, duplicates ignored. */
export function formatIdRanges(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The IDs of formatIdRanges' output; throws on anything else, or on a range of more than `max` IDs. */
export function parseIdRanges(s: string, max = 1 << 20): number[] {
  if (s === '') return [];
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^([1-9][0-9]{0,9})(?:-([1-9][0-9]{0,9}))?$/.exec(part);
    if (!m) throw new Error(`not a session ID range: "${part}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 0xffffffff) throw new Error(`not a session ID range: "${part}"`);
    if (out.length + (b - a + 1) > max) throw new Error(`more than ${max} session IDs`);
    for (let id = a; id <= b; id++) out.push(id);
  }
  return out;
}

/**
 * A session the agent reports. From a compact range, the interface and pseudowire come from the spec
 * of the same tunnel; pseudowire is absent for an ID the current spec no longer has (the agent has
 * not caught up with a removal yet).
 */
export type ReportedSession = Omit<NodeSessionStatus, 'pseudowire' | 'ifname'> & {
  pseudowire?: NodeSessionStatus['pseudowire'];
  ifname?: string;
};

/** Whether the agent has reported on the node state's current spec (its observed generation). */
export const caughtUp = (ns: L2TPNodeState | undefined): boolean =>
  ns?.status?.observedGeneration !== undefined &&
  ns.status.observedGeneration >= (ns.metadata.generation ?? 0);

/** An up or unlisted group of a tunnel's status, in one shape. */
interface Group {
  sessionIds: string;
  state: ReportedSession['state'];
  mtu?: number | undefined;
  message?: string | undefined;
}

export function reportedSessions(ns: L2TPNodeState | undefined): ReportedSession[] {
  const out: ReportedSession[] = [...(ns?.status?.sessions ?? [])];
  for (const t of ns?.status?.tunnels ?? []) {
    if (!t.up?.length && !t.unlisted?.length) continue;
    const spec = ns?.spec?.tunnels.find((x) => x.tunnelId === t.tunnelId);
    const byId = new Map((spec?.sessions ?? []).map((s) => [s.sessionId, s]));
    const groups: Group[] = [
      ...(t.up ?? []).map((g) => ({ ...g, state: 'Up' as const })),
      ...(t.unlisted ?? []),
    ];
    for (const g of groups) {
      let ids: number[];
      try {
        ids = parseIdRanges(g.sessionIds);
      } catch {
        continue; // the schema bounds the string; a malformed one reports nothing rather than fail the reader
      }
      const message = g.message !== undefined ? unlistedMessage(ids, g.message) : undefined;
      for (const sessionId of ids) {
        const s = byId.get(sessionId);
        out.push({
          tunnelId: t.tunnelId,
          sessionId,
          state: g.state,
          ...(g.mtu !== undefined ? { mtu: g.mtu } : {}),
          ...(message ? { message: message(sessionId) } : {}),
          ...(s ? { pseudowire: s.pseudowire, ifname: s.ifname } : {}),
        });
      }
    }
  }
  return out;
}

/** A group's message is its first session's own; the others are told whose it is. */
const unlistedMessage =
  (ids: number[], text: string) =>
  (id: number): string =>
    id === ids[0]
      ? text
      : `one of ${ids.length} sessions in this state that the node state does not list one by one; session ${ids[0]} says: ${text}`;
