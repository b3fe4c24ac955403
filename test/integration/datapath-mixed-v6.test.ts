// A userspace node and an ebpf node over an IPv6 underlay, UDP without checksums (the default). The
// ebpf and kernel backends then send UDP checksum 0 over IPv6, which RFC 6935/6936 allow for tunnels
// and the kernel's L2TP socket accepts when told to (udp6_csum_rx off); the pump must accept them as
// well, or a node on the userspace fallback hears nothing from its kernel or ebpf peers.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, softwareChecksums, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { pairConfigs, podOn, startDatapath, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

describe('userspace <-> ebpf over IPv6, UDP without checksums', () => {
  it('carries traffic both ways; the userspace side counts what it received', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'aa3x', 60, true, 233);
      const bpffs = await privateBpffs(lab);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4 });
      const mtu = sessionMtu({ encap: 'udp', ipv6: true, cookieLength: 4, l2specType: 'default' });
      await startEbpfDatapath(lab, h.h1, c1, bpffs);
      const d2 = await startDatapath(lab, h.h2, c2);
      await softwareChecksums(h.h1, 'aa3xu1');
      await podOn(lab, h.h1, 'aa3xp1', 'aa3br', 'l2tpeth0', '10.233.61.1/24', mtu);
      await podOn(lab, h.h2, 'aa3xp2', 'aa3br', 'l2tpeth0', '10.233.61.2/24', mtu);
      const there = await ping('aa3xp1', '10.233.61.2', 3, ['-i', '0.2']);
      const back = await ping('aa3xp2', '10.233.61.1', 3, ['-i', '0.2']);
      const dump = await d2.counters();
      assert.equal(there, 3, `ebpf -> userspace (userspace counters: ${JSON.stringify(dump)})`);
      assert.equal(back, 3, 'userspace -> ebpf');
      const rx = (dump as { tunnels: { sessions: { rxPackets: number }[] }[] }).tunnels[0]!.sessions[0]!
        .rxPackets;
      assert.ok(rx >= 6, `userspace session received ${rx} frames`);
    } finally {
      await lab.cleanup();
    }
  });
});
