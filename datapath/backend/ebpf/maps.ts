// Byte layouts of the maps shared with the tc programs (bpf/l2tp.h is the other half: keep the two
// in step). Addresses, ports and cookies are stored in network order, IDs and lengths in host order.
import { isIPv4, isIPv6 } from 'node:net';
import { DROP_REASONS, type DropReason } from '../types.js';

export const ENCAP = { udp: 0, ip: 1 } as const;
const TXF_SEND_SEQ = 1;
const TXF_UDP_CSUM = 2;
const RXF_REQUIRE_SEQ = 1;
const RXF_UDP_CSUM = 2;

export const SIZES = {
  txCfg: 96,
  tunKey: 40,
  tunVal: 8,
  rxCfg: 32,
  sessStats: 120,
  tunStats: 80,
  seqState: 16,
} as const;

/** Entries of every map (MAX_ENTRIES in l2tp.bpf.c): also the statistics slots of sessions and of tunnels. */
export const MAP_ENTRIES = 16384;

/**
 * Indexes into a statistics array (sess_stats, tun_stats): the programs find a session's or a
 * tunnel's counters at the slot its configuration carries. The lowest free slot is handed out.
 */
export class StatsSlots {
  private readonly used = new Set<number>();
  private next = 0; // no free slot below this one

  constructor(
    private readonly size: number,
    inUse: Iterable<number> = [],
  ) {
    for (const n of inUse) this.used.add(n);
  }

  take(): number {
    while (this.used.has(this.next)) this.next++;
    if (this.next >= this.size) throw new Error(`all ${this.size} statistics slots are in use`);
    this.used.add(this.next);
    return this.next++;
  }

  release(n: number): void {
    if (this.used.delete(n) && n < this.next) this.next = n;
  }
}

/** 16 bytes: an IPv6 address, or an IPv4 address in the first 4. */
export function ipBytes(addr: string): Buffer {
  const b = Buffer.alloc(16);
  if (isIPv4(addr)) {
    Buffer.from(addr.split('.').map(Number)).copy(b);
    return b;
  }
  if (!isIPv6(addr) || addr.includes('.')) throw new Error(`not an IP address this backend takes: ${addr}`);
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

export const familyOf = (addr: string): 4 | 6 => (isIPv4(addr) ? 4 : 6);

export const u32Key = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

export interface TxCfg {
  sessionId: number;
  peerSessionId: number;
  underlayIfindex: number;
  local: string;
  remote: string;
  sport: number;
  dport: number;
  encap: 'udp' | 'ip';
  cookie: Buffer;
  l2specLength: 0 | 4;
  sendSequence: boolean;
  /** Checksum the outer UDP header (the frames must arrive segmented, with their checksums filled). */
  udpChecksum: boolean;
  /** Next hop and our MAC on the underlay (for frames that are not IP); zero when unknown. */
  dmac?: Buffer;
  smac?: Buffer;
  /** The underlay route's next hop: IP frames are handed to it without a route lookup per frame.
   * Without one (or of another family than the tunnel's), the kernel routes each frame. */
  nexthop?: string;
  /** The session's index into sess_stats. */
  statsSlot: number;
}

export const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));

export function encodeTxCfg(c: TxCfg): Buffer {
  const b = Buffer.alloc(SIZES.txCfg);
  b.writeUInt32LE(c.sessionId, 0);
  b.writeUInt32LE(c.peerSessionId, 4);
  b.writeUInt32LE(c.underlayIfindex, 8);
  b.writeUInt16BE(c.sport, 12);
  b.writeUInt16BE(c.dport, 14);
  b[16] = ENCAP[c.encap];
  b[17] = c.cookie.length;
  b[18] = c.l2specLength;
  b[19] = (c.sendSequence ? TXF_SEND_SEQ : 0) | (c.udpChecksum && c.encap === 'udp' ? TXF_UDP_CSUM : 0);
  b[20] = familyOf(c.local);
  ipBytes(c.local).copy(b, 24);
  ipBytes(c.remote).copy(b, 40);
  c.cookie.copy(b, 56);
  c.dmac?.copy(b, 64);
  c.smac?.copy(b, 70);
  if (c.nexthop && familyOf(c.nexthop) === familyOf(c.local)) {
    b[21] = 1;
    ipBytes(c.nexthop).copy(b, 76);
  }
  b.writeUInt32LE(c.statsSlot, 92);
  return b;
}

/** The tun_map key of a session's tunnel, from its tx_cfg entry (the receive side's view: local = our address). */
export function tunKeyOfTxCfg(b: Buffer): Buffer {
  const k = Buffer.alloc(SIZES.tunKey);
  b.copy(k, 0, 24, 56); // local, remote
  b.copy(k, 32, 12, 16); // local port, remote port
  k[36] = b[16]!; // encap
  k[37] = b[20]!; // family
  return k;
}

