// Restart with the ebpf backend: kill -9 the datapath under `ping -i 0.01`. The programs, maps and
// filters stay in the kernel, so not one packet is lost; the restarted process adopts the pinned
// programs and maps and the devices instead of re-creating them.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Lab, inNsCapture, ipIn, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { backgroundPing, pairConfigs, podOn, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

interface LinkJson {
  ifindex: number;
  master?: string;
}
const link = async (ns: string, dev: string) =>
  (JSON.parse(await ipIn(ns, '-j', 'link', 'show', dev)) as LinkJson[])[0]!;

/** The id of the program our filter runs on dev's hook. */
async function filterProg(ns: string, dev: string, hook: 'ingress' | 'egress'): Promise<number | undefined> {
  const r = await inNsCapture(ns, 'tc', '-j', 'filter', 'show', 'dev', dev, hook);
  const entries = JSON.parse(r.stdout || '[]') as { options?: { prog?: { id?: number } } }[];
  return entries.find((e) => e.options?.prog?.id)?.options?.prog?.id;
}

describe('ebpf datapath restart', () => {
  it('forwards while the process is dead; the new process adopts programs, maps and devices', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'ebr', 130);
      const bpffs = await privateBpffs(lab);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4 });
      const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      await startEbpfDatapath(lab, h.h2, c2, bpffs);
      await podOn(lab, h.h1, 'ebrp1', 'ebbr', 'l2tpeth0', '10.204.0.1/24', 1442);
      await podOn(lab, h.h2, 'ebrp2', 'ebbr', 'l2tpeth0', '10.204.0.2/24', 1442);
      assert.equal(await ping('ebrp1', '10.204.0.2', 2, ['-i', '0.2']), 2, 'pseudowire up');
      const devBefore = await link(h.h1, 'l2tpeth0');
      const peerBefore = await link(h.h1, 'l2tpx3e9');
      const progsBefore = {
        rx: await filterProg(h.h1, 'ebru1', 'ingress'),
        txEgress: await filterProg(h.h1, 'l2tpeth0', 'egress'),
        txIngress: await filterProg(h.h1, 'l2tpx3e9', 'ingress'),
      };
      assert.ok(progsBefore.rx && progsBefore.txEgress && progsBefore.txIngress, JSON.stringify(progsBefore));

      const COUNT = 1000;
      const pinged = backgroundPing(lab, 'ebrp1', '10.204.0.2', COUNT, ['-W', '1']);

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
      assert.equal((await link(h.h1, 'l2tpeth0')).ifindex, devBefore.ifindex, 'same l2tpeth0');
      assert.equal((await link(h.h1, 'l2tpeth0')).master, 'ebbr', 'still a bridge port');
      assert.equal((await link(h.h1, 'l2tpx3e9')).ifindex, peerBefore.ifindex, 'same peer device');
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
});
