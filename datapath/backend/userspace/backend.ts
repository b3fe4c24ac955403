// The userspace backend: a persistent TAP per session and a native pump per tunnel socket.
// Level-triggered like the kernel backend: ensureX converges, deleteX of something absent succeeds.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { deepEqual } from '../../../lib/deep-equal.js';
import { parseMarker } from '../../../lib/device-marker.js';
import type { Logger } from '../../../lib/log.js';
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import { cookieBytes } from '../../../lib/wire/session.js';
import { netnsHint } from '../../cni/netns-hint.js';
import {
  DROP_REASONS,
  sessionKey,
  ForeignDeviceError,
  type Backend,
  type BackendOptions,
  type DropReason,
  type ObservedSession,
  type ObservedTunnel,
  type SessionCounters,
  type SessionRef,
  type SessionSpec,
  type TunnelCounters,
  type TunnelSpec,
} from '../types.js';
import { loadPump, type NativePump, type PumpEvent, type TunnelHandle } from './native.js';
import { configureTap, deleteLink, getLink, listTaps, upAgain } from './tap.js';

interface TunnelState {
  spec: TunnelSpec;
  handle: TunnelHandle;
  sessions: Map<number, SessionSpec>;
  failed?: string;
}

function dropRecord(drops: number[]): Partial<Record<DropReason, number>> {
  const r: Partial<Record<DropReason, number>> = {};
  DROP_REASONS.forEach((reason, i) => {
    const n = drops[i] ?? 0;
    if (n > 0) r[reason] = n;
  });
  return r;
}

export interface UserspaceBackendOptions extends BackendOptions {
  /**
   * TAP offloads (default on): IFF_VNET_HDR with TSO from the TAP (segmented in the pump) and merged
   * TCP segments towards it (GRO-like). Off: one frame per read/write, every TAP offload disabled.
   */
  offload?: boolean;
}

export class UserspaceBackend implements Backend {
  readonly kind = 'userspace' as const;
  private readonly lostTaps = new Set<string>();
  /** Our TAPs in this namespace that the pass's listing found down. */
  private listedDown = new Set<string>();
  private readonly tunnels = new Map<number, TunnelState>();
  private readonly pump: NativePump;
  private readonly log: Logger;

  private readonly offload: boolean;

  constructor(private readonly opts: UserspaceBackendOptions) {
    this.pump = loadPump();
    this.log = opts.logger;
    this.offload = opts.offload ?? true;
  }

  private onPumpEvent(tunnelId: number, e: PumpEvent): void {
    const fault = { tunnelId, sessionId: e.sessionId, fatal: e.fatal, message: e.message };
    this.log.error({ ...fault, suppressedBefore: e.suppressed }, 'datapath pump fault');
    const t = this.tunnels.get(tunnelId);
    if (t && e.fatal) t.failed = e.message;
    // the pump stops polling a TAP it can no longer read (deleted from outside): rebuild it next pass.
    // Events are rate limited, so ensureSession also asks the pump (tapLost) for the ones not heard of.
    if (!e.fatal && e.sessionId !== 0 && e.message.includes('TAP'))
      this.lostTaps.add(`${tunnelId}/${e.sessionId}`);
    this.opts.onFault?.(fault);
  }

  async listTunnels(): Promise<ObservedTunnel[]> {
    return [...this.tunnels.values()].map((t) => ({
      tunnelId: t.spec.tunnelId,
      params: t.spec,
      owned: true,
    }));
  }

