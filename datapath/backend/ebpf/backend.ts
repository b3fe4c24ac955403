// The eBPF backend: tc programs encapsulate and decapsulate in the kernel (no l2tp modules needed),
// configured through pinned maps. Programs, maps and filters outlive the agent, so forwarding goes
// on while it is down and a restarted agent adopts what it finds instead of re-creating it.
//
// Per tunnel: a tun_map entry and the receive program on the underlay's tc ingress (shared by the
// tunnels on that device), counters at a slot of tun_stats. Per session: a veth pair (devices.ts),
// rx_sess and tx_cfg entries, the transmit programs on the pair, counters at a slot of sess_stats.
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, rm, rmdir, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { deepEqual } from '../../../lib/deep-equal.js';
import type { Logger } from '../../../lib/log.js';
import { cookieBytes } from '../../../lib/wire/session.js';
import {
  ForeignDeviceError,
  sessionKey,
  type Backend,
  type BackendOptions,
  type ObservedSession,
  type ObservedTunnel,
  type SessionCounters,
  type SessionRef,
  type SessionSpec,
  type TunnelCounters,
  type TunnelSpec,
} from '../types.js';
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import type { TcQdisc } from '../../../lib/netlink/rtnl-tc.js';
import { getLink, ifindexOf, upAgain, type TapLink } from '../userspace/tap.js';
import {
  configureEnd,
  createPair,
  deletePair,
  listVeths,
  neighbourMac,
  peerName,
  underlayRoute,
  unfinishedPair,
  type VethLink,
} from './devices.js';
import {
  ENCAP,
  MAP_ENTRIES,
  SIZES,
  StatsSlots,
  decodeRxCfg,
  decodeSessStats,
  decodeTunKey,
  decodeTunStats,
  decodeTunVal,
  encodeRxCfg,
  encodeTunKey,
  encodeTunVal,
  encodeTxCfg,
  macBytes,
  perCpuZero,
  sumPerCpu,
  tunKeyOfTxCfg,
  u32Key,
} from './maps.js';
import {
  addonPath,
  loadEbpfNative,
  mapEntries,
  possibleCpus,
  type EbpfNative,
  type MapName,
  type OpenResult,
  type ProgName,
} from './native.js';
import {
  attachFilters,
  bindSessionDevices,
  clsactQdiscs,
  BLOCK,
  SESSION_ENDS,
  detachFilter,
  filterProgId,
  foreignBlockUsers,
  type BlockFilter,
  type Filter,
  type Hook,
  type SessionDevice,
  type SessionEnd,
} from './tc.js';

const BPFFS_MAGIC = 0xcafe4a11;
/**
 * Queues of a session's veth pair at most: l2tpethN's receive queues each hold a ring of 256 frames
 * and a NAPI context (a few KB each), so a node with many CPUs and sessions lets CPUs share them.
 */
export const SESSION_QUEUES = 8;
export const DEFAULT_BPFFS = '/sys/fs/bpf';

export interface EbpfBackendOptions extends BackendOptions {
  /** A bpffs mount; the backend pins under <bpffs>/kube-l2tp/net-<netns inode>/<build>. */
  bpffs?: string;
}

interface TunnelState {
  spec: TunnelSpec;
  underlay: string;
  underlayIfindex: number;
  nexthop: string;
  /** "next hop MAC/our MAC", empty while the neighbour is unresolved. */
  macs: string;
  key: Buffer;
  /** Its index into tun_stats. */
  slot: number;
}

interface Slots {
  sess: StatsSlots;
  tun: StatsSlots;
  /** Tunnels' slots as the maps held them when this process started (an adopted set). */
  found: Map<number, number>;
}

/** The ifindexes of a session's pair: the peer, and l2tpethN while it is in this namespace. */
interface PairEnds {
  peer: number;
  dev?: number;
}

interface SessionState {
  spec: SessionSpec;
  peer: string;
  peerIfindex: number;
  /** l2tpethN's ifindex while it has the fast-path key in tx_cfg. */
  fastIfindex?: number;
  /** l2tpethN's ifindex when it was last seen in this namespace. */
  devIfindex?: number;
}

/**
 * UDP without sequencing or checksums: GSO super-packets are encapsulated whole at l2tpethN's egress
 * and the kernel segments them like VXLAN. bpf_skb_adjust_room cannot ask for checksummed UDP tunnel
 * segments, so a checksummed tunnel takes the segmented path and its program sums every datagram.
 */
const fastPath = (t: TunnelSpec, s: SessionSpec) => t.encap === 'udp' && !s.sendSequence && !t.udpChecksum;

/** The build's identity: programs of another build get a directory of their own. */
function buildId(): string {
  return createHash('sha256').update(readFileSync(addonPath())).digest('hex').slice(0, 12);
}

