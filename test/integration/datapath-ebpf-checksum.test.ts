// Outer UDP checksums from the ebpf backend, as the tunnel asks: tshark verifies every datagram on the
// wire (IPv4 and IPv6, odd and MTU-sized frames), and receivers that check UDP checksums in their
// kernel socket (the userspace pump, QEMU's -netdev l2tpv3) take the traffic, TCP content intact.
// Without the setting, IPv4 and IPv6 datagrams carry checksum 0, as the kernel's tunnels do.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { run } from '../../lib/exec.js';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, inNs, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import {
  captureWhile,
  pairConfigs,
  podOn,
  readPcap,
  startDatapath,
  tcpIntact,
  twoHosts,
} from './datapath-lab.js';
import { qemuInterop } from './qemu-interop.js';

before(() => requireRoot());

/** This suite's own underlay subnet (10.253.n.0/24, fd00:253:n::/64). */
const NET = 253;

/** tshark's verdict on each UDP datagram's checksum: Good, Bad, Not present or Illegal (checksum 0). */
async function checksumVerdicts(pcap: string): Promise<{ status: string; value: string }[]> {
  const out = await run('tshark', [
    '-n',
    '-r',
    pcap,
    '-o',
    'udp.check_checksum:TRUE',
    '-T',
    'fields',
    '-E',
    'separator=\t',
    '-e',
    'udp.checksum.status',
    '-e',
    'udp.checksum',
  ]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [status = '', value = ''] = l.split('\t');
      return {
        status:
          { '0': 'Bad', '1': 'Good', '2': 'Unverified', '3': 'Not present', '4': 'Illegal' }[status] ??
          status,
        value,
      };
    });
}

/**
 * Pings a -> b with frames of several lengths (odd ones too) and one of the MTU, not fragmented.
 * 174 and 189 make datagrams of 0xf0 and 0xff bytes (4-byte cookie, default sublayer): a length whose
 * low byte is that high carries out of 32 bits when the pseudo-header's words are added.
 */
async function pingSizes(a: string, b: string, mtu: number): Promise<void> {
  for (const size of [1, 2, 3, 101, 174, 189, 1000]) {
    assert.equal(await ping(a, b, 1, ['-s', String(size)]), 1, `${size}-byte ping ${a} -> ${b}`);
  }
  assert.equal(await ping(a, b, 2, ['-s', String(mtu - 28), '-M', 'do']), 2, `MTU-sized ping ${a} -> ${b}`);
}

const CASES: { name: string; peer: 'ebpf' | 'userspace'; v6: boolean; udpChecksum: boolean }[] = [
  { name: 'IPv4, checksums on', peer: 'ebpf', v6: false, udpChecksum: true },
  { name: 'IPv6, checksums on', peer: 'ebpf', v6: true, udpChecksum: true },
  { name: 'IPv4, checksums on', peer: 'userspace', v6: false, udpChecksum: true },
  { name: 'IPv4, checksums off', peer: 'ebpf', v6: false, udpChecksum: false },
  { name: 'IPv6, zero checksums allowed', peer: 'ebpf', v6: true, udpChecksum: false },
];

describe('ebpf outer UDP checksums', () => {
  CASES.forEach(({ name, peer, v6, udpChecksum }, idx) => {
    it(`ebpf <-> ${peer}: ${name}`, async () => {
      const lab = new Lab();
      try {
        const p = `eq-c${idx}`;
        const h = await twoHosts(lab, p, 10 + idx, v6, NET);
        const bpffs = await privateBpffs(lab);
        const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4, udpChecksum });
        const mtu = sessionMtu({ encap: 'udp', ipv6: v6, cookieLength: 4, l2specType: 'default' });
        const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
        const d2 =
          peer === 'ebpf'
            ? await startEbpfDatapath(lab, h.h2, c2, bpffs)
            : await startDatapath(lab, h.h2, c2);
        // With checksums the pump sends UDP GSO trains; veth carries them whole, where a NIC would put
        // single datagrams on the wire (tc cannot split a train): segment them before the underlay.
        if (peer === 'userspace') await inNs(h.h2, 'ethtool', '-K', `${p}u2`, 'tx-udp-segmentation', 'off');
        const [a1, a2] = [`10.${NET}.${100 + idx}.1`, `10.${NET}.${100 + idx}.2`];
        await podOn(lab, h.h1, `${p}p1`, 'eqbr', 'l2tpeth0', `${a1}/24`, mtu);
        await podOn(lab, h.h2, `${p}p2`, 'eqbr', 'l2tpeth0', `${a2}/24`, mtu);

        // the ebpf side's datagrams, captured where they arrive
        const pcap = await captureWhile(lab, h.h2, `${p}u2`, `src host ${h.u1} and udp port 5001`, () =>
          pingSizes(`${p}p1`, a2, mtu),
        );
        await pingSizes(`${p}p2`, a1, mtu);
        const verdicts = await checksumVerdicts(pcap);
        const big = (await readPcap(pcap)).filter((f) => f.length >= mtu).length;
        assert.ok(verdicts.length >= 9 && big >= 2, `captured ${verdicts.length} (${big} MTU-sized)`);
        // tshark calls a zero checksum over IPv6 illegal: the receiver must be told to accept it
        const want = udpChecksum ? 'Good' : v6 ? 'Illegal' : 'Not present';
        const off = verdicts.filter((v) => v.status !== want);
        assert.deepEqual(off, [], `every datagram's checksum ${want} (of ${verdicts.length})`);
        if (!udpChecksum)
          assert.ok(
            verdicts.every((v) => v.value === '0x0000'),
            'checksum 0',
          );

        // bulk traffic both ways: MTU-sized segments summed in many chunks; the pump's socket drops
        // a datagram whose checksum is wrong
        assert.ok(await tcpIntact(lab, `${p}p1`, `${p}p2`, a2, 8 << 20), 'TCP h1 -> h2 intact');
        assert.ok(await tcpIntact(lab, `${p}p2`, `${p}p1`, a1, 8 << 20), 'TCP h2 -> h1 intact');
        const s = (await d1.counters()).tunnels[0]!.sessions[0]!;
        assert.deepEqual(s.drops, {}, 'no session drops');
        assert.ok(s.txPackets > 1000, `sent: ${JSON.stringify(s)}`);
        assert.equal(await d1.stop(), 0);
        assert.equal(await d2.stop(), 0);
      } finally {
        await lab.cleanup();
      }
    });
  });

  // QEMU's socket refuses zero checksums over IPv6 and verifies the others; no software checksumming
  // on the underlay here: the session device fills the inner checksums itself
  it('ebpf <-> QEMU -netdev l2tpv3 over IPv6 UDP with checksums', async () => {
    const lab = new Lab();
    try {
      await qemuInterop(
        lab,
        { encap: 'udp', cookie: 8, l2spec: 'default', v6: true, udpChecksum: true },
        {
          prefix: 'eq-cq',
          n: 30,
          net: NET,
          podNet: `10.${NET}.130`,
          bridge: 'eqbr',
          tap: 'eqqtap',
          start: async (l, h, config) => startEbpfDatapath(l, h.h1, config, await privateBpffs(l)),
        },
      );
    } finally {
      await lab.cleanup();
    }
  });
});
