// Operator scale bench on the real apiserver: time to converge (every Pseudowire Ready), the
// operator's API requests (writes per pseudowire during creation and in steady state) and its peak
// RSS. The operator runs as its own process with its ServiceAccount identity; a simulated agent per
// node reports status. Prints a table comparing the scenarios measured in this run.
//   node dist/bench/operator-bench.js [nodes:pseudowires ...]   (default 50:100 200:1000)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { L2TPNodeState, Pseudowire } from '../lib/api/schemas.js';
import { freePort } from '../test/harness/controlplane.js';
import {
  GROUP_PATH,
  NS,
  createNode,
  healthyStatus,
  nodeStatePath,
  setupEnv,
} from '../test/integration/operator-env.js';

const A = 'l2tp.kube-l2tp.io/v1alpha1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]!);
  })); // prettier-ignore
}

function rssHwmMB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^kube_l2tp_api_requests_total\{verb="(\w+)",resource="([^"]+)",code="(\d+)"\} (\d+)/.exec(
      line,
    );
    if (m) out.set(`${m[1]} ${m[2]} ${m[3]}`, (out.get(`${m[1]} ${m[2]} ${m[3]}`) ?? 0) + Number(m[4]));
  }
  return out;
}
const writes = (m: Map<string, number>, resource?: string) =>
  [...m]
    .filter(([k]) => /^(POST|PUT|PATCH|DELETE) /.test(k) && (!resource || k.split(' ')[1] === resource))
    .reduce((s, [, v]) => s + v, 0);
const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);

interface Result {
  nodes: number;
  pws: number;
  convergeS: number;
  requests: number;
  writes: number;
  writesPerPw: number;
  steadyWrites: number;
  byResource: string;
  rssMB: number;
}

async function scenario(nodes: number, pws: number): Promise<Result> {
  const env = await setupEnv();
  let opProc: ReturnType<typeof spawn> | undefined;
  let agentStop = false;
  let agents: Promise<void> | undefined;
  try {
    const names = Array.from({ length: nodes }, (_, i) => `node-${i}`);
    await pool(names, 16, (n) =>
      createNode(env.admin, n, `10.${Math.floor(names.indexOf(n) / 250)}.${names.indexOf(n) % 250}.1`),
    );
    const port = await freePort();
    const main = join(import.meta.dirname, '..', 'operator', 'main.js');
    opProc = spawn(process.execPath, [main, '--kubeconfig', env.operatorKubeconfig, '--namespace', NS, '--metrics-addr', `127.0.0.1:${port}`, '--leader-elect=false', '--pod-delete-grace-seconds', '0'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    }); // prettier-ignore
    for (let i = 0; i < 100; i++) {
      if (
        await fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await sleep(100);
    }
    // simulated agents: report every node state whose generation they have not seen yet
    agents = (async () => {
      while (!agentStop) {
        const list = await env.agent
          .get<{ items: L2TPNodeState[] }>(nodeStatePath())
          .catch(() => ({ items: [] }));
        const todo = list.items.filter((ns) => ns.status?.observedGeneration !== ns.metadata.generation);
        await pool(todo, 8, (ns) =>
          env.agent.replace(`${nodeStatePath(ns.metadata.name)}/status`, { ...ns, apiVersion: A, kind: 'L2TPNodeState', status: healthyStatus(ns) }).catch(() => undefined),
        ); // prettier-ignore
        await sleep(300);
      }
    })();
    const t0 = Date.now();
    const tunnels = names.map((n, i) => ({ name: `t-${i}`, local: n, peer: names[(i + 1) % nodes]! }));
    await pool(tunnels, 16, (t) =>
      env.admin.create(`${GROUP_PATH}/l2tptunnels`, { apiVersion: A, kind: 'L2TPTunnel', metadata: { name: t.name }, spec: { local: { node: t.local }, peer: { node: t.peer } } }),
    ); // prettier-ignore
    await pool(Array.from({ length: pws }, (_, i) => i), 16, (i) =>
      env.admin.create(`${GROUP_PATH}/namespaces/default/pseudowires`, { apiVersion: A, kind: 'Pseudowire', metadata: { name: `pw-${i}` }, spec: { tunnelRef: { name: `t-${i % nodes}` } } }),
    ); // prettier-ignore
    let convergeS = NaN;
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      const list = await env.admin.get<{ items: Pseudowire[] }>(`${GROUP_PATH}/pseudowires`);
      const ready = list.items.filter((p) =>
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ).length;
      if (ready === pws) {
        convergeS = (Date.now() - t0) / 1000;
        break;
      }
      await sleep(250);
    }
    const atConverge = await scrape(port);
    await sleep(10_000); // steady state: nothing changes, agents keep polling
    const steady = await scrape(port);
    const byRes = [
      'pseudowires',
      'pseudowires/status',
      'l2tptunnels',
      'l2tptunnels/status',
      'l2tpnodestates',
      'pods',
      'events',
    ]
      .map((r) => `${r}=${writes(atConverge, r)}`)
      .join(' ');
    return {
      nodes,
      pws,
      convergeS,
      requests: total(atConverge),
      writes: writes(atConverge),
      writesPerPw: writes(atConverge) / pws,
      steadyWrites: writes(steady) - writes(atConverge),
      byResource: byRes,
      rssMB: rssHwmMB(opProc.pid!),
    };
  } finally {
    agentStop = true;
    await agents;
    if (opProc && opProc.exitCode === null) {
      opProc.kill('SIGTERM');
      await new Promise((r) => opProc!.once('exit', r));
    }
    await env.stop();
  }
}

const args = process.argv.slice(2);
const scenarios = (args.length ? args : ['50:100', '200:1000']).map(
  (s) => s.split(':').map(Number) as [number, number],
);
const results: Result[] = [];
for (const [n, p] of scenarios) {
  console.log(`scenario: ${p} pseudowires over ${n} nodes ...`);
  const r = await scenario(n, p);
  console.log(JSON.stringify(r));
  results.push(r);
}
console.log(
  '\n| nodes | pseudowires | converge (s) | operator API requests | writes | writes/pw | writes in 10 s steady state | peak RSS (MB) |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.nodes} | ${r.pws} | ${r.convergeS.toFixed(1)} | ${r.requests} | ${r.writes} | ${r.writesPerPw.toFixed(2)} | ${r.steadyWrites} | ${r.rssMB.toFixed(0)} |`,
  );
}
for (const r of results) console.log(`writes by resource (${r.nodes}/${r.pws}): ${r.byResource}`);
console.log('goals: 1,000 over 200 converge <= 30 s; <= 3 writes per pseudowire; RSS <= 200 MB');
