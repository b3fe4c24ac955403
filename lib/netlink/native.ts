// Loads the native netlink socket (native/netlink_socket.c, built by scripts/build-native.sh).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeNetlink {
  open(protocol: number): number;
  /** A socket created inside the network namespace at netnsPath (setns there and back, synchronously). */
  openIn(protocol: number, netnsPath: string): number;
  transact(fd: number, request: Buffer): Promise<Buffer[]>;
  close(fd: number): void;
}

const ADDON = join('native', 'build', 'Release', 'netlink_socket.node');

let cached: NativeNetlink | undefined;

/** The addon, from KUBE_L2TP_NETLINK_ADDON, beside this module (sources) or under lib/ (dist/). */
export function loadNative(): NativeNetlink {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.KUBE_L2TP_NETLINK_ADDON,
    join(here, ADDON),
    resolve(here, '..', '..', '..', 'lib', 'netlink', ADDON),
  ].filter((p): p is string => p !== undefined && p !== '');
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `netlink addon not built (looked in ${candidates.join(', ')}): run scripts/build-native.sh`,
    );
  }
  cached = createRequire(import.meta.url)(found) as NativeNetlink;
  return cached;
}
