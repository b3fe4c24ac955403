// Typed errors for netlink requests: the errno as a name, what we asked, and the attribute or ID
// at fault (from the kernel's extended ACK when it sends one, else from the request we made).
import { constants } from 'node:os';

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

export interface NetlinkErrorContext {
  /** Human name of the request, e.g. "l2tp TUNNEL_CREATE". */
  op: string;
  errno: number;
  /** Kernel extended-ACK message, when given. */
  kernelMessage?: string;
  /** Name of the attribute at fault (extended ACK offset or missing-attribute report). */
  attribute?: string;
  tunnelId?: number;
  sessionId?: number;
  ifindex?: number;
  ifname?: string;
}

export class NetlinkError extends Error {
  readonly op: string;
  readonly errno: number;
  /** Symbolic errno, e.g. "EEXIST". */
  readonly code: string;
  readonly kernelMessage: string | undefined;
  readonly attribute: string | undefined;
  readonly tunnelId: number | undefined;
  readonly sessionId: number | undefined;
  readonly ifindex: number | undefined;
  readonly ifname: string | undefined;

  constructor(ctx: NetlinkErrorContext, hint?: string) {
    const code = errnoName(ctx.errno);
    const at = [
      ctx.tunnelId !== undefined ? `tunnel ${ctx.tunnelId}` : '',
      ctx.sessionId !== undefined ? `session ${ctx.sessionId}` : '',
      ctx.ifname !== undefined ? `interface ${ctx.ifname}` : '',
      ctx.ifindex !== undefined && ctx.ifname === undefined ? `ifindex ${ctx.ifindex}` : '',
      ctx.attribute !== undefined ? `attribute ${ctx.attribute}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    super(
      `${ctx.op} failed: ${code}${at ? ` (${at})` : ''}` +
        `${ctx.kernelMessage ? `: ${ctx.kernelMessage}` : ''}${hint ? ` - ${hint}` : ''}`,
    );
    this.name = 'NetlinkError';
    this.op = ctx.op;
    this.errno = ctx.errno;
    this.code = code;
    this.kernelMessage = ctx.kernelMessage;
    this.attribute = ctx.attribute;
    this.tunnelId = ctx.tunnelId;
    this.sessionId = ctx.sessionId;
    this.ifindex = ctx.ifindex;
    this.ifname = ctx.ifname;
  }
}

/** The errno values callers branch on. */
export const Errno = {
  EPERM: constants.errno.EPERM,
  ENOENT: constants.errno.ENOENT,
  EINVAL: constants.errno.EINVAL,
  EEXIST: constants.errno.EEXIST,
  ENODEV: constants.errno.ENODEV,
  EBUSY: constants.errno.EBUSY,
  EPROTONOSUPPORT: constants.errno.EPROTONOSUPPORT,
  EAFNOSUPPORT: constants.errno.EAFNOSUPPORT,
  EADDRINUSE: constants.errno.EADDRINUSE,
  EOPNOTSUPP: constants.errno.EOPNOTSUPP,
  ENOTCONN: constants.errno.ENOTCONN,
} as const;
