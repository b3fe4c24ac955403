// Golden test: frames encoded by the codec are decoded by tshark's L2TP dissector, an
// implementation written elsewhere, so a byte-order or layout mistake cannot pass on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeDataMessage, headerLayout } from '../../lib/wire/codec.js';
import { ipv4Packet, writePcap } from '../harness/pcap.js';
import { decodeL2tp } from '../harness/tshark.js';

const dir = mkdtempSync(join(tmpdir(), 'kl2tp-tshark-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function innerFrame(i: number): Buffer {
  // distinct inner MACs per packet so a misaligned decode shows up as wrong addresses
  const dst = Buffer.from([0x02, 0xaa, 0, 0, 0, i]);
  const src = Buffer.from([0x02, 0xbb, 0, 0, 0, i]);
  const ethertype = Buffer.from('0806', 'hex'); // ARP
  return Buffer.concat([dst, src, ethertype, Buffer.alloc(28, i)]);
}

const mac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

for (const encap of ['udp', 'ip'] as const)
  for (const l2spec of ['none', 'default'] as const)
    for (const cookieLength of [0, 4, 8] as const) {
      test(`tshark decodes ${encap} / sublayer ${l2spec} / cookie ${cookieLength}`, async () => {
        const layout = headerLayout({
          encap,
          l2specType: l2spec,
          cookieLength,
          peerCookieLength: cookieLength,
        });
        const cookie = Buffer.from('a1b2c3d4e5f60718', 'hex').subarray(0, cookieLength);
        const sessions = [0x00000080, 0x004f4bd3, 0xfedcba98];
        const frames = sessions.map((sid, i) => {
          const seq = l2spec === 'default' && i > 0 ? 0x00abcd00 + i : undefined;
          const payload = encodeDataMessage(
            layout,
            { peerSessionId: sid, cookie, sequence: seq },
            innerFrame(i + 1),
          );
          const udp = encap === 'udp' ? { sport: 5000, dport: 5001 } : undefined;
          return ipv4Packet({ src: '10.200.0.1', dst: '10.200.0.2', ...(udp ? { udp } : {}) }, payload);
        });
        const pcap = join(dir, `${encap}-${l2spec}-${cookieLength}.pcap`);
        writePcap(pcap, frames);
        const decoded = await decodeL2tp(pcap, {
          cookieLength,
          l2spec,
          ...(encap === 'udp' ? { udpPorts: [5000, 5001] } : {}),
        });
        assert.equal(decoded.length, sessions.length);
        decoded.forEach((d, i) => {
          assert.equal(Number(d['l2tp.sid']), sessions[i], 'session ID');
          assert.equal(d['l2tp.cookie'].replaceAll(':', ''), cookie.toString('hex'), 'cookie');
          const f = innerFrame(i + 1);
          assert.equal(d['eth.dst'], mac(f.subarray(0, 6)), 'inner destination MAC');
          assert.equal(d['eth.src'], mac(f.subarray(6, 12)), 'inner source MAC');
          assert.equal(d['eth.type'], '0x0806', 'inner ethertype');
          if (l2spec === 'default') {
            const seqOn = i > 0;
            assert.equal(['1', 'True'].includes(d['l2tp.l2_spec_s']), seqOn, `S bit ${d['l2tp.l2_spec_s']}`);
            if (seqOn) assert.equal(Number(d['l2tp.l2_spec_sequence']), 0x00abcd00 + i, 'sequence');
          }
        });
      });
    }
