// The CNI shim <-> node agent protocol, and the interface the agent implements for the CNI plugin.
//
// Transport: a unix stream socket (default /run/kube-l2tp/cni.sock; the network config key
// `agentSocket` may name another one under /run/kube-l2tp/, nothing else: the shim runs as root and
// the config is written by tenants). One request per connection:
//
//   shim  -> agent   one line: JSON CniRequest, then "\n"; the shim then half-closes (SHUT_WR).
//   agent -> shim    one line: JSON CniResponseHeader, then "\n", then exactly `stdoutBytes` bytes that
//                    the shim copies verbatim to its stdout before exiting with `exitCode`.
//
// The header is deliberately flat (two integers) so the C shim reads it without a JSON library.
// Version `v` is 1. A request with another version gets a CNI error (code 108) so an old shim and a
// new agent fail loudly rather than silently.
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;
/** The agent's own directory (root-owned): the only place a network config may point the shim. */
export const AGENT_SOCKET_DIR = '/run/kube-l2tp/';
export const DEFAULT_CNI_SOCKET = `${AGENT_SOCKET_DIR}cni.sock`;
/**
 * Beside the agent's socket: DEL requests the shim could not deliver (no agent listening). The shim
 * answers such a DEL with success, as it must, and leaves the request here (one file each, named
 * `del-*.req`, the request line without a netns); the agent serves them when it starts, so the
 * attachment's IPAM allocation and record are released after all.
 */
export const DEFERRED_DEL_DIR = 'deferred-del';

/** Why a config's agentSocket is refused (the shim's rule, cmd/cni/shim/config.c), or undefined. */
export function agentSocketProblem(path: string): string | undefined {
  const rest = path.startsWith(AGENT_SOCKET_DIR) ? path.slice(AGENT_SOCKET_DIR.length) : undefined;
  const ok =
    rest !== undefined &&
    Buffer.byteLength(path) < 108 &&
    rest.split('/').every((c) => c !== '' && c !== '.' && c !== '..');
  return ok ? undefined : `is not a path under ${AGENT_SOCKET_DIR}; remove it to use ${DEFAULT_CNI_SOCKET}`;
}
/** The CNI_* variables the shim forwards (everything the spec and skel define). */
export const FORWARDED_ENV = [
  'CNI_COMMAND',
  'CNI_CONTAINERID',
  'CNI_NETNS',
  'CNI_IFNAME',
  'CNI_ARGS',
  'CNI_PATH',
  'CNI_NETNS_OVERRIDE',
] as const;

export const cniRequestSchema = z.object({
  v: z.number().int(),
  /** The CNI_* environment of the plugin invocation (only the FORWARDED_ENV keys). */
  env: z.record(z.string(), z.string()),
  /** The plugin's stdin, verbatim (the request config). */
  stdin: z.string(),
});
export type CniRequest = z.infer<typeof cniRequestSchema>;

export const cniResponseHeaderSchema = z.object({
  v: z.number().int(),
  exitCode: z.number().int().min(0).max(255),
  stdoutBytes: z.number().int().min(0),
});
export type CniResponseHeader = z.infer<typeof cniResponseHeaderSchema>;

export function encodeResponse(exitCode: number, stdout: string): Buffer {
  const body = Buffer.from(stdout, 'utf8');
  const header: CniResponseHeader = { v: PROTOCOL_VERSION, exitCode, stdoutBytes: body.length };
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), body]);
}

export function decodeResponse(buf: Buffer): { header: CniResponseHeader; stdout: string } {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) throw new Error('agent response: no header line');
  let raw: unknown;
  try {
    raw = JSON.parse(buf.subarray(0, nl).toString());
  } catch (e) {
    throw new Error(`agent response: header is not JSON (${(e as Error).message})`);
  }
  const parsed = cniResponseHeaderSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new Error(
      `agent response: bad header: ${i ? `${i.path.join('.') || '(header)'}: ${i.message}` : 'invalid'}`,
    );
  }
  const header = parsed.data;
  const body = buf.subarray(nl + 1);
  if (body.length !== header.stdoutBytes) {
    throw new Error(`agent response: ${body.length} body bytes, header says ${header.stdoutBytes}`);
  }
  return { header, stdout: body.toString('utf8') };
}

/** A pseudowire as the CNI plugin names it (from the NetworkAttachmentDefinition). */
export interface PseudowireRef {
  namespace: string;
  name: string;
}

/** What the agent knows about a pseudowire's local end on this node. */
export interface PseudowireDevice {
  /** The l2tpeth device in the node's network namespace (kernel l2tpethN or the userspace TAP). */
  ifname: string;
  /** The pseudowire MTU: bridge, l2tpeth and pod interfaces get it. */
  mtu: number;
  tunnelId: number;
  sessionId: number;
  /** The session is established (CHECK fails when it is not). */
  up: boolean;
  /** How pods attach, from the Pseudowire's spec.attachment.mode (never from the network config). */
  mode: AttachMode;
  /** Namespaces besides the pseudowire's own whose pods may attach ("*": every namespace). */
  allowedNamespaces?: readonly string[];
}

export type AttachMode = 'bridge' | 'exclusive';

/** Implemented by the node agent (from its NodeState) and by test resolvers. */
export interface PseudowireResolver {
  /** The agent has synced its node state and can serve ADD. STATUS reports 50 while false. */
  ready(): boolean;
  /** The local device of a pseudowire, or undefined when this node has no such pseudowire. */
  lookup(ref: PseudowireRef): Promise<PseudowireDevice | undefined>;
}