export class EbpfBackend implements Backend {
  readonly kind = 'ebpf' as const;
  private readonly tunnels = new Map<number, TunnelState>();
  private readonly sessions = new Map<string, SessionState>();
  /** Underlay filters known to run our program: "ifindex/hook". */
  private readonly attached = new Set<string>();
  /** Shared blocks whose filter this process has checked runs its program. */
  private readonly checkedBlocks = new Set<number>();
  private readonly cpus = possibleCpus();
  private readonly log: Logger;
  /**
   * The veths as the last listSessions found them, by name. A reconcile pass lists before it
   * ensures, so a converged session is checked without reading its devices again (two reads a session
   * on every pass). A device that moves after the listing (the CNI moving
   * l2tpethN into a pod) kicks a pass of its own, which lists it where it is: the view lags one pass
   * at most, and the periodic resync catches a device changed by hand.
   */
  private listed?: Map<string, VethLink>;
  /**
   * The qdiscs at the session devices' clsact place, dumped once in a pass that adopts devices (a
   * restarted agent adopts all of them: one dump instead of a request per device). A listing drops it.
   */
  private clsacts: Map<number, TcQdisc> | undefined;
  /** Statistics slots in use, read from the maps once (an adopted set keeps its counters). */
  private slots?: Slots;
  /** Underlay ifindexes of tun_map keys this process did not configure, by key; a listing drops it. */
  private keyRoutes: Map<string, number | undefined> | undefined;

  private constructor(
    private readonly native: EbpfNative,
    private readonly pinDir: string,
    private readonly set: OpenResult,
    opts: EbpfBackendOptions,
  ) {
    this.log = opts.logger;
  }

  /** Loads (or adopts) the programs and maps; throws with the reason when BPF is not usable. */
  static async open(opts: EbpfBackendOptions): Promise<EbpfBackend> {
    const native = loadEbpfNative();
    const bpffs = opts.bpffs ?? DEFAULT_BPFFS;
    await ensureBpffs(bpffs);
    // before anything is loaded or pinned: a namespace whose blocks another tool uses is left as it is
    const mine = new Set((await listVeths()).filter((v) => v.owner).map((v) => v.ifindex));
    const foreign = await foreignBlockUsers((ifindex) => mine.has(ifindex));
    if (foreign.length) {
      throw new Error(
        `tc blocks ${Object.values(BLOCK).join(', ')} of this network namespace, which the ebpf backend's session devices use, are in use by another tool: ${foreign.join('; ')}`,
      );
    }
    // ifindexes in the maps mean something in one network namespace only: nodes sharing a bpffs
    // (network namespaces on one host) keep apart, and a restarted agent finds its own
    const netns = /\[(\d+)\]/.exec(await readlink('/proc/self/ns/net'))?.[1] ?? 'unknown';
    const root = join(bpffs, 'kube-l2tp', `net-${netns}`);
    const id = buildId();
    const pinDir = join(root, id);
    await mkdir(pinDir, { recursive: true });
    let set: OpenResult;
    try {
      set = native.open(pinDir);
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(/not permitted|EPERM/i.test(msg) ? `BPF not permitted: ${msg}` : msg);
    }
    // Pins of another build: their programs keep forwarding until our filters replace them.
    for (const other of await readdir(root)) {
      if (other !== id) await rm(join(root, other), { recursive: true, force: true });
    }
    const b = new EbpfBackend(native, pinDir, set, opts);
    b.log.info(
      { pinDir, adopted: set.adopted, rxProgram: native.progId(set.progs.l2tp_rx) },
      set.adopted ? 'pinned programs and maps adopted' : 'programs loaded and pinned',
    );
    return b;
  }

  get adopted(): boolean {
    return this.set.adopted;
  }

  private map(name: MapName): number {
    return this.set.maps[name];
  }

  private filter(ifindex: number, hook: Hook, prog: ProgName): Filter {
    return { ifindex, hook, prog: { fd: this.set.progs[prog], name: prog } };
  }

  /** Attaches the filter unless ours on that hook already runs exactly its program. */
  private async ensureFilter(f: Filter): Promise<void> {
    const k = `${f.ifindex}/${f.hook}`;
    if (this.attached.has(k)) return;
    if ((await filterProgId(f.ifindex, f.hook)) !== this.native.progId(f.prog.fd)) await attachFilters([f]);
    this.attached.add(k);
  }

  /** Our filter on the block an end binds; the first time in this process, checked for its program. */
  private blockFilter(end: SessionEnd): BlockFilter {
    const { blocks, hook, prog: name } = SESSION_ENDS[end];
    const block = blocks[hook];
    const prog = { fd: this.set.progs[name], name };
    return this.checkedBlocks.has(block)
      ? { block, prog }
      : { block, prog, progId: this.native.progId(prog.fd) };
  }

  private async dropFilter(ifindex: number, hook: Hook): Promise<void> {
    await detachFilter(ifindex, hook);
    this.attached.delete(`${ifindex}/${hook}`);
  }

  private statsSlots(): Slots {
    if (!this.slots) {
      const rx = this.rxEntries().map(([, v]) => v);
      // a tunnel's slot is in its tun_map entry and in its sessions' (over IP, tunnels between the
      // same two addresses share one entry: the others are known by their sessions)
      const found = new Map(rx.map((v) => [v.tunnelId, v.tunSlot]));
      for (const v of this.tunVals()) found.set(v.tunnelId, v.statsSlot);
      this.slots = {
        sess: new StatsSlots(
          MAP_ENTRIES,
          rx.map((v) => v.statsSlot),
        ),
        tun: new StatsSlots(MAP_ENTRIES, found.values()),
        found,
      };
    }
    return this.slots;
  }

