// How received frames reach l2tpethN. Single datagrams (what a NIC hands over) leave through the veth
// peer, whose NAPI gives l2tpethN GRO: a TCP stream arrives at the pod merged, as over kernel VXLAN.
// Super-packets (a veth underlay passes a sender's whole) go straight in, never segmented again: into
// l2tpethN in the node's namespace, or into a pod's namespace when l2tpethN was moved there
// (exclusive mode). Streams stay intact either way.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, ipIn, linkStats, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { pairConfigs, podOn, singleDatagrams, tcpIntact, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

/** This suite's own subnets: 10.247.0.0/16. */
const NET = 247;
const MTU = sessionMtu({ encap: 'udp', ipv6: false, cookieLength: 4, l2specType: 'default' });

/** Received packets and bytes of dev in ns. */
async function rxStats(ns: string, dev: string): Promise<{ packets: number; bytes: number }> {
  return (await linkStats(ns, dev))[0]!.rx;
}

/** Packets dev has transmitted. */
async function txPackets(ns: string, dev: string): Promise<number> {
  return (await linkStats(ns, dev))[0]!.tx.packets;
}

/** The mean size of what dev received while fn ran. */
async function meanRx(ns: string, dev: string, fn: () => Promise<void>): Promise<number> {
  const a = await rxStats(ns, dev);
  await fn();
  const b = await rxStats(ns, dev);
  assert.ok(b.packets > a.packets, `${dev} received nothing`);
  return (b.bytes - a.bytes) / (b.packets - a.packets);
}

describe('ebpf receive path: GRO for single datagrams, super-packets straight in', () => {
  it('bridge mode, single datagrams on the underlay: the pod receives merged frames', async () => {
    const lab = new Lab();
    try {
      const p = 'ev-ga';
      const h = await twoHosts(lab, p, 3, false, NET);
      await singleDatagrams(h, p);
      const bpffs = await privateBpffs(lab);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4, l2specType: 'default' });
      const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      const d2 = await startEbpfDatapath(lab, h.h2, c2, bpffs);
      const [a1, a2] = [`10.${NET}.103.1`, `10.${NET}.103.2`];
      await podOn(lab, h.h1, `${p}p1`, 'evbr', 'l2tpeth0', `${a1}/24`, MTU);
      await podOn(lab, h.h2, `${p}p2`, 'evbr', 'l2tpeth0', `${a2}/24`, MTU);
      assert.equal(await ping(`${p}p1`, a2, 3), 3, 'pods reach each other');

      const before = (await d2.counters()).tunnels[0]!.sessions[0]!;
      // the session devices' peers (l2tpx<session id in hex>): host 2 receives the data, host 1 ACKs
      const [peer1, peer2] = ['l2tpx3e9', 'l2tpx7d1'];
      const [acks0, data0] = [await txPackets(h.h1, peer1), await txPackets(h.h2, peer2)];
      let intact = false;
      const mean = await meanRx(`${p}p2`, 'eth0', async () => {
        intact = await tcpIntact(lab, `${p}p1`, `${p}p2`, a2, 16 << 20);
      });
      assert.ok(intact, 'TCP h1 -> h2 intact');
      const after = (await d2.counters()).tunnels[0]!.sessions[0]!;
      // the receive program saw single frames (at least one per MTU of the stream)...
      assert.ok(after.rxPackets - before.rxPackets >= (16 << 20) / MTU, 'frames counted one by one');
      // ...and the pod got them merged: without GRO no frame exceeds the MTU and its Ethernet header
      console.log(`pod eth0: mean received frame ${mean.toFixed(0)} bytes (MTU ${MTU})`);
      assert.ok(mean > 2 * MTU, `merged before the pod: mean ${mean.toFixed(0)} bytes`);
      // data frames took the peer's way, the ACKs coming back did not (GRO passes them on at once)
      const data = (await txPackets(h.h2, peer2)) - data0;
      const acks = (await txPackets(h.h1, peer1)) - acks0;
      console.log(`frames through the peer: ${data} with data on host 2, ${acks} on host 1 (the ACKs' host)`);
      assert.ok(data >= (16 << 20) / MTU, `data frames through the peer: ${data}`);
      assert.ok(acks < data / 20, `ACKs straight into l2tpeth0: ${acks} through the peer`);
      assert.ok(await tcpIntact(lab, `${p}p2`, `${p}p1`, a1, 4 << 20), 'TCP h2 -> h1 intact');
      assert.deepEqual(after.drops, {}, 'nothing dropped');
      assert.equal(await d1.stop(), 0);
      assert.equal(await d2.stop(), 0);
    } finally {
      await lab.cleanup();
    }
  });

  it('exclusive mode: super-packets enter the pod whole, single datagrams merged', async () => {
    const lab = new Lab();
    try {
      const p = 'ev-gb';
      const h = await twoHosts(lab, p, 4, false, NET);
      const bpffs = await privateBpffs(lab);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4, l2specType: 'default' });
      const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      const d2 = await startEbpfDatapath(lab, h.h2, c2, bpffs);
      const [a1, a2] = [`10.${NET}.104.1`, `10.${NET}.104.2`];
      await podOn(lab, h.h1, `${p}p1`, 'evbr', 'l2tpeth0', `${a1}/24`, MTU);
      // host 2's pod holds l2tpeth0 itself; the datapath, restarted, adopts the pair and delivers
      // to the pod's namespace (the agent does this on the CNI ADD)
      const pod = await lab.netns(`${p}p2`);
      await ipIn(h.h2, 'link', 'set', 'l2tpeth0', 'netns', pod);
      await ipIn(pod, 'addr', 'add', `${a2}/24`, 'dev', 'l2tpeth0');
      await ipIn(pod, 'link', 'set', 'l2tpeth0', 'up');
      await d2.kill9();
      const d2b = await startEbpfDatapath(lab, h.h2, c2, bpffs);
      assert.equal(await ping(`${p}p1`, a2, 3), 3, 'pods reach each other with the device moved');

      // a veth underlay passes TCP super-packets whole: they reach the pod unsegmented
      let intact = false;
      const whole = await meanRx(pod, 'l2tpeth0', async () => {
        intact = await tcpIntact(lab, `${p}p1`, pod, a2, 16 << 20);
      });
      assert.ok(intact, 'TCP h1 -> pod intact (super-packets)');
      console.log(`pod l2tpeth0, super-packets: mean received ${whole.toFixed(0)} bytes (MTU ${MTU})`);
      assert.ok(whole > 2 * MTU, `not segmented on the way in: mean ${whole.toFixed(0)} bytes`);
      assert.ok(await tcpIntact(lab, pod, `${p}p1`, a1, 4 << 20), 'TCP pod -> h1 intact');

      // single datagrams take the peer's way
      await singleDatagrams(h, p);
      assert.ok(await tcpIntact(lab, `${p}p1`, pod, a2, 16 << 20), 'TCP h1 -> pod intact (single datagrams)');
      const s = (await d2b.counters()).tunnels[0]!.sessions[0]!;
      assert.deepEqual(s.drops, {}, 'nothing dropped');
      assert.equal(await d1.stop(), 0);
      assert.equal(await d2b.stop(), 0);
    } finally {
      await lab.cleanup();
    }
  });
});
