// Restart with the ebpf backend: kill -9 the datapath under `ping -i 0.01`. The programs, maps and
// filters stay in the kernel, so not one packet is lost; the restarted process adopts the pinned
// programs and maps and the devices instead of re-creating them.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Lab, inNs, inNsCapture, ipIn, linkIn, ping, requireRoot } from '../harness/netns.js';
import { BLOCK, FILTER_PREF } from '../../datapath/backend/ebpf/tc.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { backgroundPing, pairConfigs, podOn, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

/** The shared blocks dev's clsact qdisc binds (none: the device's own). */
async function qdiscBlocks(ns: string, dev: string) {
  const r = await inNsCapture(ns, 'tc', '-j', 'qdisc', 'show', 'dev', dev);
  type Qdisc = { kind?: string; ingress_block?: number; egress_block?: number };
  const q = (JSON.parse(r.stdout || '[]') as Qdisc[]).find((x) => x.kind === 'clsact');
  return q && { ingress: q.ingress_block, egress: q.egress_block };
}

/** The id of the program our filter runs on dev's hook. */
async function filterProg(ns: string, dev: string, hook: 'ingress' | 'egress'): Promise<number | undefined> {
  const r = await inNsCapture(ns, 'tc', '-j', 'filter', 'show', 'dev', dev, hook);
  const entries = JSON.parse(r.stdout || '[]') as { options?: { prog?: { id?: number } } }[];
  return entries.find((e) => e.options?.prog?.id)?.options?.prog?.id;
}

/**
 * Two hosts with an ebpf datapath each (UDP, 4-byte cookies) and a pod bridged to l2tpeth0 on each,
 * addressed in 10.<podNet>.0.0/24; the pseudowire is up.
 */
async function bridgedPair(lab: Lab, prefix: string, net: number, podNet: number) {
  const h = await twoHosts(lab, prefix, net);
  const bpffs = await privateBpffs(lab);
  const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4 });
  const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
  await startEbpfDatapath(lab, h.h2, c2, bpffs);
  const [p1, p2] = [`${prefix}p1`, `${prefix}p2`];
  await podOn(lab, h.h1, p1, 'ebbr', 'l2tpeth0', `10.${podNet}.0.1/24`, 1442);
  await podOn(lab, h.h2, p2, 'ebbr', 'l2tpeth0', `10.${podNet}.0.2/24`, 1442);
  assert.equal(await ping(p1, `10.${podNet}.0.2`, 2, ['-i', '0.2']), 2, 'pseudowire up');
  return { h, bpffs, c1, d1, pod1: p1, remote: `10.${podNet}.0.2` };
}

