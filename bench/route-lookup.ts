// The datapath's route lookup to a tunnel peer (underlay probe, static-mode MTU, eBPF next hop):
// lib/netlink's routeToPeer (RTM_GETROUTE then RTM_GETLINK on a socket of its own) against its
// same-run baseline, what the datapath did before: exec `ip -j route get REMOTE from LOCAL` and
// `ip -j link show dev DEV` and parse their JSON. Interleaved rounds, loopback addresses (the kernel
// work is the same for any route; nothing is sent).
//   node dist/bench/route-lookup.js [--n 200] [--rounds 5]
import { parseArgs } from 'node:util';
import { runCapture } from '../lib/exec.js';
import { routeToPeer } from '../lib/netlink/route-to-peer.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '200' }, rounds: { type: 'string', default: '5' } },
});
const N = Number(values.n);
const ROUNDS = Number(values.rounds);
const LOCAL = '127.0.0.1';
const REMOTE = '127.0.0.1';

async function viaIp(): Promise<{ dev: string; mtu: number }> {
  const r = await runCapture('ip', ['-j', 'route', 'get', REMOTE, 'from', LOCAL]);
  const dev = (JSON.parse(r.stdout) as { dev: string }[])[0]!.dev;
  const l = await runCapture('ip', ['-j', 'link', 'show', 'dev', dev]);
  return { dev, mtu: (JSON.parse(l.stdout) as { mtu: number }[])[0]!.mtu };
}

async function viaNetlink(): Promise<{ dev: string; mtu: number }> {
  const r = await routeToPeer(LOCAL, REMOTE);
  return { dev: r.link.name, mtu: r.link.mtu ?? 0 };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / N;
}

const [a, b] = [await viaIp(), await viaNetlink()];
if (a.dev !== b.dev || a.mtu !== b.mtu)
  throw new Error(`answers differ: ip ${JSON.stringify(a)}, netlink ${JSON.stringify(b)}`);
const ip: number[] = [];
const nl: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  ip.push(await time(viaIp));
  nl.push(await time(viaNetlink));
}
console.log(
  `route lookup ${LOCAL} -> ${REMOTE} (${a.dev}, MTU ${a.mtu}), ${N} lookups x ${ROUNDS} rounds, median per lookup:`,
);
console.log(`  baseline, ip -j route get + ip -j link show: ${median(ip).toFixed(0)} us`);
console.log(`  routeToPeer (rtnetlink):                    ${median(nl).toFixed(1)} us`);
console.log(`  ratio baseline / routeToPeer: ${(median(ip) / median(nl)).toFixed(1)}`);
