// Writing pcap files of IPv4/UDP or IPv4/proto-115 packets, so an independent decoder (tshark)
// can check what the codec produced.
import { writeFileSync } from 'node:fs';

function ipv4Checksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += h.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Underlay {
  src: string;
  dst: string;
  /** UDP ports; absent = IP protocol `proto`. */
  udp?: { sport: number; dport: number };
  /** The IP protocol without UDP (default 115, L2TPv3 over IP). */
  proto?: number;
}

/** An Ethernet/IPv4 packet carrying `payload` over UDP or as IP protocol 115 (or `proto`). */
export function ipv4Packet(u: Underlay, payload: Buffer): Buffer {
  const l4 = u.udp ? Buffer.alloc(8) : Buffer.alloc(0);
  if (u.udp) {
    l4.writeUInt16BE(u.udp.sport, 0);
    l4.writeUInt16BE(u.udp.dport, 2);
    l4.writeUInt16BE(8 + payload.length, 4);
    l4.writeUInt16BE(0, 6); // the kernel sends UDP checksum 0 on IPv4
  }
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + l4.length + payload.length, 2);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(u.udp ? 17 : (u.proto ?? 115), 9);
  Buffer.from(u.src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(u.dst.split('.').map(Number)).copy(ip, 16);
  ip.writeUInt16BE(ipv4Checksum(ip), 10);
  const eth = Buffer.from('02000000bb02' + '02000000bb01' + '0800', 'hex');
  return Buffer.concat([eth, ip, l4, payload]);
}

/** Writes a classic pcap (link type Ethernet) with the given frames. */
export function writePcap(path: string, frames: Buffer[]): void {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const recs = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  writeFileSync(path, Buffer.concat([head, ...recs]));
}
