// Loads the eBPF backend's N-API loader (native/, built by scripts/build-native.sh with the tc
// programs embedded) and types its surface.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../lib/native-addon.js';

export const PROG_NAMES = ['l2tp_rx', 'l2tp_tx_egress', 'l2tp_tx_ingress'] as const;
export type ProgName = (typeof PROG_NAMES)[number];
export const MAP_NAMES = ['tx_cfg', 'tun_map', 'rx_sess', 'sess_stats', 'tun_stats', 'seq_state'] as const;
export type MapName = (typeof MAP_NAMES)[number];

export interface OpenResult {
  /** Every program and map was already pinned: nothing was loaded. */
  adopted: boolean;
  progs: Record<ProgName, number>;
  maps: Record<MapName, number>;
}

export interface EbpfNative {
  /** Adopts the pinned set under pinDir, or loads the programs and pins them there. */
  open(pinDir: string): OpenResult;
  mapUpdate(fd: number, key: Buffer, value: Buffer): void;
  /** false when the key was absent. */
  mapDelete(fd: number, key: Buffer): boolean;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | undefined;
  /** Every entry (BPF_MAP_LOOKUP_BATCH): the keys and the values, each packed side by side. */
  mapEntries(fd: number, keySize: number, valueSize: number): { keys: Buffer; values: Buffer };
  progId(fd: number): number;
  closeFd(fd: number): void;
  /** Run counts and run times of every program (bpftool prog show) until the returned fd closes. */
  enableStats(): number;
  setOffloads(ifname: string, o: { tso?: boolean; gso?: boolean; gro?: boolean; txcsum?: boolean }): void;
  /** Up to `count` rx and tx queues (the device's maximum caps it); the counts it has afterwards. */
  setChannels(ifname: string, count: number): { rx: number; tx: number };
}

export const addonPath = (): string =>
  join(packageRoot(), 'datapath', 'backend', 'ebpf', 'native', 'build', 'Release', 'l2tp_bpf.node');

let cached: EbpfNative | undefined;

export function loadEbpfNative(): EbpfNative {
  if (cached) return cached;
  const file = addonPath();
  if (!existsSync(file)) {
    throw new Error(`eBPF loader not built (${file} missing): run "npm install" or scripts/build-native.sh`);
  }
  cached = createRequire(import.meta.url)(file) as EbpfNative;
  return cached;
}

/** Number of possible CPUs: per-CPU map values hold one slot per possible CPU. */
export function possibleCpus(): number {
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  let n = 0;
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** A map's entries as [key, value] pairs (views into one read of the whole map). */
export function mapEntries(
  native: Pick<EbpfNative, 'mapEntries'>,
  fd: number,
  keySize: number,
  valueSize: number,
): [key: Buffer, value: Buffer][] {
  const { keys, values } = native.mapEntries(fd, keySize, valueSize);
  const n = keys.length / keySize;
  return Array.from({ length: n }, (_, i) => [
    keys.subarray(i * keySize, (i + 1) * keySize),
    values.subarray(i * valueSize, (i + 1) * valueSize),
  ]);
}