  /** A new slot for a session's or a tunnel's counters, zeroed (a slot is reused once freed). */
  private takeSlot(kind: 'sess' | 'tun'): number {
    let slot: number;
    try {
      slot = this.statsSlots()[kind].take();
    } catch (e) {
      const what = kind === 'sess' ? 'sessions' : 'tunnels';
      throw new Error(
        `the ebpf backend holds at most ${MAP_ENTRIES} ${what} on a node: ${(e as Error).message}`,
      );
    }
    const size = kind === 'sess' ? SIZES.sessStats : SIZES.tunStats;
    this.native.mapUpdate(
      this.map(kind === 'sess' ? 'sess_stats' : 'tun_stats'),
      u32Key(slot),
      perCpuZero(size, this.cpus),
    );
    return slot;
  }

  private rxCfg(sessionKey: Buffer): ReturnType<typeof decodeRxCfg> | undefined {
    const v = this.native.mapLookup(this.map('rx_sess'), sessionKey, SIZES.rxCfg);
    return v ? decodeRxCfg(v) : undefined;
  }

  /** rx_sess's entries (session id, its receive configuration), in one read of the map. */
  private rxEntries(): [sessionId: number, cfg: ReturnType<typeof decodeRxCfg>][] {
    return mapEntries(this.native, this.map('rx_sess'), 4, SIZES.rxCfg).map(([k, v]) => [
      k.readUInt32LE(0),
      decodeRxCfg(v),
    ]);
  }

  /** tun_map's values, with their keys. */
  private tunVals(): (ReturnType<typeof decodeTunVal> & { key: Buffer })[] {
    const fd = this.map('tun_map');
    return mapEntries(this.native, fd, SIZES.tunKey, SIZES.tunVal).map(([key, v]) => ({
      ...decodeTunVal(v),
      key: Buffer.from(key),
    }));
  }

  /** A tunnel's statistics slot: this process's, or the one its tun_map entry carried when adopted. */
  private tunnelSlot(tunnelId: number): number | undefined {
    return this.tunnels.get(tunnelId)?.slot ?? this.statsSlots().found.get(tunnelId);
  }

  async listTunnels(): Promise<ObservedTunnel[]> {
    // over IP, tunnels between the same two addresses share one tun_map entry: the others are
    // known by their sessions, or to this process
    const ids = new Set([
      ...this.tunVals().map((v) => v.tunnelId),
      ...this.rxEntries().map(([, v]) => v.tunnelId),
      ...this.tunnels.keys(),
    ]);
    return [...ids].map((tunnelId) => {
      const t = this.tunnels.get(tunnelId);
      return { tunnelId, owned: true, ...(t ? { params: t.spec } : {}) };
    });
  }

  async listSessions(): Promise<ObservedSession[]> {
    const entries = this.rxEntries();
    // sessions the maps hold and this process has not taken on yet are adopted in this pass (all of
    // them after a restart): only then are hardening's sysctls worth decoding from the dump
    const adopting = entries.some(([sessionId, v]) => !this.sessions.has(sessionKey(v.tunnelId, sessionId)));
    // by name: a node can hold thousands of sessions, two veths each
    const veths = new Map((await listVeths({ sysctls: adopting })).map((l) => [l.ifname, l]));
    this.listed = veths;
    this.clsacts = undefined;
    this.keyRoutes = undefined;
    const out: ObservedSession[] = [];
    for (const [sessionId, v] of entries) {
      const { tunnelId } = v;
      const live = this.sessions.get(sessionKey(tunnelId, sessionId));
      const peer = veths.get(peerName(sessionId));
      // l2tpethN when it is here; otherwise (moved into a pod, or gone) what we know of it
      const dev = peer?.peer !== undefined ? veths.get(peer.peer) : undefined;
      const s: ObservedSession = {
        tunnelId,
        sessionId,
        ifname: dev?.ifname ?? live?.spec.ifname ?? peerName(sessionId),
        up: !!peer?.up && (dev ? dev.up : !!peer.peerElsewhere),
        owned: true,
      };
      const shown = dev ?? peer;
      if (shown) {
        s.ifindex = shown.ifindex;
        s.mtu = shown.mtu;
      }
      if (live) {
        const { tunnelId: _t, ifname: _i, ...params } = live.spec;
        s.params = params;
      }
      out.push(s);
    }
    // a marked pair with no map entry: an agent stopped between making it and writing the maps, or a
    // session whose map writes failed. Listed, so that it is finished when wanted and removed when not
    const inMaps = new Set(entries.map(([sessionId]) => sessionId));
    for (const peer of veths.values()) {
      const o = peer.owner;
      if (!o || peer.ifname !== peerName(o.sessionId) || inMaps.has(o.sessionId)) continue;
      const dev = peer.peer !== undefined ? veths.get(peer.peer) : undefined;
      const shown = dev ?? peer;
      out.push({
        tunnelId: o.tunnelId,
        sessionId: o.sessionId,
        ifname: dev?.ifname ?? peerName(o.sessionId),
        ifindex: shown.ifindex,
        mtu: shown.mtu,
        up: peer.up && (dev ? dev.up : peer.peerElsewhere),
        owned: true,
      });
    }
    return out;
  }

