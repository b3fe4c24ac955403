// The ownership marker: the interface alias (IFLA_IFALIAS) kube-l2tp writes on every device it
// creates and may adopt later: the session devices (l2tpeth of the kernel backend, TAP of the
// userspace backend, both veth ends of the eBPF backend) and the pseudowires' attachment bridges. It
// outlives the process and shows in `ip link`, so a restarted agent adopts exactly its own devices,
// and a device anyone else made is never adopted or deleted. One format, "kube-l2tp" and key=value
// fields in a fixed order:
//
//   kube-l2tp tunnel=<tunnel ID> session=<session ID>[ l2spec=none|default]     a session device
//   kube-l2tp bridge=<namespace>/<pseudowire>                                   an attachment bridge
//
// IDs are decimal, non-zero 32-bit, without leading zeros; l2spec records the session's sublayer type
// where the device does not report it (Linux 6.1 leaves it out of SESSION_GET replies). Anything else,
// including a longer alias that merely starts with "kube-l2tp ", is not ours.
import type { L2SpecType } from './wire/session.js';

export const MARKER_PREFIX = 'kube-l2tp';

export interface DeviceMarker {
  tunnelId: number;
  sessionId: number;
  l2spec?: L2SpecType;
}

const ID = '([1-9][0-9]{0,9})';
const CURRENT = new RegExp(`^${MARKER_PREFIX} tunnel=${ID} session=${ID}(?: l2spec=(none|default))?$`);
// What the kernel backend of the previous release wrote: no IDs (the kernel session has them).
const PREVIOUS_KERNEL = new RegExp(`^${MARKER_PREFIX}(?: l2spec=(none|default))?$`);

const isId = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 0xffffffff;

export function formatMarker(m: DeviceMarker): string {
  if (!isId(m.tunnelId) || !isId(m.sessionId)) {
    throw new RangeError(
      `marker IDs must be non-zero 32-bit integers: tunnel ${m.tunnelId}, session ${m.sessionId}`,
    );
  }
  const l2 = m.l2spec === undefined ? '' : ` l2spec=${m.l2spec}`;
  return `${MARKER_PREFIX} tunnel=${m.tunnelId} session=${m.sessionId}${l2}`;
}

/** The marker in an alias, or undefined when the alias is not exactly one (the device is not ours). */
export function parseMarker(alias: string | undefined): DeviceMarker | undefined {
  const m = alias === undefined ? null : CURRENT.exec(alias);
  if (!m) return undefined;
  const tunnelId = Number(m[1]);
  const sessionId = Number(m[2]);
  if (!isId(tunnelId) || !isId(sessionId)) return undefined;
  return { tunnelId, sessionId, ...(m[3] !== undefined ? { l2spec: m[3] as L2SpecType } : {}) };
}

/**
 * Whether an alias marks the device of session tunnelId/sessionId as ours, for devices whose IDs the
 * kernel reports (l2tpeth): the current marker naming that session, or the previous release's
 * "kube-l2tp[ l2spec=X]", so an upgrade adopts the sessions it finds instead of orphaning them (the
 * next reconcile rewrites the marker in the current format). A current marker naming another session
 * is not ours to adopt.
 */
export function marksSession(alias: string | undefined, tunnelId: number, sessionId: number): boolean {
  if (alias === undefined) return false;
  const m = parseMarker(alias);
  if (m) return m.tunnelId === tunnelId && m.sessionId === sessionId;
  return PREVIOUS_KERNEL.test(alias);
}

/** The sublayer type a marker (current or previous release) records, if any. */
export function markedL2spec(alias: string | undefined): L2SpecType | undefined {
  if (alias === undefined) return undefined;
  const m = parseMarker(alias);
  if (m) return m.l2spec;
  return (PREVIOUS_KERNEL.exec(alias)?.[1] as L2SpecType | undefined) ?? undefined;
}

/** The marker of a pseudowire's attachment bridge (namespace and name are DNS labels: no blanks, no "/"). */
export function formatBridgeMarker(pw: { namespace: string; name: string }): string {
  return `${MARKER_PREFIX} bridge=${pw.namespace}/${pw.name}`;
}

const DNS_LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
const BRIDGE = new RegExp(`^${MARKER_PREFIX} bridge=(${DNS_LABEL})/([a-z0-9](?:[-.a-z0-9]*[a-z0-9])?)$`);

/** The pseudowire an attachment bridge's marker names, or undefined when the alias is not one. */
export function parseBridgeMarker(
  alias: string | undefined,
): { namespace: string; name: string } | undefined {
  const m = alias === undefined ? null : BRIDGE.exec(alias);
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}

/** Whether an alias marks the attachment bridge of exactly this pseudowire. */
export function marksBridge(alias: string | undefined, pw: { namespace: string; name: string }): boolean {
  return alias === formatBridgeMarker(pw);
}
