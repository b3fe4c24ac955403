// status.conditions the Kubernetes way, for every object kube-l2tp writes (the operator's tunnels
// and pseudowires, the agent's node states): a condition's lastTransitionTime moves only when its
// status does, and every object reports Ready and Degraded.
import type { Condition } from './schemas.js';

/** When the condition last changed status: kept while it stays, `now` when it changes. */
function transitionTime(prev: Condition | undefined, status: Condition['status'], now: string): string {
  return prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
}

/** The list with `c` set (replacing the condition of its type, or appended). */
export function setCondition(
  conds: Condition[] | undefined,
  c: Omit<Condition, 'lastTransitionTime'>,
  now: string,
): Condition[] {
  const list = [...(conds ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  const next: Condition = { ...c, lastTransitionTime: transitionTime(list[i], c.status, now) };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

export interface ConditionState {
  status: Condition['status'];
  reason: string;
  message: string;
}

/** Ready and Degraded together, both stamped with the generation they describe (when it is known). */
export function setReadyDegraded(
  conds: Condition[] | undefined,
  ready: ConditionState,
  degraded: ConditionState,
  observedGeneration: number | undefined,
  now: string,
): Condition[] {
  const gen = observedGeneration !== undefined ? { observedGeneration } : {};
  return setCondition(
    setCondition(conds, { type: 'Ready', ...ready, ...gen }, now),
    { type: 'Degraded', ...degraded, ...gen },
    now,
  );
}