describe('ebpf datapath restart', () => {
  it('forwards while the process is dead; the new process adopts programs, maps and devices', async () => {
    const lab = new Lab();
    try {
      const { h, bpffs, c1, d1, pod1, remote } = await bridgedPair(lab, 'ebr', 130, 204);
      const devBefore = (await linkIn(h.h1, 'l2tpeth0'))!;
      const peerBefore = (await linkIn(h.h1, 'l2tpx3e9'))!;
      const progsBefore = {
        rx: await filterProg(h.h1, 'ebru1', 'ingress'),
        txEgress: await filterProg(h.h1, 'l2tpeth0', 'egress'),
        txIngress: await filterProg(h.h1, 'l2tpx3e9', 'ingress'),
      };
      assert.ok(progsBefore.rx && progsBefore.txEgress && progsBefore.txIngress, JSON.stringify(progsBefore));
      // the session devices' hooks are the shared blocks' (which run the programs); the underlay's are its own
      assert.deepEqual(await qdiscBlocks(h.h1, 'l2tpeth0'), { ingress: BLOCK.idle, egress: BLOCK.txEgress });
      assert.deepEqual(await qdiscBlocks(h.h1, 'l2tpx3e9'), { ingress: BLOCK.txIngress, egress: BLOCK.idle });
      assert.deepEqual(await qdiscBlocks(h.h1, 'ebru1'), { ingress: undefined, egress: undefined });

      const COUNT = 1000;
      const pinged = backgroundPing(lab, pod1, remote, COUNT, ['-W', '1']);

      await new Promise((r) => setTimeout(r, 2000));
      await d1.kill9();
      // nothing of ours runs on host1 now; wait so the pings cross with no process alive
      await new Promise((r) => setTimeout(r, 2000));
      const d1b = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      assert.ok(
        d1b.lines.find((l) => l.msg === 'pinned programs and maps adopted'),
        'the pinned programs and maps were adopted, not loaded again',
      );
      const adopted = d1b.lines.find((l) => l.msg === 'session adopted');
      assert.ok(adopted, 'the session devices were adopted');
      assert.equal(d1b.lines.filter((l) => l.msg === 'session up').length, 0, 'no session re-created');
      assert.equal((await linkIn(h.h1, 'l2tpeth0'))!.ifindex, devBefore.ifindex, 'same l2tpeth0');
      assert.equal((await linkIn(h.h1, 'l2tpeth0'))!.master, 'ebbr', 'still a bridge port');
      assert.equal((await linkIn(h.h1, 'l2tpx3e9'))!.ifindex, peerBefore.ifindex, 'same peer device');
      assert.deepEqual(
        {
          rx: await filterProg(h.h1, 'ebru1', 'ingress'),
          txEgress: await filterProg(h.h1, 'l2tpeth0', 'egress'),
          txIngress: await filterProg(h.h1, 'l2tpx3e9', 'ingress'),
        },
        progsBefore,
        'the same programs stay attached',
      );

      const { received } = await pinged;
      console.log(`ebpf restart: ${COUNT - received} of ${COUNT} packets lost across kill -9 and restart`);
      assert.equal(received, COUNT, 'no packet lost');
      const k = await d1b.counters();
      assert.ok(k.tunnels[0]!.sessions[0]!.rxPackets >= COUNT, 'counters survived the restart');

      assert.equal(await d1b.stop(), 0);
      assert.notEqual(
        (await inNsCapture(h.h1, 'ip', 'link', 'show', 'l2tpeth0')).code,
        0,
        'removed on SIGTERM',
      );
      assert.equal(await filterProg(h.h1, 'ebru1', 'ingress'), undefined, 'underlay filter removed');
    } finally {
      await lab.cleanup();
    }
  });

  it('what was changed on the node while the process was dead is put right on adoption', async () => {
    const lab = new Lab();
    try {
      const { h, bpffs, c1, d1, pod1, remote } = await bridgedPair(lab, 'ebd', 134, 208);
      const prog = await filterProg(h.h1, 'l2tpx3e9', 'ingress');
      assert.ok(prog, 'the peer runs the transmit program');
      const egress = await filterProg(h.h1, 'l2tpeth0', 'egress');
      assert.ok(egress, 'l2tpeth0 runs the fast-path transmit program');
      await d1.kill9();
      // an administrator's changes: the pair's MTU, its peer down, our filter gone from the peer's block,
      // l2tpeth0's qdisc gone, IPv6 and ARP answers back on the devices
      await ipIn(h.h1, 'link', 'set', 'l2tpeth0', 'mtu', '1300');
      await ipIn(h.h1, 'link', 'set', 'l2tpx3e9', 'mtu', '1300', 'down');
      await inNs(h.h1, 'tc', 'filter', 'del', 'block', String(BLOCK.txIngress), 'pref', String(FILTER_PREF));
      assert.equal(await filterProg(h.h1, 'l2tpx3e9', 'ingress'), undefined, 'filter deleted');
      await inNs(h.h1, 'tc', 'qdisc', 'del', 'dev', 'l2tpeth0', 'clsact');
      const sysctls = [
        'net.ipv6.conf.l2tpeth0.disable_ipv6',
        'net.ipv6.conf.l2tpx3e9.accept_ra',
        'net.ipv4.conf.l2tpx3e9.arp_ignore',
      ];
      const values = async () => (await inNs(h.h1, 'sysctl', '-n', ...sysctls)).trim().split('\n');
      assert.deepEqual(await values(), ['1', '0', '1'], 'hardened before');
      for (const s of sysctls) await inNs(h.h1, 'sysctl', '-qw', `${s}=${s.endsWith('accept_ra') ? 1 : 0}`);

      const d1b = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      assert.ok(
        d1b.lines.find((l) => l.msg === 'session adopted'),
        'adopted, not made anew',
      );
      for (const dev of ['l2tpeth0', 'l2tpx3e9']) {
        const l = (await linkIn(h.h1, dev))!;
        assert.equal(l.mtu, 1442, `${dev}: the session's MTU again`);
        assert.ok(l.flags.includes('UP'), `${dev}: up again`);
      }
      assert.equal(await filterProg(h.h1, 'l2tpx3e9', 'ingress'), prog, "the block's filter is back");
      assert.equal(await filterProg(h.h1, 'l2tpeth0', 'egress'), egress, "l2tpeth0's qdisc is back");
      assert.deepEqual(await values(), ['1', '0', '1'], 'hardened again');
      assert.equal(await ping(pod1, remote, 3, ['-i', '0.2']), 3, 'forwards again');
    } finally {
      await lab.cleanup();
    }
  });

  it('devices of a build before shared blocks: the next process moves their qdiscs to the shared blocks', async () => {
    const lab = new Lab();
    try {
      const { h, bpffs, c1, d1, pod1, remote } = await bridgedPair(lab, 'ebm', 131, 205);
      const progs = {
        egress: await filterProg(h.h1, 'l2tpeth0', 'egress'),
        ingress: await filterProg(h.h1, 'l2tpx3e9', 'ingress'),
      };
      assert.ok(progs.egress && progs.ingress, JSON.stringify(progs));
      await d1.kill9();

      // what such a build left: each session device with a clsact qdisc of its own and our filter on it
      // (h1's own programs: both hosts pin into one bpffs here)
      const pins = (await inNs(h.h1, 'find', join(bpffs, h.h1), '-name', 'prog_l2tp_tx_*'))
        .trim()
        .split('\n');
      const pin = (name: string) => pins.find((p) => p.endsWith(`/prog_${name}`))!;
      const own: [string, 'ingress' | 'egress', string][] = [
        ['l2tpeth0', 'egress', 'l2tp_tx_egress'],
        ['l2tpx3e9', 'ingress', 'l2tp_tx_ingress'],
      ];
      for (const [dev, hook, prog] of own) {
        await inNs(h.h1, 'tc', 'qdisc', 'del', 'dev', dev, 'clsact');
        await inNs(h.h1, 'tc', 'qdisc', 'add', 'dev', dev, 'clsact');
        await inNs(
          h.h1,
          'tc',
          'filter',
          'add',
          'dev',
          dev,
          hook,
          'pref',
          String(FILTER_PREF),
          'handle',
          '1',
          'bpf',
          'direct-action',
          'object-pinned',
          pin(prog),
        );
        assert.deepEqual(await qdiscBlocks(h.h1, dev), { ingress: undefined, egress: undefined });
      }
      assert.equal(await ping(pod1, remote, 2, ['-i', '0.2']), 2, 'the old layout forwards');

      const d1b = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      const moved = d1b.lines.find(
        (l) => l.msg === "session devices' qdiscs replaced by ones bound to the shared tc blocks",
      );
      assert.equal(moved?.qdiscs, 2, 'both ends moved');
      assert.deepEqual(await qdiscBlocks(h.h1, 'l2tpeth0'), { ingress: BLOCK.idle, egress: BLOCK.txEgress });
      assert.deepEqual(await qdiscBlocks(h.h1, 'l2tpx3e9'), { ingress: BLOCK.txIngress, egress: BLOCK.idle });
      for (const [dev, hook] of own)
        assert.equal(await filterProg(h.h1, dev, hook), progs[hook], `${dev} ${hook}`);
      assert.equal(await ping(pod1, remote, 3, ['-i', '0.2']), 3, 'forwards through the shared blocks');
      const k = await d1b.counters();
      assert.ok(k.tunnels[0]!.sessions[0]!.txPackets >= 3, 'sent by the programs on the shared blocks');
    } finally {
      await lab.cleanup();
    }
  });
});