/** tun_map's value: the tunnel and its index into tun_stats. */
export function encodeTunVal(v: { tunnelId: number; statsSlot: number }): Buffer {
  const b = Buffer.alloc(SIZES.tunVal);
  b.writeUInt32LE(v.tunnelId, 0);
  b.writeUInt32LE(v.statsSlot, 4);
  return b;
}

export function decodeTunVal(b: Buffer): { tunnelId: number; statsSlot: number } {
  return { tunnelId: b.readUInt32LE(0), statsSlot: b.readUInt32LE(4) };
}

/** The tunnel as the receive path sees it: local = the packet's destination. */
export function encodeTunKey(t: {
  local: string;
  remote: string;
  localPort: number;
  remotePort: number;
  encap: 'udp' | 'ip';
}): Buffer {
  const b = Buffer.alloc(SIZES.tunKey);
  ipBytes(t.local).copy(b, 0);
  ipBytes(t.remote).copy(b, 16);
  b.writeUInt16BE(t.localPort, 32);
  b.writeUInt16BE(t.remotePort, 34);
  b[36] = ENCAP[t.encap];
  b[37] = familyOf(t.local);
  return b;
}

/** A tun_map key's addresses (IPv6 in full, uncompressed form). */
export function decodeTunKey(b: Buffer): { local: string; remote: string } {
  const addr = (off: number) =>
    b[37] === 4
      ? [...b.subarray(off, off + 4)].join('.')
      : Array.from({ length: 8 }, (_, i) => b.readUInt16BE(off + i * 2).toString(16)).join(':');
  return { local: addr(0), remote: addr(16) };
}

export interface RxCfg {
  tunnelId: number;
  ifindex: number;
  /** l2tpethN while it is in this namespace, else 0 (frames then go through the peer). */
  devIfindex: number;
  peerCookie: Buffer;
  l2specLength: 0 | 4;
  requireSequence: boolean;
  /** A UDP tunnel with checksums: over IPv6, received datagrams with checksum 0 are refused, as the
   * kernel's tunnel socket does unless told to accept them. */
  udpChecksum: boolean;
  /** The session's index into sess_stats. */
  statsSlot: number;
  /** Its tunnel's index into tun_stats: over IP, tunnels between the same two addresses share a
   * tun_map entry, and a datagram counts for the tunnel of its session. */
  tunSlot: number;
}

export function encodeRxCfg(c: RxCfg): Buffer {
  const b = Buffer.alloc(SIZES.rxCfg);
  b.writeUInt32LE(c.tunnelId, 0);
  b.writeUInt32LE(c.ifindex, 4);
  b.writeUInt32LE(c.devIfindex, 8);
  b[12] = c.peerCookie.length;
  b[13] = c.l2specLength;
  b[14] = (c.requireSequence ? RXF_REQUIRE_SEQ : 0) | (c.udpChecksum ? RXF_UDP_CSUM : 0);
  c.peerCookie.copy(b, 16);
  b.writeUInt32LE(c.statsSlot, 24);
  b.writeUInt32LE(c.tunSlot, 28);
  return b;
}

export function decodeRxCfg(b: Buffer): {
  tunnelId: number;
  ifindex: number;
  statsSlot: number;
  tunSlot: number;
} {
  return {
    tunnelId: b.readUInt32LE(0),
    ifindex: b.readUInt32LE(4),
    statsSlot: b.readUInt32LE(24),
    tunSlot: b.readUInt32LE(28),
  };
}

/** A per-CPU value as read from the kernel: one slot per possible CPU, each padded to 8 bytes. */
export function sumPerCpu(buf: Buffer, valueSize: number, cpus: number): bigint[] {
  const stride = Math.ceil(valueSize / 8) * 8;
  const fields = valueSize / 8;
  const out = new Array<bigint>(fields).fill(0n);
  for (let cpu = 0; cpu < cpus; cpu++)
    for (let i = 0; i < fields; i++) out[i]! += buf.readBigUInt64LE(cpu * stride + i * 8);
  return out;
}

export const perCpuZero = (valueSize: number, cpus: number): Buffer =>
  Buffer.alloc(Math.ceil(valueSize / 8) * 8 * cpus);

function drops(values: bigint[]): Partial<Record<DropReason, number>> {
  const r: Partial<Record<DropReason, number>> = {};
  DROP_REASONS.forEach((reason, i) => {
    const n = Number(values[i] ?? 0n);
    if (n > 0) r[reason] = n;
  });
  return r;
}

export function decodeSessStats(v: bigint[]) {
  const [txPackets, txBytes, txErrors, rxPackets, rxBytes, rxErrors] = v.slice(0, 6).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { txPackets, txBytes, txErrors, rxPackets, rxBytes, rxErrors, drops: drops(v.slice(6)) };
}

export function decodeTunStats(v: bigint[]) {
  return { rxPackets: Number(v[0] ?? 0n), drops: drops(v.slice(1)) };
}
