// Netlink exchanges the real kernel had with lib/netlink (test/fixtures/netlink/*.json): loading
// them, and replaying them as a Transport so a NetlinkSocket talks to "the kernel" in unit tests.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage, NLMSG_ERROR, parseMessages } from '../../lib/netlink/codec.js';
import type { Transport } from '../../lib/netlink/socket.js';

export interface Exchange {
  op: string;
  /** Hex of the request as sent. */
  request: string;
  /** Hex of every datagram the kernel answered with. */
  replies: string[];
}

function fixturesDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (d !== '/' && !existsSync(join(d, 'package.json'))) d = resolve(d, '..');
  return join(d, 'test', 'fixtures', 'netlink');
}

/** The exchanges of one fixture file, by name, with helpers to read them as bytes. */
export function loadExchanges(file: string) {
  const fx = JSON.parse(readFileSync(join(fixturesDir(), file), 'utf8')) as {
    exchanges: Record<string, Exchange>;
  };
  const ex = (name: string): Exchange => {
    const e = fx.exchanges[name];
    if (!e) throw new Error(`fixture ${name} missing from ${file}`);
    return e;
  };
  const req = (name: string) => Buffer.from(ex(name).request, 'hex');
  const replies = (name: string) => ex(name).replies.map((h) => Buffer.from(h, 'hex'));
  const hdr = (name: string) => {
    const b = req(name);
    return { type: b.readUInt16LE(4), flags: b.readUInt16LE(6), seq: b.readUInt32LE(8), pid: 0 };
  };
  /** Our encoding of `payload`, framed with the captured request's header (type, flags, seq). */
  const framed = (name: string, payload: Buffer) => encodeMessage(hdr(name), payload).toString('hex');
  return { ex, req, replies, hdr, framed };
}

/** Answers each request with the next scripted exchange's replies, renumbered to its sequence. */
export class ReplayTransport implements Transport {
  readonly sent: Buffer[] = [];
  constructor(private readonly script: Exchange[]) {}
  async transact(request: Buffer): Promise<Buffer[]> {
    this.sent.push(request);
    const e = this.script.shift();
    if (!e) throw new Error('no more scripted replies');
    const seq = request.readUInt32LE(8);
    return e.replies.map((h) => {
      const d = Buffer.from(h, 'hex');
      for (const m of parseMessages(d)) {
        const off = m.payload.byteOffset - d.byteOffset - 16;
        d.writeUInt32LE(seq, off + 8);
        if (m.type === NLMSG_ERROR) d.writeUInt32LE(seq, off + 16 + 4 + 8); // the echoed request header
      }
      return d;
    });
  }
  close(): void {}
}
