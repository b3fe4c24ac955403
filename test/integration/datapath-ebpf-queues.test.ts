// The receive ring of a session: with single datagrams on the underlay, every received TCP frame with
// data leaves through the session's veth peer into one of l2tpethN's receive rings. The pair has a
// queue per CPU, and the receive program picks the queue of the CPU it runs on, so that each CPU
// fills a ring whose NAPI it runs itself. With one ring, two TCP streams received on two CPUs
// overflowed it (the peer counts the frames it could not hand over as transmit drops): TCP saw
// losses and retransmitted.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { before, describe, it } from 'node:test';
import { SESSION_QUEUES } from '../../datapath/backend/ebpf/backend.js';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, inNsCapture, linkStats, ping, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { pairConfigs, podOn, singleDatagrams, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

/** This suite's own subnets: 10.247.5.0/24 (underlay) and 10.247.105.0/24 (pods). */
const NET = 247;
const MTU = sessionMtu({ encap: 'udp', ipv6: false, cookieLength: 0, l2specType: 'default' });
const PORTS = ['5201', '5202'];

/** Current rx and tx queue counts of dev (ethtool -l). */
async function queues(ns: string, dev: string): Promise<{ rx: number; tx: number }> {
  const r = await inNsCapture(ns, 'ethtool', '-l', dev);
  const cur = r.stdout.split('Current hardware settings:')[1] ?? '';
  const n = (k: string) => Number(new RegExp(`^${k}:\\s*(\\d+)`, 'm').exec(cur)?.[1] ?? NaN);
  return { rx: n('RX'), tx: n('TX') };
}

/** Frames dev dropped on transmit and on receive. */
async function drops(ns: string, dev: string): Promise<{ tx: number; rx: number }> {
  const [s] = await linkStats(ns, dev);
  return { tx: s!.tx.dropped, rx: s!.rx.dropped };
}

/**
 * Two iperf3 clients in pod a at once, one stream each, the first pinned to CPU 0 and the second to
 * the last CPU, for `seconds`: bytes received and segments retransmitted, summed.
 */
async function twoStreams(a: string, b: string, bAddr: string, seconds: number) {
  const servers = PORTS.map((port) =>
    spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-p', port], { stdio: 'ignore' }),
  );
  try {
    await new Promise((r) => setTimeout(r, 500));
    const last = String(cpus().length - 1);
    const runs = await Promise.all(
      PORTS.map((port, i) =>
        inNsCapture(a, 'iperf3', '-c', bAddr, '-p', port, '-t', String(seconds), '-J', '-A', i ? last : '0'),
      ),
    );
    type End = { end?: { sum_received?: { bytes?: number }; sum_sent?: { retransmits?: number } } };
    const ends = runs.map((r) => (JSON.parse(r.stdout || '{}') as End).end);
    return {
      bytes: ends.reduce((s, e) => s + (e?.sum_received?.bytes ?? 0), 0),
      retransmits: ends.reduce((s, e) => s + (e?.sum_sent?.retransmits ?? 0), 0),
    };
  } finally {
    for (const s of servers) s.kill('SIGKILL');
  }
}

describe('ebpf receive path: a ring per CPU', () => {
  it('two TCP streams on two CPUs, single datagrams on the underlay: no frame dropped at the ring', async () => {
    const lab = new Lab();
    try {
      const p = 'ev-q';
      const h = await twoHosts(lab, p, 5, false, NET);
      // as from a NIC: the other host receives single datagrams (the bench's --single-datagrams)
      await singleDatagrams(h, p, { gro: true });
      const bpffs = await privateBpffs(lab);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 0, l2specType: 'default' });
      const d1 = await startEbpfDatapath(lab, h.h1, c1, bpffs);
      const d2 = await startEbpfDatapath(lab, h.h2, c2, bpffs);
      const a2 = `10.${NET}.105.2`;
      await podOn(lab, h.h1, `${p}p1`, 'evbr', 'l2tpeth0', `10.${NET}.105.1/24`, MTU);
      await podOn(lab, h.h2, `${p}p2`, 'evbr', 'l2tpeth0', `${a2}/24`, MTU);
      assert.equal(await ping(`${p}p1`, a2, 3), 3, 'pods reach each other');

      // host 2 receives the data: its session device and the device's peer (l2tpx<session in hex>)
      const peer = 'l2tpx7d1';
      const want = Math.min(cpus().length, SESSION_QUEUES);
      assert.deepEqual(await queues(h.h2, peer), { rx: want, tx: want }, `${peer}: a queue per CPU`);
      assert.deepEqual(await queues(h.h2, 'l2tpeth0'), { rx: want, tx: want }, 'l2tpeth0: a queue per CPU');

      const [peer0, dev0] = [await drops(h.h2, peer), await drops(h.h2, 'l2tpeth0')];
      const r = await twoStreams(`${p}p1`, `${p}p2`, a2, 4);
      const [peer1, dev1] = [await drops(h.h2, peer), await drops(h.h2, 'l2tpeth0')];
      console.log(
        `two streams: ${((r.bytes * 8) / 4e9).toFixed(2)} Gbit/s, ${r.retransmits} retransmissions, ` +
          `${peer1.tx - peer0.tx} frames dropped at the ring`,
      );
      assert.ok(r.bytes > 0, 'the streams carried data');
      assert.equal(peer1.tx - peer0.tx, 0, `${peer} could not hand frames to l2tpeth0's ring`);
      assert.equal(dev1.rx - dev0.rx, 0, 'l2tpeth0 dropped received frames');
      const s = (await d2.counters()).tunnels[0]!.sessions[0]!;
      assert.deepEqual(s.drops, {}, 'the receive program dropped nothing');
      assert.equal(await d1.stop(), 0);
      assert.equal(await d2.stop(), 0);
    } finally {
      await lab.cleanup();
    }
  });
});
