// The kernel datapath backend: L2TPv3 ethernet pseudowires as kernel l2tp_eth sessions, driven over
// generic netlink (family "l2tp", what `ip l2tp` uses) and rtnetlink (link up, MTU, name, ifalias).
// Kernel sessions belong to the kernel, not to this process: they keep forwarding while we restart,
// and a restarted backend adopts the ones that match what it is asked for (ensureX finds them,
// compares, keeps them) instead of recreating them.
//
// Ownership: an l2tpeth device created by us carries the ownership marker (lib/device-marker.ts) in
// its ifalias; a tunnel is ours when we created or adopted it in this process or when it holds one
// of our sessions. Something found on the node that conflicts with the desired state and is not ours
// is never deleted: it is reported as a typed error naming the tunnel or session ID.
import { formatMarker, markedL2spec, marksSession } from '../../../lib/device-marker.js';
import type { Logger } from '../../../lib/log.js';
import { Errno, NetlinkError } from '../../../lib/netlink/errors.js';
import { hardenDevice } from '../../../lib/netdev-hardening.js';
import {
  ipv6Bytes,
  ipv6Text,
  L2TP_PWTYPE,
  L2tpNetlink,
  type L2tpSessionInfo,
  type L2tpTunnelInfo,
} from '../../../lib/netlink/l2tp.js';
import { RtnlLinks, type LinkInfo } from '../../../lib/netlink/rtnl.js';
import { NETLINK_GENERIC, NETLINK_ROUTE, NetlinkSocket } from '../../../lib/netlink/socket.js';
import { cookieBytes, type TunnelParams } from '../../../lib/wire/session.js';
import {
  ForeignObjectError,
  sessionKey,
  type Backend,
  type BackendOptions,
  type PodDevice,
  type ObservedSession,
  type ObservedTunnel,
  type SessionCounters,
  type SessionSpec,
  type TunnelSpec,
} from '../types.js';

export { NetlinkError } from '../../../lib/netlink/errors.js';

/** A conflict with something on the node that the backend will not remove because it is not ours. */
export class KernelConflictError extends ForeignObjectError {
  constructor(
    message: string,
    readonly tunnelId: number,
    readonly sessionId?: number,
  ) {
    super(message);
    this.name = 'KernelConflictError';
  }
}

export interface KernelProbe {
  available: boolean;
  reason: string;
}

const isErrno = (e: unknown, ...codes: number[]): boolean =>
  e instanceof NetlinkError && codes.includes(e.errno);

const PROBE_MESSAGES: Record<string, string> = {
  ENOENT: 'generic netlink family "l2tp" not found (kernel without CONFIG_L2TP or l2tp_netlink not loadable)',
  EPERM: 'no CAP_NET_ADMIN in this network namespace',
  EPROTONOSUPPORT: 'the kernel has l2tp but no ethernet pseudowire (l2tp_eth missing)',
  EAFNOSUPPORT: 'the kernel has l2tp but no L2TP/UDP socket support',
};

/**
 * Whether the kernel backend can run here: the addon loads, the "l2tp" family resolves and an
 * ETH pseudowire can be made. The last check creates a throw-away unmanaged tunnel (UDP on
 * 127.0.0.1) with one ETH session and deletes it at once: there is no read-only way to learn
 * whether l2tp_eth is present (the kernel loads it on demand on the first ETH SESSION_CREATE).
 */
