// Loads the N-API pump (datapath/native, compiled at install time by node-gyp) and types its surface.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../lib/native-addon.js';
import type { SessionCounters } from '../types.js';

export interface PumpEvent {
  /** The tunnel's threads stopped: the tunnel no longer forwards. */
  fatal: boolean;
  /** 0 when the event concerns the tunnel socket. */
  sessionId: number;
  errno: number;
  message: string;
  /** Non-fatal events the rate limit dropped since the previous event (see datapath/native). */
  suppressed: number;
}

export interface NativeTunnelConfig {
  encap: 'udp' | 'ip';
  family: 4 | 6;
  local: string;
  remote: string;
  localPort?: number;
  remotePort?: number;
  udpChecksum: boolean;
}

export interface NativeSessionConfig {
  sessionId: number;
  peerSessionId: number;
  cookie?: Buffer;
  peerCookie?: Buffer;
  l2specLength: 0 | 4;
  sendSequence: boolean;
  requireSequence: boolean;
  tapFd: number;
  /** The TAP was opened with vnetHdr. */
  vnetHdr: boolean;
}

export interface NativeSessionCounters extends Omit<SessionCounters, 'drops'> {
  /** Indexed like DROP_REASONS. */
  drops: number[];
  /** The pump could no longer read the TAP (deleted from outside) and stopped polling it. */
  tapLost: boolean;
}

declare const tunnelBrand: unique symbol;
export type TunnelHandle = { readonly [tunnelBrand]: true };

export interface NativePump {
  /**
   * Creates the TAP (persistent only after setTapPersist) or reattaches to an existing one. vnetHdr:
   * IFF_VNET_HDR with checksum/TSO offload; otherwise every offload off.
   */
  openTap(name: string, vnetHdr: boolean): { fd: number; name: string };
  /**
   * Reattaches to the persistent TAP `name` in the network namespace at netnsPath (a pod's, where
   * the CNI moved it); throws (ENODEV) when there is none there, and leaves no TAP made by trying.
   */
  attachTapIn(netnsPath: string, name: string, vnetHdr: boolean): { fd: number; name: string };
  setTapPersist(fd: number, persist: boolean): void;
  closeFd(fd: number): void;
  createTunnel(cfg: NativeTunnelConfig, onEvent: (e: PumpEvent) => void): TunnelHandle;
  addSession(h: TunnelHandle, cfg: NativeSessionConfig): void;
  removeSession(h: TunnelHandle, sessionId: number, keepDevice: boolean): boolean;
  /** Events handed to onEvent, and non-fatal ones the rate limit or the bounded queue dropped. */
  eventStats(h: TunnelHandle): { delivered: number; suppressed: number };
  sessionCounters(h: TunnelHandle, sessionId: number): NativeSessionCounters | undefined;
  tunnelCounters(h: TunnelHandle): { rxPackets: number; drops: number[] };
  closeTunnel(h: TunnelHandle, keepDevices: boolean): void;
}

let cached: NativePump | undefined;

export function loadPump(): NativePump {
  if (cached) return cached;
  const file = join(packageRoot(), 'datapath', 'native', 'build', 'Release', 'l2tp_pump.node');
  if (!existsSync(file)) {
    throw new Error(`native pump not built (${file} missing): run "npm install" or scripts/build-native.sh`);
  }
  cached = createRequire(import.meta.url)(file) as NativePump;
  return cached;
}