  async ensureTunnel(spec: TunnelSpec): Promise<void> {
    const cur = this.tunnels.get(spec.tunnelId);
    if (cur && deepEqual(cur.spec, spec) && (await getLink(cur.underlay))?.ifindex === cur.underlayIfindex) {
      const route = await underlayRoute(spec.local, spec.remote).catch(() => undefined);
      // a route that moved to another device takes the full way below: the sessions must send out of
      // that one and the receive program must run there (no route at all: the probe reports it)
      if (!route || route.dev === cur.underlay) {
        // IP frames go to the route's next hop without a route lookup per frame: follow a new next
        // hop on the same device here
        const nexthop = route?.nexthop ?? cur.nexthop;
        const macs = await this.underlayMacs(spec, cur.underlay, nexthop);
        if (macs !== cur.macs || nexthop !== cur.nexthop) {
          cur.macs = macs;
          cur.nexthop = nexthop;
          await this.rewriteSessions(spec.tunnelId);
        }
        return;
      }
      this.log.info(
        { tunnelId: spec.tunnelId, from: cur.underlay, to: route.dev },
        'the route to the peer moved to another device',
      );
    }
    const { dev: underlay, nexthop } = await underlayRoute(spec.local, spec.remote);
    const link = await getLink(underlay);
    if (!link) throw new Error(`underlay device ${underlay} vanished`);
    const key = encodeTunKey({
      local: spec.local,
      remote: spec.remote,
      localPort: spec.udpSourcePort ?? 0,
      remotePort: spec.udpDestinationPort ?? 0,
      encap: spec.encap,
    });
    // the tunnel's entries under another key (its addresses or ports changed, also while no agent
    // ran): packets to the old ones are not the tunnel's any more
    for (const v of this.tunVals())
      if (v.tunnelId === spec.tunnelId && !v.key.equals(key))
        this.native.mapDelete(this.map('tun_map'), v.key);
    const slot = this.tunnelSlot(spec.tunnelId) ?? this.takeSlot('tun');
    this.native.mapUpdate(
      this.map('tun_map'),
      key,
      encodeTunVal({ tunnelId: spec.tunnelId, statsSlot: slot }),
    );
    await this.ensureFilter(this.filter(link.ifindex, 'ingress', 'l2tp_rx'));
    const macs = await this.underlayMacs(spec, underlay, nexthop);
    this.tunnels.set(spec.tunnelId, {
      spec,
      underlay,
      underlayIfindex: link.ifindex,
      nexthop,
      macs,
      key,
      slot,
    });
    if (cur && cur.underlayIfindex !== link.ifindex) await this.releaseUnderlay(cur.underlayIfindex);
    this.log.info(
      { tunnelId: spec.tunnelId, encap: spec.encap, local: spec.local, remote: spec.remote, underlay },
      'tunnel up',
    );
    await this.rewriteSessions(spec.tunnelId);
  }

  /** Sessions carry the tunnel's addressing in tx_cfg: rewrite them. */
  private async rewriteSessions(tunnelId: number): Promise<void> {
    for (const s of [...this.sessions.values()].filter((s) => s.spec.tunnelId === tunnelId)) {
      this.sessions.delete(sessionKey(tunnelId, s.spec.sessionId));
      await this.ensureSession(s.spec);
    }
  }

  /**
   * IP frames leave through bpf_redirect_neigh, which resolves the next hop itself. Other frames (a
   * pod's first frame is usually ARP) need the MACs in tx_cfg: read them from the neighbour table,
   * and when the next hop is not resolved yet, one datagram to the discard port makes the kernel
   * resolve it.
   */
  private async underlayMacs(spec: TunnelSpec, dev: string, nexthop: string): Promise<string> {
    let mac = await neighbourMac(dev, nexthop);
    if (!mac) {
      await sendProbe(spec.local, spec.remote);
      for (let i = 0; i < 10 && !mac; i++) {
        await new Promise((r) => setTimeout(r, 20));
        mac = await neighbourMac(dev, nexthop);
      }
    }
    const own = (await readFile(`/sys/class/net/${dev}/address`, 'utf8').catch(() => '')).trim();
    return mac && own ? `${mac}/${own}` : '';
  }

  private async releaseUnderlay(ifindex: number): Promise<void> {
    if ([...this.tunnels.values()].some((t) => t.underlayIfindex === ifindex)) return;
    await this.dropFilter(ifindex, 'ingress');
  }

