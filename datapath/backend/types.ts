// The contract between the node agent / static mode and a datapath backend (kernel, ebpf or userspace).
// Backends are level-triggered: ensureX creates or converges, deleteX of something absent succeeds.
import type { SessionParams, TunnelParams } from '../../lib/wire/session.js';

export const BACKEND_KINDS = ['kernel', 'ebpf', 'userspace'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** Where a session device went when the CNI moved it into a pod (exclusive mode). */
export interface PodDevice {
  /** The pod's network namespace (a path). */
  netns: string;
  /** Its name there (the pod's interface name). */
  ifname: string;
}

/** What every backend factory receives. Faults are reported through onFault, never swallowed. */
export interface BackendOptions {
  logger: import('../../lib/log.js').Logger;
  onFault?: (f: BackendFault) => void;
  /**
   * The pod a session device (by its node-side name) was moved into, from the CNI's attachment
   * records. A backend whose devices need this process (the userspace TAPs) finds them there after a
   * restart; absent in static mode, which attaches no pods.
   */
  podDevice?: (ifname: string) => Promise<PodDevice | undefined>;
  /**
   * Where the datapath pod mounts the runtime's network namespaces (the chart's cni.netnsDir), named
   * when a pod's namespace cannot be opened; unknown for an agent run on a host.
   */
  netnsDir?: string;
}

export type TunnelSpec = TunnelParams;

export interface SessionSpec extends SessionParams {
  tunnelId: number;
  /** Device name (l2tpethN by default). */
  ifname: string;
  /** MTU to set on the device; computed by the caller from the underlay when not configured. */
  mtu: number;
}

/** Why a received packet was dropped; every drop is counted under exactly one reason. */
export const DROP_REASONS = [
  'unknownSession',
  'badCookie',
  'truncated',
  'badVersion',
  'control',
  'sequence',
  'oversized',
  'badSource',
  'badChecksum',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface SessionCounters {
  txPackets: number;
  txBytes: number;
  txErrors: number;
  rxPackets: number;
  rxBytes: number;
  rxErrors: number;
  drops: Partial<Record<DropReason, number>>;
}

/** Per-tunnel receive counters: drops that happen before a session is known (unknown session,
 * truncated, bad version, control). */
export interface TunnelCounters {
  rxPackets: number;
  drops: Partial<Record<DropReason, number>>;
}

/** A datapath failure seen after setup (a pump thread stopped, a device vanished). */
export interface BackendFault {
  tunnelId: number;
  /** 0 when the fault concerns the whole tunnel. */
  sessionId: number;
  /** The tunnel stopped forwarding. */
  fatal: boolean;
  message: string;
}

export interface ObservedTunnel {
  tunnelId: number;
  /** Present when the backend can read the full parameters back (kernel dump, userspace state). */
  params?: TunnelParams;
  /** Created by kube-l2tp (ownership marker), as opposed to found on the node. */
  owned: boolean;
}

export interface ObservedSession {
  tunnelId: number;
  sessionId: number;
  ifname: string;
  ifindex?: number;
  up: boolean;
  mtu?: number;
  owned: boolean;
  params?: Partial<SessionParams>;
}

export interface SessionRef {
  tunnelId: number;
  sessionId: number;
}

/** How counter maps are keyed: "tunnelId/sessionId". */
export const sessionKey = (tunnelId: number, sessionId: number): string => `${tunnelId}/${sessionId}`;

export interface Backend {
  readonly kind: BackendKind;
  /** What exists now (for adoption and drift repair). */
  listTunnels(): Promise<ObservedTunnel[]>;
  listSessions(): Promise<ObservedSession[]>;
  ensureTunnel(spec: TunnelSpec): Promise<void>;
  deleteTunnel(tunnelId: number): Promise<void>;
  ensureSession(spec: SessionSpec): Promise<void>;
  deleteSession(tunnelId: number, sessionId: number): Promise<void>;
  /**
   * Many sessions at once, where the backend can do better than one by one (their devices go in one
   * rtnetlink request, which waits for the kernel once instead of once a device). Same contract as
   * deleteSession for each.
   */
  deleteSessions?(sessions: readonly SessionRef[]): Promise<void>;
  counters(tunnelId: number, sessionId: number): Promise<SessionCounters | undefined>;
  /** Every session's counters at once, keyed by sessionKey (the kernel backend: one netlink dump). */
  allCounters(): Promise<Map<string, SessionCounters>>;
  /** Tunnel-level receive counters, where the backend has them. */
  tunnelCounters?(tunnelId: number): Promise<TunnelCounters | undefined>;
  /**
   * Stop the backend. keepDevices: leave devices (persistent TAPs, kernel sessions) in place so a
   * restarted process adopts them (rolling update); otherwise remove everything this backend owns.
   */
  close(opts: { keepDevices: boolean }): Promise<void>;
}

/** Something in the way that kube-l2tp did not create: reported as a conflict, never removed. */
export class ForeignObjectError extends Error {
  override name = 'ForeignObjectError';
}

export class ForeignDeviceError extends ForeignObjectError {
  override name = 'ForeignDeviceError';
  constructor(
    readonly ifname: string,
    why: string,
  ) {
    super(`interface ${ifname} exists and was not created by kube-l2tp (${why}); left alone`);
  }
}
