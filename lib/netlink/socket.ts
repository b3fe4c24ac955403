// A netlink socket: one request at a time (replies are matched by sequence number), decoded into
// messages; NLMSG_ERROR becomes a typed NetlinkError naming the attribute or ID at fault.
import { appendFileSync } from 'node:fs';
import {
  attrTypeAtOffset,
  encodeMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  parseError,
  parseMessages,
  type NlMsg,
} from './codec.js';
import { NetlinkError } from './errors.js';
import { loadNative, type NativeNetlink } from './native.js';

export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

export interface RequestOptions {
  /** Human name for errors and traces, e.g. "l2tp TUNNEL_CREATE". */
  op: string;
  /** Bytes between nlmsghdr and the attributes (genlmsghdr 4, ifinfomsg 16). */
  familyHeaderLen: number;
  /** Names attribute types for errors. */
  attrName?: (type: number) => string;
  /** IDs the request is about, copied into errors. */
  context?: { tunnelId?: number; sessionId?: number; ifindex?: number; ifname?: string };
  dump?: boolean;
  /** Extra nlmsg flags (NLM_F_CREATE, NLM_F_EXCL, ...). */
  flags?: number;
}

/** Low-level transport, replaceable in tests. */
export interface Transport {
  transact(request: Buffer): Promise<Buffer[]>;
  close(): void;
}

export class NativeTransport implements Transport {
  private readonly fd: number;
  private readonly native: NativeNetlink;
  /**
   * With netns the socket lives in that network namespace: a path (a pod's /run/netns/NAME) or an
   * open descriptor of it, which stays the caller's.
   */
  constructor(protocol: number, netns?: string | number) {
    this.native = loadNative();
    this.fd = netns === undefined ? this.native.open(protocol) : this.native.openIn(protocol, netns);
  }
  transact(request: Buffer): Promise<Buffer[]> {
    return this.native.transact(this.fd, request);
  }
  close(): void {
    this.native.close(this.fd);
  }
}

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly trace = process.env.KUBE_L2TP_NETLINK_TRACE;

  constructor(private readonly transport: Transport) {}

  static open(protocol: number): NetlinkSocket {
    return new NetlinkSocket(new NativeTransport(protocol));
  }

  /**
   * A socket in another network namespace (a path like /run/netns/NAME or /proc/PID/ns/net, or an
   * open descriptor of the namespace): every request on it acts there. Throws (errno set) when the
   * namespace cannot be entered.
   */
  static openIn(protocol: number, netns: string | number): NetlinkSocket {
    return new NetlinkSocket(new NativeTransport(protocol, netns));
  }

  /** Sends one request; resolves with the data messages of the reply (all parts of a dump). */
  request(type: number, payload: Buffer, opts: RequestOptions): Promise<NlMsg[]> {
    const run = this.queue.then(() => this.doRequest(type, payload, opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doRequest(type: number, payload: Buffer, opts: RequestOptions): Promise<NlMsg[]> {
    if (this.closed) throw new Error('netlink socket is closed');
    this.seq = (this.seq + 1) >>> 0;
    const seq = this.seq;
    const flags = NLM_F_REQUEST | NLM_F_ACK | (opts.dump ? NLM_F_DUMP : 0) | (opts.flags ?? 0);
    const req = encodeMessage({ type, flags, seq, pid: 0 }, payload);
    const datagrams = await this.transport.transact(req);
    if (this.trace) {
      appendFileSync(
        this.trace,
        JSON.stringify({
          op: opts.op,
          request: req.toString('hex'),
          replies: datagrams.map((d) => d.toString('hex')),
        }) + '\n',
      );
    }
    return decodeReplies(req, seq, datagrams, opts);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
  }
}

/** Turns the datagrams answering `req` into data messages, or throws the kernel's error. */
export function decodeReplies(req: Buffer, seq: number, datagrams: Buffer[], opts: RequestOptions): NlMsg[] {
  const out: NlMsg[] = [];
  for (const d of datagrams) {
    for (const m of parseMessages(d)) {
      if (m.seq !== seq || m.type === NLMSG_NOOP) continue;
      if (m.type === NLMSG_DONE) return out;
      if (m.type === NLMSG_ERROR) {
        const e = parseError(m);
        if (e.errno === 0) return out;
        let attribute: string | undefined;
        const name = opts.attrName ?? ((t: number) => `#${t}`);
        if (e.offset !== undefined) {
          const t = attrTypeAtOffset(req, e.offset, opts.familyHeaderLen);
          if (t !== undefined) attribute = name(t);
        } else if (e.missingType !== undefined) {
          attribute = `${name(e.missingType)} (missing)`;
        }
        throw new NetlinkError({
          op: opts.op,
          errno: e.errno,
          ...(e.message !== undefined ? { kernelMessage: e.message } : {}),
          ...(attribute !== undefined ? { attribute } : {}),
          ...opts.context,
        });
      }
      out.push(m);
    }
  }
  return out;
}