  async deleteTunnel(tunnelId: number): Promise<void> {
    const fd = this.map('tun_map');
    const slot = this.tunnelSlot(tunnelId);
    const entries = this.tunVals().filter((v) => v.tunnelId === tunnelId);
    // IP-encapsulation tunnels between the same two addresses share one key: a survivor takes it
    // over in place (no moment without the entry)
    for (const { key } of entries) {
      const heir = this.heirOf(tunnelId, key);
      if (heir) this.native.mapUpdate(fd, key, encodeTunVal(heir));
      else this.native.mapDelete(fd, key);
    }
    if (slot !== undefined) this.statsSlots().tun.release(slot);
    this.statsSlots().found.delete(tunnelId);
    const t = this.tunnels.get(tunnelId);
    this.tunnels.delete(tunnelId);
    if (t) await this.releaseUnderlay(t.underlayIfindex);
    else if (mapEntries(this.native, fd, SIZES.tunKey, SIZES.tunVal).length === 0) {
      // not configured by this process: with no tunnel left, no underlay needs the program
      for (const l of await withRtnl((r) => r.links.list())) await this.dropFilter(l.index, 'ingress');
    } else {
      await this.releaseUnknownUnderlays(entries.map((v) => v.key));
    }
    this.log.info({ tunnelId }, 'tunnel deleted');
  }

  /**
   * Another tunnel whose datagrams arrive under this key (over IP, tunnels between the same two
   * addresses): this process's, or, before it has taken the others on (a restarted agent removes the
   * tunnels it no longer wants first), one the maps hold a session of. Handing the key over keeps the
   * receive program and the survivor's traffic going through the removal.
   */
  private heirOf(tunnelId: number, key: Buffer): { tunnelId: number; statsSlot: number } | undefined {
    const mine = [...this.tunnels.values()].find((t) => t.spec.tunnelId !== tunnelId && t.key.equals(key));
    if (mine) return { tunnelId: mine.spec.tunnelId, statsSlot: mine.slot };
    if (key[36] !== ENCAP.ip) return undefined; // a UDP key is one tunnel's alone
    const rx = new Map(this.rxEntries());
    for (const [, tx] of mapEntries(this.native, this.map('tx_cfg'), 4, SIZES.txCfg)) {
      if (!tunKeyOfTxCfg(tx).equals(key)) continue;
      const cfg = rx.get(tx.readUInt32LE(0));
      if (cfg && cfg.tunnelId !== tunnelId) return { tunnelId: cfg.tunnelId, statsSlot: cfg.tunSlot };
    }
    return undefined;
  }

  /**
   * A tunnel this process did not configure (a restarted agent removes those before it sets up the
   * others) was the last on its underlay when no tunnel left routes over that device any more. The
   * devices come from the routes; one that cannot be read keeps the program where it is.
   */
  private async releaseUnknownUnderlays(keys: Buffer[]): Promise<void> {
    // a restarted agent may remove many tunnels in one pass: each key's route is looked up once a pass
    const routes = (this.keyRoutes ??= new Map());
    const via = async (key: Buffer) => {
      const k = key.toString('hex');
      if (routes.has(k)) return routes.get(k);
      const { local, remote } = decodeTunKey(key);
      const route = await underlayRoute(local, remote).catch(() => undefined);
      const ifindex = route && (await getLink(route.dev))?.ifindex;
      routes.set(k, ifindex);
      return ifindex;
    };
    const used = new Set([...this.tunnels.values()].map((t) => t.underlayIfindex));
    for (const v of this.tunVals()) {
      if (this.tunnels.has(v.tunnelId)) continue;
      const ifindex = await via(v.key);
      if (ifindex === undefined) return;
      used.add(ifindex);
    }
    for (const key of keys) {
      const ifindex = await via(key);
      if (ifindex !== undefined && !used.has(ifindex)) await this.dropFilter(ifindex, 'ingress');
    }
  }

