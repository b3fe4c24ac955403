// Loads the native netlink socket (native/netlink_socket.c, built by scripts/build-native.sh).
import { loadLibAddon } from '../native-addon.js';

export interface NativeNetlink {
  open(protocol: number): number;
  /**
   * A socket created inside a network namespace, given as a path or as an open descriptor of it
   * (setns there and back, synchronously). A descriptor stays the caller's to close.
   */
  openIn(protocol: number, netns: string | number): number;
  transact(fd: number, request: Buffer): Promise<Buffer[]>;
  close(fd: number): void;
  /**
   * Reads one newline-terminated request from a unix stream socket with the descriptors sent beside
   * it (SCM_RIGHTS, received close-on-exec); the caller owns and closes them. Rejects on timeout.
   */
  recvRequest(fd: number, maxBytes: number, timeoutMs: number): Promise<RecvdRequest>;
}

export interface RecvdRequest {
  /** Bytes up to and including the first newline (or all, at end of stream). */
  data: Buffer;
  fds: number[];
  /** The peer closed its side before a newline came. */
  eof: boolean;
  /** Who connected (SO_PEERCRED); absent when the kernel would not say. */
  peerUid?: number;
  peerPid?: number;
}

/** The addon, from KUBE_L2TP_NETLINK_ADDON, or built beside the sources. */
export function loadNative(): NativeNetlink {
  return loadLibAddon<NativeNetlink>('netlink', 'netlink_socket.node', 'KUBE_L2TP_NETLINK_ADDON');
}