  async listSessions(): Promise<ObservedSession[]> {
    const taps = await listTaps();
    this.listedDown = new Set(taps.filter((t) => t.owner && !t.up).map((t) => t.ifname));
    const out: ObservedSession[] = [];
    for (const tap of taps) {
      if (!tap.owner) continue; // never report (or adopt) a TAP that kube-l2tp did not create
      const live = this.tunnels.get(tap.owner.tunnelId)?.sessions.get(tap.owner.sessionId);
      const s: ObservedSession = {
        tunnelId: tap.owner.tunnelId,
        sessionId: tap.owner.sessionId,
        ifname: tap.ifname,
        ifindex: tap.ifindex,
        up: tap.up,
        mtu: tap.mtu,
        owned: true,
      };
      if (live) {
        const { tunnelId: _t, ifname: _i, ...params } = live;
        s.params = params;
      }
      out.push(s);
    }
    return out;
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    const cur = this.tunnels.get(spec.tunnelId);
    if (cur && deepEqual(cur.spec, spec) && cur.failed === undefined) return;
    const sessions = [...(cur?.sessions.values() ?? [])];
    if (cur) {
      // Parameters changed (or the pump failed): rebuild the socket, keep the TAPs and reattach them.
      this.pump.closeTunnel(cur.handle, true);
      this.tunnels.delete(spec.tunnelId);
    }
    const family = spec.local.includes(':') ? 6 : 4;
    const cfg = {
      encap: spec.encap,
      family,
      local: spec.local,
      remote: spec.remote,
      udpChecksum: spec.udpChecksum,
      ...(spec.udpSourcePort !== undefined ? { localPort: spec.udpSourcePort } : {}),
      ...(spec.udpDestinationPort !== undefined ? { remotePort: spec.udpDestinationPort } : {}),
    } as const;
    const handle = this.pump.createTunnel(cfg, (e) => this.onPumpEvent(spec.tunnelId, e));
    this.tunnels.set(spec.tunnelId, { spec, handle, sessions: new Map() });
    this.log.info(
      { tunnelId: spec.tunnelId, encap: spec.encap, local: spec.local, remote: spec.remote },
      'tunnel up',
    );
    for (const s of sessions) await this.ensureSession(s);
  }

  async deleteTunnel(tunnelId: number): Promise<void> {
    const t = this.tunnels.get(tunnelId);
    if (!t) return;
    this.pump.closeTunnel(t.handle, false);
    this.tunnels.delete(tunnelId);
    this.log.info({ tunnelId }, 'tunnel deleted');
  }

  async ensureSession(spec: SessionSpec): Promise<void> {
    const t = this.tunnels.get(spec.tunnelId);
    if (!t) throw new Error(`tunnel ${spec.tunnelId} does not exist`);
    const cur = t.sessions.get(spec.sessionId);
    // Converged, unless the pump lost the TAP (deleted by hand): then the session is rebuilt on a new
    // one. Absence from this namespace alone means nothing: in exclusive mode the TAP lives in a pod.
    const key = `${spec.tunnelId}/${spec.sessionId}`;
    const lost =
      this.lostTaps.has(key) || (cur && this.pump.sessionCounters(t.handle, spec.sessionId)?.tapLost);
    if (cur && deepEqual(cur, spec) && !lost) {
      // a TAP set down by hand (the pass's listing says so) comes up again, as the kernel backend's
      // devices do; one in a pod is the pod's to set
      if (this.listedDown.has(spec.ifname)) await upAgain(spec.ifname);
      return;
    }
    if (cur && !lost && deepEqual({ ...cur, mtu: spec.mtu }, spec)) {
      // only the MTU changed, which the pump does not use: the session keeps its TAP and its pump
      // (no gap, no reattaching inside a pod). A TAP on the node takes the MTU here; one in a pod
      // gets it from the agent's step for attached pods.
      const tap = await getLink(spec.ifname);
      const mine = tap?.owner?.tunnelId === spec.tunnelId && tap.owner.sessionId === spec.sessionId;
      if (tap?.kind === 'tun' && mine) {
        await configureTap(spec.ifname, spec.tunnelId, spec.sessionId, spec.mtu, { current: tap });
      }
      t.sessions.set(spec.sessionId, spec);
      this.log.info(
        { tunnelId: spec.tunnelId, sessionId: spec.sessionId, mtu: spec.mtu },
        'session MTU changed',
      );
      return;
    }
    this.lostTaps.delete(key);
    if (cur) {
      this.pump.removeSession(t.handle, spec.sessionId, cur.ifname === spec.ifname);
      t.sessions.delete(spec.sessionId);
    }
    const existing = await getLink(spec.ifname);
    if (existing) {
      const mine = existing.owner?.tunnelId === spec.tunnelId && existing.owner.sessionId === spec.sessionId;
      if (existing.kind !== 'tun' || !mine) {
        throw new ForeignDeviceError(spec.ifname, "it is not this session's kube-l2tp TAP");
      }
    } else if (await this.reattachInPod(t, spec)) return;
    const tap = this.pump.openTap(spec.ifname, this.offload); // creates it, or reattaches to the persistent one
    try {
      // a TAP made just now has the namespace's defaults; one found is left as it is where right
      const opts = existing ? { current: existing } : { fresh: true };
      await configureTap(tap.name, spec.tunnelId, spec.sessionId, spec.mtu, opts);
      // persistent only once marked: a new TAP goes with this process until then
      this.pump.setTapPersist(tap.fd, true);
      this.pumpSession(t, spec, tap.fd);
    } catch (err) {
      if (!existing) this.pump.setTapPersist(tap.fd, false); // created here: do not leave it behind
      this.pump.closeFd(tap.fd);
      throw err;
    }
    t.sessions.set(spec.sessionId, spec);
    this.log.info(
      {
        tunnelId: spec.tunnelId,
        sessionId: spec.sessionId,
        ifname: tap.name,
        mtu: spec.mtu,
        adopted: !!existing,
      },
      existing ? 'session reattached to existing TAP' : 'session up',
    );
  }

