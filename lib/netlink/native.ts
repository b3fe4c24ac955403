// Loads the native netlink socket (native/netlink_socket.c, built by scripts/build-native.sh).
import { loadLibAddon } from '../native-addon.js';

export interface NativeNetlink {
  open(protocol: number): number;
  /** A socket created inside the network namespace at netnsPath (setns there and back, synchronously). */
  openIn(protocol: number, netnsPath: string): number;
  transact(fd: number, request: Buffer): Promise<Buffer[]>;
  close(fd: number): void;
}

/** The addon, from KUBE_L2TP_NETLINK_ADDON, or built beside the sources. */
export function loadNative(): NativeNetlink {
  return loadLibAddon<NativeNetlink>('netlink', 'netlink_socket.node', 'KUBE_L2TP_NETLINK_ADDON');
}