export async function probeKernelL2tp(): Promise<KernelProbe> {
  let sock: NetlinkSocket;
  try {
    sock = NetlinkSocket.open(NETLINK_GENERIC);
  } catch (e) {
    return { available: false, reason: `no generic netlink socket: ${(e as Error).message}` };
  }
  try {
    let l2tp: L2tpNetlink;
    try {
      l2tp = await L2tpNetlink.open(sock);
    } catch (e) {
      const code = e instanceof NetlinkError ? e.code : '';
      return { available: false, reason: PROBE_MESSAGES[code] ?? `l2tp family: ${(e as Error).message}` };
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const tunnelId = 0xfff00000 + Math.floor(Math.random() * 0xfffff);
      const sessionId = 0xfff00000 + Math.floor(Math.random() * 0xfffff);
      try {
        await l2tp.createTunnel({
          tunnelId,
          peerTunnelId: tunnelId,
          encap: 'udp',
          local: '127.0.0.1',
          remote: '127.0.0.1',
          udpSourcePort: 0,
          udpDestinationPort: 9,
        });
      } catch (e) {
        if (isErrno(e, Errno.EEXIST)) continue;
        const code = e instanceof NetlinkError ? e.code : '';
        return { available: false, reason: PROBE_MESSAGES[code] ?? `probe tunnel: ${(e as Error).message}` };
      }
      try {
        await l2tp.createSession({ tunnelId, sessionId, peerSessionId: sessionId, l2specType: 'none' });
        return {
          available: true,
          reason: `generic netlink family "l2tp" (id ${l2tp.family.id}, version ${l2tp.family.version}) with ethernet pseudowires`,
        };
      } catch (e) {
        if (isErrno(e, Errno.EEXIST)) continue;
        const code = e instanceof NetlinkError ? e.code : '';
        return { available: false, reason: PROBE_MESSAGES[code] ?? `probe session: ${(e as Error).message}` };
      } finally {
        await l2tp.deleteTunnel(tunnelId).catch(() => undefined);
      }
    }
    return { available: false, reason: 'probe IDs kept colliding with existing tunnels/sessions' };
  } finally {
    sock.close();
  }
}

function normAddr(a: string | undefined): string | undefined {
  if (a === undefined) return undefined;
  return a.includes(':') ? ipv6Text(ipv6Bytes(a)) : a;
}

/** Differences between a kernel tunnel and the desired parameters (empty: it can be kept). */
export function tunnelDiff(k: L2tpTunnelInfo, want: TunnelParams): string[] {
  const d: string[] = [];
  if (k.peerTunnelId !== want.peerTunnelId) d.push(`peerTunnelId ${k.peerTunnelId} != ${want.peerTunnelId}`);
  if (k.encap !== want.encap) d.push(`encap ${k.encap} != ${want.encap}`);
  if (k.local !== undefined && normAddr(k.local) !== normAddr(want.local))
    d.push(`local ${k.local} != ${want.local}`);
  if (k.remote !== undefined && normAddr(k.remote) !== normAddr(want.remote)) {
    d.push(`remote ${k.remote} != ${want.remote}`);
  }
  if (want.encap === 'udp') {
    if (k.udpSourcePort !== want.udpSourcePort)
      d.push(`udpSourcePort ${k.udpSourcePort} != ${want.udpSourcePort}`);
    if (k.udpDestinationPort !== want.udpDestinationPort) {
      d.push(`udpDestinationPort ${k.udpDestinationPort} != ${want.udpDestinationPort}`);
    }
    if (k.udpChecksum !== undefined && !want.local.includes(':') && k.udpChecksum !== want.udpChecksum) {
      d.push(`udpChecksum ${k.udpChecksum} != ${want.udpChecksum}`);
    }
  }
  return d;
}

/** Differences that need the session recreated (IDs, cookies, sublayer, pseudowire type). */
export function sessionDiff(k: L2tpSessionInfo, want: SessionSpec): string[] {
  const d: string[] = [];
  if (k.pwType !== L2TP_PWTYPE.ETH) d.push(`pseudowire type ${k.pwType} is not ETH`);
  if (k.peerSessionId !== want.peerSessionId)
    d.push(`peerSessionId ${k.peerSessionId} != ${want.peerSessionId}`);
  const hex = (b: Buffer | undefined) => (b && b.length ? b.toString('hex') : '');
  if (hex(k.cookie) !== cookieBytes(want.cookie).toString('hex')) d.push('cookie differs');
  if (hex(k.peerCookie) !== cookieBytes(want.peerCookie).toString('hex')) d.push('peerCookie differs');
  if (k.l2specType !== undefined && k.l2specType !== want.l2specType) {
    d.push(`l2specType ${k.l2specType} != ${want.l2specType}`);
  }
  return d;
}

