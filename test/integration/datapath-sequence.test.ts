// Received sequence numbers, as the kernel's l2tp_recv_data_seq treats them with reorderTimeout 0:
// the expected number is accepted, numbers behind the window and out-of-sequence ones are dropped
// and counted, and more than 4 consecutive out-of-sequence numbers resynchronise. The same crafted
// sequence goes to the ebpf backend and to the userspace pump, which must agree frame for frame.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { run } from '../../lib/exec.js';
import { Lab, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { pairConfigs, startDatapath, twoHosts } from './datapath-lab.js';
import { ETH, SENDER, u32 } from './hostile-traffic.js';

before(() => requireRoot());

/** The sublayer word with the S bit and a sequence number; 0 = no sequence number at all. */
const seqWord = (ns: number | 'none') => (ns === 'none' ? '00000000' : u32(0x40000000 | ns));

/** Sent in this order: what the receiver does with each, and why. */
const SEQUENCE: [ns: number | 'none', accepted: boolean, why: string][] = [
  [0, true, 'the first expected number'],
  [1, true, 'in sequence'],
  [2, true, 'in sequence'],
  [2, false, 'a duplicate: behind the window'],
  [1, false, 'old: behind the window'],
  [5, false, 'ahead of 3: out of sequence'],
  [3, true, 'the expected one again'],
  [4, true, 'in sequence'],
  [100, false, 'a jump: out of sequence (1st)'],
  [101, false, 'consecutive out of sequence (2nd)'],
  [102, false, '3rd'],
  [103, false, '4th'],
  [104, false, '5th'],
  [105, true, 'the 6th consecutive one: resynchronised to the peer'],
  [106, true, 'in sequence after the resync'],
  [0x800107, false, 'half the 24-bit space ahead: behind, by the window'],
  ['none', false, 'no sequence number where one is required'],
  [107, true, 'in sequence'],
];

describe('received sequence numbers (reorderTimeout 0)', () => {
  for (const backend of ['ebpf', 'userspace'] as const) {
    it(`${backend}: accepts, drops and resynchronises like the kernel`, async () => {
      const lab = new Lab();
      try {
        const p = `eq-s${backend === 'ebpf' ? 'e' : 'u'}`;
        const h = await twoHosts(lab, p, backend === 'ebpf' ? 40 : 41, false, 253);
        const [c1] = pairConfigs(h, { encap: 'udp', cookieLength: 8, sequence: true });
        const d =
          backend === 'ebpf'
            ? await startEbpfDatapath(lab, h.h1, c1, await privateBpffs(lab))
            : await startDatapath(lab, h.h1, c1);
        // host 1's session 1001 expects cookie 0x21 x 8 from port 5002 (see pairConfigs)
        const packets = SEQUENCE.map(([ns]) => '00030000' + u32(1001) + '21'.repeat(8) + seqWord(ns) + ETH);
        const counted = async () => (await d.counters()).tunnels[0]!.sessions[0]!;
        const base = await counted();
        for (const [i, pkt] of packets.entries()) {
          // one at a time, so that the order on the wire is the order above
          await run('ip', ['netns', 'exec', h.h2, 'python3', '-c', SENDER], {
            input: JSON.stringify({
              mode: 'udp',
              src: h.u2,
              sport: 5002,
              dst: h.u1,
              dport: 5001,
              packets: [pkt],
            }),
          });
          const [, accepted, why] = SEQUENCE[i]!;
          let now = await counted();
          for (let t = 0; t < 50 && now.rxPackets + (now.drops.sequence ?? 0) === base.rxPackets + i; t++) {
            await new Promise((r) => setTimeout(r, 20));
            now = await counted();
          }
          const took = now.rxPackets - base.rxPackets;
          const dropped = now.drops.sequence ?? 0;
          const wantTook = SEQUENCE.slice(0, i + 1).filter(([, a]) => a).length;
          assert.deepEqual(
            [took, dropped],
            [wantTook, i + 1 - wantTook],
            `frame ${i} (ns ${String(SEQUENCE[i]![0])}): ${accepted ? 'accepted' : 'dropped'}, ${why}`,
          );
        }
        const { sequence: _s, ...others } = (await counted()).drops;
        assert.deepEqual(others, {}, 'no drops under another reason');
        assert.equal(await d.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  }
});
