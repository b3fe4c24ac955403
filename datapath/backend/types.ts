// The contract between the node agent / static mode and a datapath backend (kernel or userspace).
// Backends are level-triggered: ensureX creates or converges, deleteX of something absent succeeds.
import type { SessionParams, TunnelParams } from '../../lib/wire/session.js';

export type BackendKind = 'kernel' | 'userspace';

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

export interface Backend {
  readonly kind: BackendKind;
  /** What exists now (for adoption and drift repair). */
  listTunnels(): Promise<ObservedTunnel[]>;
  listSessions(): Promise<ObservedSession[]>;
  ensureTunnel(spec: TunnelSpec): Promise<void>;
  deleteTunnel(tunnelId: number): Promise<void>;
  ensureSession(spec: SessionSpec): Promise<void>;
  deleteSession(tunnelId: number, sessionId: number): Promise<void>;
  counters(tunnelId: number, sessionId: number): Promise<SessionCounters | undefined>;
  /**
   * Stop the backend. keepDevices: leave devices (persistent TAPs, kernel sessions) in place so a
   * restarted process adopts them (rolling update); otherwise remove everything this backend owns.
   */
  close(opts: { keepDevices: boolean }): Promise<void>;
}