  /** Hands the session, with its TAP's fd (the pump takes it), to the tunnel's pump. */
  private pumpSession(t: TunnelState, spec: SessionSpec, tapFd: number): void {
    this.pump.addSession(t.handle, {
      sessionId: spec.sessionId,
      peerSessionId: spec.peerSessionId,
      cookie: cookieBytes(spec.cookie),
      peerCookie: cookieBytes(spec.peerCookie),
      l2specLength: spec.l2specType === 'default' ? 4 : 0,
      sendSequence: spec.sendSequence,
      requireSequence: spec.requireSequence,
      tapFd,
      vnetHdr: this.offload,
    });
  }

  /**
   * A TAP the CNI moved into a pod (exclusive mode) is not on the node, and its traffic needs this
   * process: a restarted process (or a session changed since) attaches to it there. A new TAP on the
   * node instead would cut the pod off its wire. False when the records name no pod, or the pod has
   * no TAP of this session under that name (it went): the caller makes one on the node.
   */
  private async reattachInPod(t: TunnelState, spec: SessionSpec): Promise<boolean> {
    const pod = await this.opts.podDevice?.(spec.ifname);
    if (!pod) return false;
    const ids = {
      tunnelId: spec.tunnelId,
      sessionId: spec.sessionId,
      podIfname: pod.ifname,
      netns: pod.netns,
    };
    const link = await withRtnl((r) => r.links.byName(pod.ifname), pod.netns).catch((err: unknown) => {
      // A namespace file gone from a directory this container sees: the pod went (its DEL is to
      // come), and the session gets a TAP on the node. One this container cannot open is a mount the
      // datapath pod lacks: a TAP on the node would leave the pod's wire dead without a word.
      if (!existsSync(pod.netns) && existsSync(dirname(pod.netns))) return undefined;
      throw new Error(
        `the session's TAP is ${pod.ifname} in a pod whose network namespace ${pod.netns} this datapath pod cannot open (${err instanceof Error ? err.message : String(err)}): ` +
          netnsHint(pod.netns, this.opts.netnsDir),
      );
    });
    const owner = parseMarker(link?.alias);
    if (link?.kind !== 'tun' || owner?.tunnelId !== spec.tunnelId || owner.sessionId !== spec.sessionId) {
      this.log.info(ids, "the pod the CNI moved the session's TAP into holds it no longer");
      return false;
    }
    const tap = this.pump.attachTapIn(pod.netns, pod.ifname, this.offload);
    try {
      this.pumpSession(t, spec, tap.fd);
    } catch (err) {
      this.pump.closeFd(tap.fd);
      throw err;
    }
    t.sessions.set(spec.sessionId, spec);
    this.log.info({ ...ids, mtu: spec.mtu }, 'session reattached to its TAP in a pod');
    return true;
  }

