// Which attached pods need a changed session MTU, and in what order their links change. Pure: the
// CNI side (datapath/cni/pod-mtu.ts) reads the node and the pods and applies the plan.
//
// A pass runs it twice. Before the backend changes any session device ("lower"): the pods whose MTU
// goes down, so that a pod stops sending frames the smaller session would drop before the session
// shrinks. After the backend ("all"): every pod that still differs, raised ones included, so that a
// pod sends larger frames only once the path behind it carries them. In Bridge mode the host end
// of the pod's veth receives what the pod sends: it grows before the pod's end and shrinks after it.
// The bridge is left to the kernel, which keeps it at the smallest MTU of its ports.
import type { PseudowireRef } from '../../lib/agent-protocol.js';
import type { AttachmentRecord } from '../cni/state.js';
import type { DesiredState, ReconcileReport } from './reconcile.js';

export type PodMtuPhase = 'lower' | 'all';

/** A session's MTU, by the pseudowire whose pods attach to it. */
export interface PodMtuTarget {
  pseudowire: PseudowireRef;
  /** The session device's node-side name (Exclusive mode: the device the pod holds). */
  ifname: string;
  mtu: number;
}

/** One attachment to change: the links in order, each brought to `mtu`. */
export interface PodMtuStep {
  mtu: number;
  /** "host": the node end of the pod's veth (Bridge mode); "pod": the pod's interface. */
  order: readonly ('host' | 'pod')[];
  /** The record afterwards: the pod's MTU, and in Exclusive mode the session's (DEL restores it). */
  record: AttachmentRecord;
}

/** Brings attached pods to their session's MTU; returns why some could not be, by pwRefKey. */
export type SyncPodMtu = (
  targets: readonly PodMtuTarget[],
  phase: PodMtuPhase,
) => Promise<ReadonlyMap<string, PodMtuProblem[]>>;

export interface PodMtuProblem {
  /** The MTU the pod keeps for now (as last known), and the one it should have. */
  has?: number;
  wants: number;
  why: string;
}

export const pwRefKey = (r: PseudowireRef): string => `${r.namespace}/${r.name}`;

/** Before the backend's pass: the sessions it is about to set up, with the MTU they will get. */
export function desiredTargets(desired: DesiredState): PodMtuTarget[] {
  return desired.tunnels.flatMap((t) =>
    t.sessions.flatMap((s) =>
      s.pseudowire && s.refused === undefined
        ? [{ pseudowire: s.pseudowire, ifname: s.ifname, mtu: s.mtu }]
        : [],
    ),
  );
}

/** After it: the sessions it holds (a failed one leaves its pods as they are). */
export function reportTargets(report: ReconcileReport): PodMtuTarget[] {
  return report.sessions.flatMap((s) =>
    s.pseudowire && s.state !== 'Error' ? [{ pseudowire: s.pseudowire, ifname: s.ifname, mtu: s.mtu }] : [],
  );
}

/** The MTU a pod should have: the session's, or its network config's own when that is smaller. */
export const podTarget = (rec: AttachmentRecord, sessionMtu: number): number =>
  rec.configMtu !== undefined ? Math.min(rec.configMtu, sessionMtu) : sessionMtu;

/**
 * The step one attachment needs, or undefined when it needs none (or none in this phase).
 * hostVethMtu: the node end of a Bridge-mode pod's veth as the node has it now (undefined: there is
 * none, so neither is the pod's end: the pod went and its DEL is to come).
 */
export function planPodMtu(
  rec: AttachmentRecord,
  session: PodMtuTarget,
  hostVethMtu: number | undefined,
  phase: PodMtuPhase,
): PodMtuStep | undefined {
  const mtu = podTarget(rec, session.mtu);
  const bridge = rec.mode === 'bridge';
  if (bridge && hostVethMtu === undefined) return undefined;
  // Exclusive mode: the pod holds that session's device; another one's (the pseudowire moved to a
  // new session) goes with its session
  if (!bridge && rec.device !== session.ifname) return undefined;
  const staleDevice = !bridge && rec.deviceMtu !== undefined && rec.deviceMtu !== session.mtu;
  if (rec.mtu === mtu && (!bridge || hostVethMtu === mtu) && !staleDevice) return undefined;
  const has = rec.mtu ?? hostVethMtu;
  const lowering = has !== undefined && mtu < has;
  // before the backend only what shrinks: anything else waits for the path to carry it
  if (phase === 'lower' && !lowering) return undefined;
  return {
    mtu,
    order: !bridge ? ['pod'] : lowering ? ['pod', 'host'] : ['host', 'pod'],
    record: { ...rec, mtu, ...(bridge ? {} : { deviceMtu: session.mtu }) },
  };
}

/**
 * What a session's status says about its pods that kept their MTU: how many, which MTU, and the
 * first reason. Names no pod: the Pseudowire's status is read by its tenant, who may share it.
 */
export function podMtuMessage(problems: readonly PodMtuProblem[]): string | undefined {
  const first = problems[0];
  if (!first) return undefined;
  const n = problems.length;
  const pods = n === 1 ? '1 attached pod keeps' : `${n} attached pods keep`;
  const has = first.has !== undefined ? `MTU ${first.has}` : 'its MTU';
  return `${pods} ${has} instead of ${first.wants}: ${first.why}`;
}
