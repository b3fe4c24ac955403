// What a node exposes through the devices kube-l2tp makes in its network namespace, played by an
// attacker: a pod on the far side of a pseudowire (or the remote peer: same frames) tries to reach the
// node whose session device is up and waiting for pods. Per backend this machine runs (userspace,
// ebpf): the device's sysctls are the hardened ones, it has no IPv6 address, the node answers neither
// ARP for its own address nor an all-nodes IPv6 ping across the wire. A control step undoes the
// hardening by hand and shows the same probes then reach the node, so the probes can fail.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { HARDENED_SYSCTLS } from '../../lib/netdev-hardening.js';
import { deviceSysctlsIn, inNs, inNsCapture, ipIn, Lab, requireRoot } from '../harness/netns.js';
import { pairConfigs, podOn, startDatapath, type Hosts } from './datapath-lab.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';

before(() => requireRoot());

const sysctl = (ns: string, dev: string, key: string, value: string) =>
  inNs(ns, 'sysctl', '-qw', `net.${key.replace('.', '.conf.' + dev.replaceAll('.', '/') + '.')}=${value}`);

/** The neighbour state the pod has for addr after trying to reach it (ARP answered or not). */
async function arpFrom(pod: string, addr: string): Promise<string> {
  await inNsCapture(pod, 'ping', '-c', '2', '-W', '1', addr);
  const n = JSON.parse(await ipIn(pod, '-j', 'neigh', 'show', 'to', addr, 'dev', 'eth0')) as {
    lladdr?: string;
    state?: string[];
  }[];
  return n[0]?.lladdr ? `answered (${n[0].lladdr})` : `unanswered (${(n[0]?.state ?? ['none']).join(',')})`;
}

/** Link-local addresses other than the pod's own that answer a ping to all nodes on the wire. */
async function allNodesFrom(pod: string, own: string): Promise<string[]> {
  const r = await inNsCapture(pod, 'ping', '-6', '-c', '3', '-i', '0.3', '-W', '1', 'ff02::1%eth0');
  const from = [...r.stdout.matchAll(/from (fe80::[0-9a-f:]+)/g)].map((m) => m[1]!);
  return [...new Set(from)].filter((a) => a !== own);
}

async function linkLocal(ns: string, dev: string): Promise<string | undefined> {
  const a = JSON.parse(await ipIn(ns, '-j', '-6', 'addr', 'show', 'dev', dev, 'scope', 'link')) as {
    addr_info?: { local: string }[];
  }[];
  return a[0]?.addr_info?.[0]?.local;
}

for (const backend of ['userspace', 'ebpf'] as const) {
  describe(`node exposure through session devices (${backend})`, () => {
    it('a pod across the wire cannot ARP for the node nor find it over IPv6; the control reaches it', async () => {
      const lab = new Lab();
      try {
        const p = backend === 'userspace' ? 'hdxu' : 'hdxe';
        const n = backend === 'userspace' ? 1 : 2;
        const h: Hosts = {
          h1: await lab.netns(`${p}1`),
          h2: await lab.netns(`${p}2`),
          u1: `10.252.${n}.1`,
          u2: `10.252.${n}.2`,
        };
        await lab.veth(
          { ns: h.h1, name: `${p}u1`, addr: `${h.u1}/24` },
          { ns: h.h2, name: `${p}u2`, addr: `${h.u2}/24` },
        );
        const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4 });
        if (backend === 'ebpf') {
          const fs = await privateBpffs(lab);
          await startEbpfDatapath(lab, h.h1, c1, fs);
          await startEbpfDatapath(lab, h.h2, c2, fs);
        } else {
          await startDatapath(lab, h.h1, c1);
          await startDatapath(lab, h.h2, c2);
        }
        // node 1's session device waits for pods, up in the node's namespace
        const devices = ['l2tpeth0', ...(backend === 'ebpf' ? [`l2tpx${(1001).toString(16)}`] : [])];
        for (const dev of devices) {
          const s = await deviceSysctlsIn(h.h1, dev);
          console.log(`${backend}: node 1 ${dev}: ${JSON.stringify(s)}`);
          assert.deepEqual(s, HARDENED_SYSCTLS, `${dev} hardened`);
          assert.equal(await linkLocal(h.h1, dev), undefined, `${dev} has no IPv6 address`);
        }
        // the attacker: a pod bridged to node 2's session device, with IPv6 on
        const pod = `${p}p`;
        await podOn(lab, h.h2, pod, `${p}br`, 'l2tpeth0', `10.252.${n + 100}.50/24`, 1400);
        for (const dev of [`${p}br`, `${pod}v`]) await sysctl(h.h2, dev, 'ipv6.disable_ipv6', '1'); // the test's own
        await inNs(
          pod,
          'sysctl',
          '-qw',
          'net.ipv6.conf.all.disable_ipv6=0',
          'net.ipv6.conf.eth0.accept_dad=0',
        );
        await inNs(pod, 'sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=0');
        await ipIn(pod, 'route', 'add', `${h.u1}/32`, 'dev', 'eth0'); // node 1's address, on the wire
        let own: string | undefined;
        for (let i = 0; i < 20 && !own; i++) {
          own = await linkLocal(pod, 'eth0');
          if (!own) await new Promise((r) => setTimeout(r, 200));
        }
        assert.ok(own, 'the attacking pod has a link-local address');

        const arp = await arpFrom(pod, h.u1);
        const v6 = await allNodesFrom(pod, own);
        console.log(`${backend}: hardened: ARP for ${h.u1}: ${arp}; ff02::1 answered by [${v6.join(', ')}]`);
        assert.match(arp, /^unanswered/);
        assert.deepEqual(v6, []);

        // control: undo the hardening of node 1's device by hand; the same probes now reach node 1
        await ipIn(pod, 'neigh', 'flush', 'dev', 'eth0');
        for (const [key, value] of [
          ['ipv4.arp_ignore', '0'],
          ['ipv6.accept_dad', '0'],
          ['ipv6.addr_gen_mode', '0'],
          ['ipv6.disable_ipv6', '0'],
        ] as const)
          await sysctl(h.h1, 'l2tpeth0', key, value);
        let node1: string | undefined;
        for (let i = 0; i < 20 && !node1; i++) {
          node1 = await linkLocal(h.h1, 'l2tpeth0');
          if (!node1) await new Promise((r) => setTimeout(r, 200));
        }
        const arpOpen = await arpFrom(pod, h.u1);
        const v6Open = await allNodesFrom(pod, own);
        console.log(
          `${backend}: control: ARP for ${h.u1}: ${arpOpen}; ff02::1 answered by [${v6Open.join(', ')}]`,
        );
        assert.match(arpOpen, /^answered/);
        assert.ok(node1 && v6Open.includes(node1), `node 1 (${node1}) answers the all-nodes ping`);
      } finally {
        await lab.cleanup();
      }
    });
  });
}