  async deleteSession(tunnelId: number, sessionId: number): Promise<void> {
    const t = this.tunnels.get(tunnelId);
    if (t?.sessions.has(sessionId)) {
      this.pump.removeSession(t.handle, sessionId, false);
      t.sessions.delete(sessionId);
      this.log.info({ tunnelId, sessionId }, 'session deleted');
      return;
    }
    // Not attached in this process: remove a TAP left by an earlier run, if it is ours.
    for (const tap of await listTaps()) {
      if (tap.owner?.tunnelId === tunnelId && tap.owner.sessionId === sessionId) await deleteLink(tap.ifname);
    }
  }

  async counters(tunnelId: number, sessionId: number): Promise<SessionCounters | undefined> {
    const t = this.tunnels.get(tunnelId);
    const c = t && this.pump.sessionCounters(t.handle, sessionId);
    if (!c) return undefined;
    const { drops, tapLost: _lost, ...rest } = c;
    return { ...rest, drops: dropRecord(drops) };
  }

  async allCounters(): Promise<Map<string, SessionCounters>> {
    const out = new Map<string, SessionCounters>();
    for (const [tunnelId, t] of this.tunnels) {
      for (const sessionId of t.sessions.keys()) {
        const c = await this.counters(tunnelId, sessionId);
        if (c) out.set(sessionKey(tunnelId, sessionId), c);
      }
    }
    return out;
  }

  async tunnelCounters(tunnelId: number): Promise<TunnelCounters | undefined> {
    const t = this.tunnels.get(tunnelId);
    if (!t) return undefined;
    const c = this.pump.tunnelCounters(t.handle);
    return { rxPackets: c.rxPackets, drops: dropRecord(c.drops) };
  }

  async deleteSessions(sessions: readonly SessionRef[]): Promise<void> {
    if (sessions.length === 0) return;
    // one dump finds every TAP of ours in this namespace; those go together in one request
    const taps = new Map<string, number>();
    for (const tap of await listTaps())
      if (tap.owner) taps.set(sessionKey(tap.owner.tunnelId, tap.owner.sessionId), tap.ifindex);
    const batch: number[] = [];
    for (const { tunnelId, sessionId } of sessions) {
      const key = sessionKey(tunnelId, sessionId);
      const ifindex = taps.get(key);
      this.lostTaps.delete(key);
      const t = this.tunnels.get(tunnelId);
      if (t?.sessions.has(sessionId)) {
        // a TAP not in this namespace (in a pod, exclusive mode) goes with the pump's last close of it
        this.pump.removeSession(t.handle, sessionId, ifindex !== undefined);
        t.sessions.delete(sessionId);
        this.log.info({ tunnelId, sessionId }, 'session deleted');
      }
      if (ifindex !== undefined) batch.push(ifindex);
    }
    if (batch.length === 0) return;
    const r = await withRtnl((rt) => rt.links.delMany(batch));
    this.log.info({ taps: r.deleted, oneRequest: r.batched }, 'session TAPs deleted');
  }

  async close(opts: { keepDevices: boolean }): Promise<void> {
    if (!opts.keepDevices) {
      const all = [...this.tunnels].flatMap(([tunnelId, t]) =>
        [...t.sessions.keys()].map((sessionId) => ({ tunnelId, sessionId })),
      );
      await this.deleteSessions(all);
    }
    for (const [id, t] of this.tunnels) {
      this.pump.closeTunnel(t.handle, opts.keepDevices);
      this.tunnels.delete(id);
    }
    this.log.info({ keepDevices: opts.keepDevices }, 'userspace backend closed');
  }
}

export function createUserspaceBackend(opts: UserspaceBackendOptions): Backend {
  return new UserspaceBackend(opts);
}