  async ensureSession(spec: SessionSpec): Promise<void> {
    const t = this.tunnels.get(spec.tunnelId);
    if (!t) throw new Error(`tunnel ${spec.tunnelId} does not exist`);
    const k = sessionKey(spec.tunnelId, spec.sessionId);
    const cur = this.sessions.get(k);
    const peer = peerName(spec.sessionId);
    // converged while the devices are where they were: l2tpethN moved into a pod (or back) changes
    // where the receive program delivers. Every pass asks this of every session
    const at = (name: string) => (this.listed ? this.listed.get(name)?.ifindex : ifindexOf(name));
    if (
      cur &&
      deepEqual(cur.spec, spec) &&
      at(peer) === cur.peerIfindex &&
      at(spec.ifname) === cur.devIfindex
    ) {
      // an end set down by hand (the pass's listing says so) comes up again, as the kernel backend's
      // devices do; l2tpethN in a pod is the pod's to set
      for (const name of [peer, spec.ifname]) if (this.listed?.get(name)?.up === false) await upAgain(name);
      return;
    }
    let peerLink = await this.linkNow(peer);
    let dev = await this.linkNow(spec.ifname);
    const mine = (l: { owner?: { tunnelId: number; sessionId: number } } | undefined) =>
      l?.owner?.tunnelId === spec.tunnelId && l.owner.sessionId === spec.sessionId;
    if (peerLink && !mine(peerLink)) {
      if (!(await unfinishedPair(peer, spec.ifname)))
        throw new ForeignDeviceError(peer, "it is not this session's peer device");
      this.log.warn(
        { tunnelId: spec.tunnelId, sessionId: spec.sessionId, ifname: spec.ifname },
        'session pair left unfinished by an earlier agent (made, never marked): made anew',
      );
      await deletePair(peer);
      peerLink = dev = undefined;
    }
    let adopted = !!peerLink;
    if (peerLink && cur && cur.spec.ifname !== spec.ifname) {
      await deletePair(peer); // renamed: a new pair under the new name
      adopted = false;
    }
    let ends: PairEnds;
    if (!adopted) {
      if (dev) {
        // ours from another backend (a TAP of the userspace one): replace it; anything else stays
        if (!mine(dev))
          throw new ForeignDeviceError(spec.ifname, "it is not this session's kube-l2tp device");
        await deletePair(spec.ifname);
      }
      // queues, offloads and qdiscs are set before the pair comes up: on a device that is up, each
      // of those waits for an RCU grace period
      ends = await createPair(
        spec.ifname,
        peer,
        spec,
        { mtu: spec.mtu, queues: Math.min(this.cpus, SESSION_QUEUES) },
        async () => {
          const made = this.newEnds(spec);
          await this.prepareEnds(spec, t.spec, made, true);
          return made;
        },
      );
    } else {
      if (dev) await configureEnd(spec.ifname, spec.tunnelId, spec.sessionId, spec.mtu, { current: dev });
      // the peer forwards what l2tpethN sends, so it must take frames of l2tpethN's MTU
      await configureEnd(peer, spec.tunnelId, spec.sessionId, spec.mtu, { current: peerLink! });
      ends = { peer: peerLink!.ifindex, ...(dev ? { dev: dev.ifindex } : {}) };
      await this.prepareEnds(spec, t.spec, ends, false);
    }
    const fast = fastPath(t.spec, spec);
    // a session keeps its slot (and counters) across updates and restarts; a session id taken over
    // from another tunnel starts from zero
    const held = this.rxCfg(u32Key(spec.sessionId));
    if (held && held.tunnelId !== spec.tunnelId) this.statsSlots().sess.release(held.statsSlot);
    const statsSlot = held?.tunnelId === spec.tunnelId ? held.statsSlot : this.takeSlot('sess');
    const cookie = cookieBytes(spec.cookie);
    const l2specLength = spec.l2specType === 'default' ? 4 : 0;
    const tx = encodeTxCfg({
      sessionId: spec.sessionId,
      peerSessionId: spec.peerSessionId,
      underlayIfindex: t.underlayIfindex,
      local: t.spec.local,
      remote: t.spec.remote,
      sport: t.spec.udpSourcePort ?? 0,
      dport: t.spec.udpDestinationPort ?? 0,
      encap: t.spec.encap,
      cookie,
      l2specLength,
      sendSequence: spec.sendSequence,
      udpChecksum: t.spec.udpChecksum,
      nexthop: t.nexthop,
      statsSlot,
      ...(t.macs ? { dmac: macBytes(t.macs.split('/')[0]!), smac: macBytes(t.macs.split('/')[1]!) } : {}),
    });
    const seqKey = u32Key(spec.sessionId);
    if (!this.native.mapLookup(this.map('seq_state'), seqKey, SIZES.seqState))
      this.native.mapUpdate(this.map('seq_state'), seqKey, Buffer.alloc(SIZES.seqState));
    this.native.mapUpdate(
      this.map('rx_sess'),
      u32Key(spec.sessionId),
      encodeRxCfg({
        tunnelId: spec.tunnelId,
        ifindex: ends.peer,
        devIfindex: ends.dev ?? 0,
        peerCookie: cookieBytes(spec.peerCookie),
        l2specLength,
        requireSequence: spec.requireSequence,
        udpChecksum: t.spec.encap === 'udp' && t.spec.udpChecksum,
        statsSlot,
        tunSlot: t.slot,
      }),
    );
    this.native.mapUpdate(this.map('tx_cfg'), u32Key(ends.peer), tx);
    if (cur?.fastIfindex !== undefined && cur.fastIfindex !== ends.dev)
      this.native.mapDelete(this.map('tx_cfg'), u32Key(cur.fastIfindex));
    let fastIfindex: number | undefined;
    if (ends.dev !== undefined && fast) {
      this.native.mapUpdate(this.map('tx_cfg'), u32Key(ends.dev), tx);
      fastIfindex = ends.dev;
    } else if (ends.dev !== undefined) {
      this.native.mapDelete(this.map('tx_cfg'), u32Key(ends.dev));
    }
    this.sessions.set(k, {
      spec,
      peer,
      peerIfindex: ends.peer,
      ...(fastIfindex !== undefined ? { fastIfindex } : {}),
      ...(ends.dev !== undefined ? { devIfindex: ends.dev } : {}),
    });
    this.log.info(
      {
        tunnelId: spec.tunnelId,
        sessionId: spec.sessionId,
        ifname: spec.ifname,
        mtu: spec.mtu,
        adopted,
        path: fast ? 'gso' : 'segmented',
      },
      adopted ? 'session adopted' : 'session up',
    );
    if (spec.requireSequence && spec.reorderTimeoutMs > 0) {
      this.log.warn(
        { tunnelId: spec.tunnelId, sessionId: spec.sessionId, reorderTimeoutMs: spec.reorderTimeoutMs },
        'the ebpf backend cannot hold frames for reordering: out-of-sequence frames are dropped as with reorderTimeout 0',
      );
    }
  }