function toTunnelParams(k: L2tpTunnelInfo): TunnelParams | undefined {
  if ((k.encap !== 'udp' && k.encap !== 'ip') || k.local === undefined || k.remote === undefined)
    return undefined;
  const p: TunnelParams = {
    tunnelId: k.tunnelId,
    peerTunnelId: k.peerTunnelId,
    encap: k.encap,
    local: k.local,
    remote: k.remote,
    udpChecksum: k.udpChecksum ?? false,
  };
  if (k.encap === 'udp') {
    if (k.udpSourcePort !== undefined) p.udpSourcePort = k.udpSourcePort;
    if (k.udpDestinationPort !== undefined) p.udpDestinationPort = k.udpDestinationPort;
  }
  return p;
}

export interface KernelBackendOptions {
  logger: Logger;
  podDevice?: BackendOptions['podDevice'];
}

export function createKernelBackend(opts: KernelBackendOptions): Backend {
  return new KernelBackend(opts.logger, opts.podDevice ? { podDevice: opts.podDevice } : {});
}

interface Conn {
  genl: NetlinkSocket;
  rtnl: NetlinkSocket;
  l2tp: L2tpNetlink;
  links: RtnlLinks;
}

export class KernelBackend implements Backend {
  readonly kind = 'kernel' as const;
  private conn: Promise<Conn> | undefined;
  /** Tunnels created or adopted by this process. */
  private readonly ownTunnels = new Set<number>();
  private readonly seenSessions = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly opts: Pick<BackendOptions, 'podDevice'> = {},
  ) {}

  private connect(): Promise<Conn> {
    this.conn ??= (async () => {
      const genl = NetlinkSocket.open(NETLINK_GENERIC);
      const rtnl = NetlinkSocket.open(NETLINK_ROUTE);
      try {
        const l2tp = await L2tpNetlink.open(genl);
        this.log.info(
          { familyId: l2tp.family.id, version: l2tp.family.version },
          'kernel backend: l2tp family resolved',
        );
        return { genl, rtnl, l2tp, links: new RtnlLinks(rtnl) };
      } catch (e) {
        genl.close();
        rtnl.close();
        this.conn = undefined;
        throw e;
      }
    })();
    return this.conn;
  }

  private async getTunnel(c: Conn, tunnelId: number): Promise<L2tpTunnelInfo | undefined> {
    try {
      return await c.l2tp.getTunnel(tunnelId);
    } catch (e) {
      if (isErrno(e, Errno.ENODEV, Errno.ENOENT)) return undefined;
      throw e;
    }
  }

  private async getSession(
    c: Conn,
    tunnelId: number,
    sessionId: number,
  ): Promise<L2tpSessionInfo | undefined> {
    try {
      return await c.l2tp.getSession(tunnelId, sessionId);
    } catch (e) {
      if (isErrno(e, Errno.ENODEV, Errno.ENOENT)) return undefined;
      throw e;
    }
  }

  /** Tunnels holding at least one of our (ifalias-marked) sessions. */
  private async tunnelsWithOwnedSessions(c: Conn): Promise<Set<number>> {
    const out = new Set<number>();
    const links = new Map((await c.links.list()).map((l) => [l.name, l]));
    for (const s of await c.l2tp.dumpSessions()) {
      const link = s.ifname !== undefined ? links.get(s.ifname) : undefined;
      if (marksSession(link?.alias, s.tunnelId, s.sessionId) || (!link && (await this.inPod(s.ifname))))
        out.add(s.tunnelId);
    }
    return out;
  }

  async listTunnels(): Promise<ObservedTunnel[]> {
    const c = await this.connect();
    const withOurs = await this.tunnelsWithOwnedSessions(c);
    return (await c.l2tp.dumpTunnels()).map((t) => {
      const o: ObservedTunnel = {
        tunnelId: t.tunnelId,
        owned: this.ownTunnels.has(t.tunnelId) || withOurs.has(t.tunnelId),
      };
      const p = toTunnelParams(t);
      if (p) o.params = p;
      return o;
    });
  }

  async listSessions(): Promise<ObservedSession[]> {
    const c = await this.connect();
    const links = new Map((await c.links.list()).map((l) => [l.name, l]));
    const out: ObservedSession[] = [];
    for (const s of await c.l2tp.dumpSessions()) {
      const link = s.ifname !== undefined ? links.get(s.ifname) : undefined;
      const pod = link ? undefined : await this.inPod(s.ifname);
      const o: ObservedSession = {
        tunnelId: s.tunnelId,
        sessionId: s.sessionId,
        ifname: s.ifname ?? '',
        up: link?.up ?? !!pod,
        owned: marksSession(link?.alias, s.tunnelId, s.sessionId) || !!pod,
        params: sessionParamsOf(withAliasL2spec(s, link)),
      };
      if (link) o.ifindex = link.index;
      if (link?.mtu !== undefined) o.mtu = link.mtu;
      out.push(o);
    }
    return out;
  }

  /**
   * The pod our CNI moved a session's device into (exclusive mode), by the name the kernel reports:
   * the one the session was made with, kept while the pod renames the device. Its marker went with it.
   */
  private async inPod(ifname: string | undefined): Promise<PodDevice | undefined> {
    return ifname === undefined ? undefined : this.opts.podDevice?.(ifname);
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    const c = await this.connect();
    const existing = await this.getTunnel(c, spec.tunnelId);
    if (existing) {
      const diff = tunnelDiff(existing, spec);
      if (diff.length === 0) {
        if (!this.ownTunnels.has(spec.tunnelId)) {
          this.ownTunnels.add(spec.tunnelId);
          this.log.info({ tunnelId: spec.tunnelId }, 'kernel backend: adopted existing tunnel');
        }
        return;
      }
      const ours =
        this.ownTunnels.has(spec.tunnelId) || (await this.tunnelsWithOwnedSessions(c)).has(spec.tunnelId);
      if (!ours) {
        throw new KernelConflictError(
          `tunnel ${spec.tunnelId} exists in the kernel with other parameters (${diff.join('; ')}) and is not managed by kube-l2tp`,
          spec.tunnelId,
        );
      }
      // the kernel cannot change a tunnel's addressing: recreate it (its sessions go with it)
      this.log.warn(
        { tunnelId: spec.tunnelId, diff },
        'kernel backend: tunnel parameters changed, recreating',
      );
      await this.deleteTunnel(spec.tunnelId);
    }
    await this.createTunnelRetrying(c, spec);
    this.ownTunnels.add(spec.tunnelId);
    this.log.info({ tunnelId: spec.tunnelId, encap: spec.encap }, 'kernel backend: tunnel created');
  }

  private async createTunnelRetrying(c: Conn, spec: TunnelSpec): Promise<void> {
    // TUNNEL_DELETE finishes in a kernel work queue: a re-create right after may still see the old one
    for (let i = 0; ; i++) {
      try {
        await c.l2tp.createTunnel(spec);
        return;
      } catch (e) {
        if (!isErrno(e, Errno.EEXIST) || i >= 20 || !this.deleting.has(spec.tunnelId)) throw e;
        await sleep(100);
      }
    }
  }

  private readonly deleting = new Set<number>();

  async deleteTunnel(tunnelId: number): Promise<void> {
    const c = await this.connect();
    try {
      await c.l2tp.deleteTunnel(tunnelId);
    } catch (e) {
      if (isErrno(e, Errno.ENODEV, Errno.ENOENT)) {
        this.ownTunnels.delete(tunnelId);
        return;
      }
      throw e;
    }
    this.ownTunnels.delete(tunnelId);
    this.deleting.add(tunnelId);
    // wait (bounded) until the kernel's deferred teardown has removed it
    for (let i = 0; i < 50 && (await this.getTunnel(c, tunnelId)); i++) await sleep(50);
    this.deleting.delete(tunnelId);
    this.log.info({ tunnelId }, 'kernel backend: tunnel deleted');
  }

  async ensureSession(spec: SessionSpec): Promise<void> {
    const c = await this.connect();
    const key = `${spec.tunnelId}/${spec.sessionId}`;
    let existing = await this.getSession(c, spec.tunnelId, spec.sessionId);
    let link: LinkInfo | undefined;
    let pod: PodDevice | undefined;
    if (existing) {
      link = existing.ifname !== undefined ? await c.links.byName(existing.ifname) : undefined;
      pod = link ? undefined : await this.inPod(existing.ifname);
      const owned =
        marksSession(link?.alias, spec.tunnelId, spec.sessionId) || this.seenSessions.has(key) || !!pod;
      const diff = sessionDiff(withAliasL2spec(existing, link), spec);
      if (diff.length > 0) {
        if (!owned) {
          throw new KernelConflictError(
            `session ${spec.sessionId} in tunnel ${spec.tunnelId} exists with other parameters (${diff.join('; ')}) and is not managed by kube-l2tp`,
            spec.tunnelId,
            spec.sessionId,
          );
        }
        this.log.warn(
          { tunnelId: spec.tunnelId, sessionId: spec.sessionId, diff },
          'kernel backend: session changed, recreating',
        );
        await this.deleteSession(spec.tunnelId, spec.sessionId);
        existing = undefined;
        link = undefined;
        pod = undefined;
      } else {
        // sequencing can change in place
        if (
          (existing.sendSequence ?? false) !== spec.sendSequence ||
          (existing.requireSequence ?? false) !== spec.requireSequence ||
          (existing.reorderTimeoutMs ?? 0) !== spec.reorderTimeoutMs
        ) {
          await c.l2tp.modifySession(spec.tunnelId, spec.sessionId, {
            sendSequence: spec.sendSequence,
            requireSequence: spec.requireSequence,
            reorderTimeoutMs: spec.reorderTimeoutMs,
          });
        }
        if (!this.seenSessions.has(key)) {
          this.log.info(
            { tunnelId: spec.tunnelId, sessionId: spec.sessionId, ifname: existing.ifname },
            'kernel backend: adopted existing session',
          );
        }
      }
    }
    if (!existing) {
      const taken = await c.links.byName(spec.ifname);
      if (taken) {
        throw new NetlinkError(
          {
            op: 'l2tp SESSION_CREATE',
            errno: Errno.EEXIST,
            tunnelId: spec.tunnelId,
            sessionId: spec.sessionId,
            ifname: spec.ifname,
          },
          'the interface name is taken by another device',
        );
      }
      await c.l2tp.createSession({
        tunnelId: spec.tunnelId,
        sessionId: spec.sessionId,
        peerSessionId: spec.peerSessionId,
        ifname: spec.ifname,
        cookie: cookieBytes(spec.cookie),
        peerCookie: cookieBytes(spec.peerCookie),
        l2specType: spec.l2specType,
        sendSequence: spec.sendSequence,
        requireSequence: spec.requireSequence,
        reorderTimeoutMs: spec.reorderTimeoutMs,
      });
      this.log.info(
        { tunnelId: spec.tunnelId, sessionId: spec.sessionId, ifname: spec.ifname },
        'kernel backend: session created',
      );
      const created = await this.getSession(c, spec.tunnelId, spec.sessionId);
      link = created?.ifname !== undefined ? await c.links.byName(created.ifname) : undefined;
    }
    if (!link && pod) {
      // a pod holds the device (exclusive mode): the pod owns its name, state and MTU from here on
      this.seenSessions.add(key);
      this.ownTunnels.add(spec.tunnelId);
      return;
    }
    if (!link) throw new Error(`session ${spec.sessionId} has no l2tpeth device`);
    this.seenSessions.add(key);
    this.ownTunnels.add(spec.tunnelId);
    if (link.name !== spec.ifname) {
      if (link.up) await c.links.set(link.index, { up: false }, link.name);
      await c.links.set(link.index, { name: spec.ifname }, link.name);
      link = { ...link, name: spec.ifname, up: false };
    }
    // the sublayer type rides in the marker: the 6.1 kernel does not report it, and a restarted
    // process must compare it before adopting the session
    const alias = formatMarker({
      tunnelId: spec.tunnelId,
      sessionId: spec.sessionId,
      l2spec: spec.l2specType,
    });
    await hardenDevice(link.name); // before it goes up; reads only once it is
    if (link.mtu !== spec.mtu || link.alias !== alias || !link.up) {
      await c.links.set(link.index, { mtu: spec.mtu, alias, up: true }, link.name);
    }
  }

  async deleteSession(tunnelId: number, sessionId: number): Promise<void> {
    const c = await this.connect();
    try {
      await c.l2tp.deleteSession(tunnelId, sessionId);
      this.log.info({ tunnelId, sessionId }, 'kernel backend: session deleted');
    } catch (e) {
      if (!isErrno(e, Errno.ENODEV, Errno.ENOENT)) throw e;
    }
    this.seenSessions.delete(`${tunnelId}/${sessionId}`);
  }

  async counters(tunnelId: number, sessionId: number): Promise<SessionCounters | undefined> {
    const c = await this.connect();
    const s = await this.getSession(c, tunnelId, sessionId);
    return s?.stats && toCounters(s.stats);
  }

  async allCounters(): Promise<Map<string, SessionCounters>> {
    const c = await this.connect();
    const out = new Map<string, SessionCounters>();
    for (const s of await c.l2tp.dumpSessions()) {
      if (s.stats) out.set(sessionKey(s.tunnelId, s.sessionId), toCounters(s.stats));
    }
    return out;
  }

  async close(opts: { keepDevices: boolean }): Promise<void> {
    if (!this.conn) return;
    const c = await this.conn.catch(() => undefined);
    if (!c) return;
    try {
      if (!opts.keepDevices) {
        const sessions = await this.listSessions();
        for (const s of sessions) if (s.owned) await this.deleteSession(s.tunnelId, s.sessionId);
        const ours = new Set([...this.ownTunnels, ...sessions.filter((s) => s.owned).map((s) => s.tunnelId)]);
        const left = await c.l2tp.dumpSessions();
        for (const t of ours) {
          if (!left.some((s) => s.tunnelId === t)) await this.deleteTunnel(t);
        }
      }
    } finally {
      c.genl.close();
      c.rtnl.close();
      this.conn = undefined;
    }
  }
}