  /**
   * The device named so as it is now: the listing's entry while that name still has its ifindex (one
   * read instead of a device's whole sysfs; a pass may have deleted it since, or made another), else
   * read anew.
   */
  private async linkNow(ifname: string): Promise<TapLink | undefined> {
    const l = this.listed?.get(ifname);
    return l && ifindexOf(ifname) === l.ifindex ? l : getLink(ifname);
  }

  /** The ifindexes of a pair made just now (both ends are in this namespace). */
  private newEnds(spec: SessionSpec): PairEnds {
    const peer = ifindexOf(peerName(spec.sessionId));
    const dev = ifindexOf(spec.ifname);
    if (peer === undefined || dev === undefined)
      throw new Error(
        `session device ${peer === undefined ? peerName(spec.sessionId) : spec.ifname} vanished`,
      );
    return { peer, dev };
  }

  /**
   * Queues, offloads and tc qdiscs of the pair's ends in this namespace (l2tpethN only while it is
   * here: ends.dev), and our filters on the blocks they bind. fresh: a pair made just now, still down.
   */
  private async prepareEnds(
    spec: SessionSpec,
    tunnel: TunnelSpec,
    ends: PairEnds,
    fresh: boolean,
  ): Promise<void> {
    const peer = peerName(spec.sessionId);
    // received single frames leave through the peer: veth gives them l2tpethN's NAPI and GRO only
    // when the sending end has TSO off (super-packets take another way in, never this one)
    this.native.setOffloads(peer, { tso: false });
    // a new pair was made with its queues
    if (!fresh) this.setQueues(peer, spec.sessionId);
    if (ends.dev !== undefined) {
      // GRO on l2tpethN gives decapsulated traffic NAPI and GRO; slow-path sessions need segmented
      // frames (no GSO for protocol 115; one sequence number per frame), and an outer UDP checksum
      // needs the inner ones filled before it is summed
      const fast = fastPath(tunnel, spec);
      const csum = tunnel.encap === 'udp' && tunnel.udpChecksum;
      this.native.setOffloads(spec.ifname, { gro: true, tso: fast, gso: fast, txcsum: !csum });
      if (!fresh) this.setQueues(spec.ifname, spec.sessionId);
    }
    const devices: SessionDevice[] = [{ ifindex: ends.peer, end: 'peer' }];
    if (ends.dev !== undefined) devices.push({ ifindex: ends.dev, end: 'dev' });
    const filters = devices.map((d) => this.blockFilter(d.end));
    // adopted devices: one qdisc dump for the pass instead of a request per device
    if (!fresh && this.listed) this.clsacts ??= await clsactQdiscs();
    const replaced = await bindSessionDevices(devices, fresh, filters, this.clsacts);
    for (const f of filters) this.checkedBlocks.add(f.block);
    if (replaced)
      this.log.info(
        { tunnelId: spec.tunnelId, sessionId: spec.sessionId, qdiscs: replaced },
        "session devices' qdiscs replaced by ones bound to the shared tc blocks",
      );
  }

  /**
   * A queue per CPU (up to SESSION_QUEUES) on both ends of the pair: the receive program sends each
   * CPU's single TCP frames through its own queue of the peer into its own ring and NAPI of
   * l2tpethN. A kernel that cannot set them leaves one queue: slower under load, still correct.
   */
  private setQueues(ifname: string, sessionId: number): void {
    const want = Math.min(this.cpus, SESSION_QUEUES);
    try {
      const got = this.native.setChannels(ifname, want);
      if (got.rx < want || got.tx < want)
        this.log.debug({ ifname, sessionId, want, ...got }, 'fewer session device queues than CPUs');
    } catch (e) {
      this.log.warn(
        { ifname, sessionId, err: (e as Error).message },
        'session device queues not set: received TCP is merged through one queue',
      );
    }
  }

  async deleteSession(tunnelId: number, sessionId: number): Promise<void> {
    const peer = peerName(sessionId);
    const link = await getLink(peer);
    if (link && link.owner?.tunnelId === tunnelId && link.owner.sessionId === sessionId)
      await deletePair(peer);
    this.forget([{ tunnelId, sessionId }]);
  }

  /** The pairs go in one rtnetlink request (deleting the node-side end takes the other with it). */
  async deleteSessions(sessions: readonly SessionRef[]): Promise<void> {
    if (sessions.length === 0) return;
    const peers = new Map<string, number>();
    for (const v of await listVeths())
      if (v.owner && v.ifname === peerName(v.owner.sessionId))
        peers.set(sessionKey(v.owner.tunnelId, v.owner.sessionId), v.ifindex);
    const batch = sessions
      .map((s) => peers.get(sessionKey(s.tunnelId, s.sessionId)))
      .filter((i): i is number => i !== undefined);
    if (batch.length) {
      const r = await withRtnl((rt) => rt.links.delMany(batch));
      this.log.info({ pairs: r.deleted, oneRequest: r.batched }, 'session veth pairs deleted');
    }
    this.forget(sessions);
  }