/** Fills in the sublayer type from our marker where the kernel does not report it. */
function withAliasL2spec(s: L2tpSessionInfo, link: LinkInfo | undefined): L2tpSessionInfo {
  if (s.l2specType !== undefined) return s;
  const l2 = marksSession(link?.alias, s.tunnelId, s.sessionId) ? markedL2spec(link?.alias) : undefined;
  return l2 === undefined ? s : { ...s, l2specType: l2 };
}

function sessionParamsOf(s: L2tpSessionInfo): NonNullable<ObservedSession['params']> {
  const p: NonNullable<ObservedSession['params']> = {
    sessionId: s.sessionId,
    peerSessionId: s.peerSessionId,
  };
  if (s.ifname !== undefined) p.name = s.ifname;
  if (s.cookie) p.cookie = s.cookie.toString('hex');
  if (s.peerCookie) p.peerCookie = s.peerCookie.toString('hex');
  if (s.l2specType === 'none' || s.l2specType === 'default') p.l2specType = s.l2specType;
  if (s.sendSequence !== undefined) p.sendSequence = s.sendSequence;
  if (s.requireSequence !== undefined) p.requireSequence = s.requireSequence;
  if (s.reorderTimeoutMs !== undefined) p.reorderTimeoutMs = s.reorderTimeoutMs;
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function toCounters(st: NonNullable<L2tpSessionInfo['stats']>): SessionCounters {
  const n = (b: bigint | undefined) => Number(b ?? 0n);
  const drops: SessionCounters['drops'] = {};
  if (st.rxCookieDiscards !== undefined) drops.badCookie = n(st.rxCookieDiscards);
  if (st.rxSeqDiscards > 0n) drops.sequence = n(st.rxSeqDiscards);
  if (st.rxInvalid !== undefined && st.rxInvalid > 0n) drops.truncated = n(st.rxInvalid);
  return {
    txPackets: n(st.txPackets),
    txBytes: n(st.txBytes),
    txErrors: n(st.txErrors),
    rxPackets: n(st.rxPackets),
    rxBytes: n(st.rxBytes),
    rxErrors: n(st.rxErrors),
    drops,
  };
}