  /** Drops the sessions from the maps (those still of that tunnel) and from this process's state. */
  private forget(sessions: readonly SessionRef[]): void {
    const gone = new Set<number>();
    for (const { tunnelId, sessionId } of sessions) {
      const rx = this.rxCfg(u32Key(sessionId));
      if (!rx || rx.tunnelId === tunnelId) {
        this.native.mapDelete(this.map('rx_sess'), u32Key(sessionId));
        if (rx) this.statsSlots().sess.release(rx.statsSlot);
        this.native.mapDelete(this.map('seq_state'), u32Key(sessionId));
        gone.add(sessionId);
      }
      this.sessions.delete(sessionKey(tunnelId, sessionId));
      this.log.info({ tunnelId, sessionId }, 'session deleted');
    }
    if (!gone.size) return;
    // one pass over tx_cfg for all of them
    const tx = this.map('tx_cfg');
    for (const [k, v] of mapEntries(this.native, tx, 4, SIZES.txCfg))
      if (gone.has(v.readUInt32LE(0))) this.native.mapDelete(tx, k);
  }

  async counters(tunnelId: number, sessionId: number): Promise<SessionCounters | undefined> {
    const rx = this.rxCfg(u32Key(sessionId));
    if (!rx || rx.tunnelId !== tunnelId) return undefined;
    return this.slotCounters(rx.statsSlot);
  }

  private slotCounters(slot: number): SessionCounters | undefined {
    const size = perCpuZero(SIZES.sessStats, this.cpus).length;
    const v = this.native.mapLookup(this.map('sess_stats'), u32Key(slot), size);
    return v ? decodeSessStats(sumPerCpu(v, SIZES.sessStats, this.cpus)) : undefined;
  }

  async allCounters(): Promise<Map<string, SessionCounters>> {
    const out = new Map<string, SessionCounters>();
    for (const [sessionId, rx] of this.rxEntries()) {
      const c = this.slotCounters(rx.statsSlot);
      if (c) out.set(sessionKey(rx.tunnelId, sessionId), c);
    }
    return out;
  }

  async tunnelCounters(tunnelId: number): Promise<TunnelCounters | undefined> {
    const slot = this.tunnelSlot(tunnelId);
    if (slot === undefined) return undefined;
    const size = perCpuZero(SIZES.tunStats, this.cpus).length;
    const v = this.native.mapLookup(this.map('tun_stats'), u32Key(slot), size);
    return v ? decodeTunStats(sumPerCpu(v, SIZES.tunStats, this.cpus)) : undefined;
  }

  /** The id of a pinned program (tests compare it across restarts). */
  progId(prog: ProgName): number {
    return this.native.progId(this.set.progs[prog]);
  }

  async close(opts: { keepDevices: boolean }): Promise<void> {
    if (!opts.keepDevices) {
      await this.deleteSessions(await this.listSessions());
      for (const t of await this.listTunnels()) await this.deleteTunnel(t.tunnelId);
      for (const ifindex of new Set([...this.attached].map((a) => Number(a.split('/')[0]))))
        await this.dropFilter(ifindex, 'ingress');
      await rm(this.pinDir, { recursive: true, force: true });
      // this namespace's directory and kube-l2tp's go with their last pins (rmdir keeps them while
      // another namespace or build still has its own there)
      for (const dir of [dirname(this.pinDir), dirname(dirname(this.pinDir))])
        await rmdir(dir).catch(() => undefined);
    }
    for (const fd of [...Object.values(this.set.progs), ...Object.values(this.set.maps)])
      this.native.closeFd(fd);
    this.log.info({ keepDevices: opts.keepDevices }, 'ebpf backend closed');
  }
}

/**
 * The pins need a bpffs. Hosts mount one at /sys/fs/bpf (systemd does); the datapath pod mounts it
 * from the host, so pins outlive the container. Without one the backend is not used: mounting a new
 * instance here would die with this process's mount namespace, and the pins with it.
 */
async function ensureBpffs(dir: string): Promise<void> {
  const fs = await statfs(dir).catch((e: Error) => {
    throw new Error(`no bpffs at ${dir} (${e.message})`);
  });
  if (fs.type !== BPFFS_MAGIC) throw new Error(`no bpffs mounted at ${dir}`);
}

function sendProbe(local: string, remote: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const sock = createSocket(remote.includes(':') ? 'udp6' : 'udp4');
    const done = () => {
      sock.close();
      resolve();
    };
    sock.on('error', done);
    sock.bind({ address: local, port: 0 }, () => sock.send(Buffer.alloc(0), 9, remote, done));
  });
}

export function createEbpfBackend(opts: EbpfBackendOptions): Promise<EbpfBackend> {
  return EbpfBackend.open(opts);
}
