// Operator scale bench on the real apiserver: time to converge (every Pseudowire Ready), the
// operator's API requests (writes per pseudowire until it is quiet, then any in 10 s at rest) and
// its peak RSS. The operator runs as its own process with its ServiceAccount identity; simulated agents (one
// watch over every node state, as each real agent watches its own) report status. Where the time
// goes is printed per scenario: CPU seconds of the operator, kube-apiserver, etcd and this process,
// reconciles and their summed time per controller. The same-run baseline is another build of the
// operator (--baseline DIR, e.g. the previous commit's dist) run on the same scenarios, and the
// apiserver's own pace in each scenario: the bench creating the pseudowires from 16 parallel clients.
//   node dist/bench/operator-bench.js [--baseline DIR] [nodes:pseudowires ...]
//   (default 200:1000 500:5000 1000:10000)
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../lib/log.js';
import { Informer } from '../lib/kube/informer.js';
import { API_VERSION, type L2TPNodeState, type Pseudowire } from '../lib/api/schemas.js';
import { freePort } from '../test/harness/controlplane.js';
import {
  NS,
  createNode,
  healthyStatus,
  nodeStatePath,
  pseudowirePath,
  tunnelPath,
  setupEnv,
} from '../test/integration/operator-env.js';
import { stopProcess } from '../test/harness/process.js';

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

/** user+system CPU seconds of a process (0 once it is gone). */
function cpuS(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The pids of the control plane's processes (their command lines name its directory). */
function controlPlanePids(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (!cmd.some((a) => a.includes(dir))) continue;
      const name = cmd[0]!.split('/').pop()!;
      if (name === 'etcd' || name === 'kube-apiserver') out[name] = Number(d);
    } catch {
      /* gone */
    }
  }
  return out;
}

interface Scrape {
  requests: Map<string, number>;
  reconciles: Map<string, number>;
  reconcileS: Map<string, number>;
}

async function scrape(port: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Scrape = { requests: new Map(), reconciles: new Map(), reconcileS: new Map() };
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const line of text.split('\n')) {
    const m = /^kube_l2tp_api_requests_total\{verb="(\w+)",resource="([^"]+)",code="(\d+)"\} (\d+)/.exec(
      line,
    );
    if (m) add(out.requests, `${m[1]} ${m[2]} ${m[3]}`, Number(m[4]));
    const r = /^kube_l2tp_reconcile_total\{controller="(\w+)",result="\w+"\} (\d+)/.exec(line);
    if (r) add(out.reconciles, r[1]!, Number(r[2]));
    const d = /^kube_l2tp_reconcile_duration_seconds_sum\{controller="(\w+)"\} ([\d.e+-]+)/.exec(line);
    if (d) add(out.reconcileS, d[1]!, Number(d[2]));
  }
  return out;
}
const writes = (m: Map<string, number>, resource?: string) =>
  [...m]
    .filter(([k]) => /^(POST|PUT|PATCH|DELETE) /.test(k) && (!resource || k.split(' ')[1] === resource))
    .reduce((s, [, v]) => s + v, 0);
const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);

interface Result {
  /** which operator: this tree's, or the baseline build's */
  who: string;
  nodes: number;
  pws: number;
  convergeS: number;
  requests: number;
  writes: number;
  writesPerPw: number;
  /** Writes after convergence until 5 s without one (spaced roll-ups), counted in writes too. */
  trailingWrites: number;
  settleS: number;
  steadyWrites: number;
  /** The steady-state writes by resource. */
  steadyByResource: string;
  byResource: string;
  rssMB: number;
  /** the baseline: pseudowires the bench itself created per second */
  createPerS: number;
  opWritesPerS: number;
  cpu: string;
  reconciles: string;
}

async function scenario(nodes: number, pws: number, who: string, main: string): Promise<Result> {
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
    // simulated agents: report every node state generation they have not reported yet
    const seen = new Informer<L2TPNodeState>(env.agent, { path: nodeStatePath(), apiVersion: API_VERSION, kind: 'L2TPNodeState' }, silentLogger()); // prettier-ignore
    const todo = new Set<string>();
    seen.on((type, ns) => {
      if (type !== 'DELETED' && ns.status?.observedGeneration !== ns.metadata.generation)
        todo.add(ns.metadata.name);
    });
    seen.start();
    agents = (async () => {
      while (!agentStop) {
        const batch = [...todo];
        todo.clear();
        await pool(batch, 8, async (name) => {
          const ns = seen.get(name);
          if (!ns || ns.status?.observedGeneration === ns.metadata.generation) return;
          await env.agent.patch(`${nodeStatePath(name)}/status`, { status: healthyStatus(ns) }).catch(() => todo.add(name)); // prettier-ignore
        });
        await sleep(100);
      }
      await seen.stop();
    })();
    const cp = controlPlanePids(env.cp.dir);
    const cpu0 = { operator: cpuS(opProc.pid!), apiserver: cpuS(cp['kube-apiserver'] ?? 0), etcd: cpuS(cp.etcd ?? 0), bench: process.cpuUsage() }; // prettier-ignore
    const t0 = Date.now();
    const tunnels = names.map((n, i) => ({ name: `t-${i}`, local: n, peer: names[(i + 1) % nodes]! }));
    await pool(tunnels, 16, (t) =>
      env.admin.create(tunnelPath(), { apiVersion: API_VERSION, kind: 'L2TPTunnel', metadata: { name: t.name }, spec: { local: { node: t.local }, peer: { node: t.peer }, allowedNamespaces: ['default'] } }),
    ); // prettier-ignore
    const tc = Date.now();
    await pool(Array.from({ length: pws }, (_, i) => i), 16, (i) =>
      env.admin.create(pseudowirePath('default'), { apiVersion: API_VERSION, kind: 'Pseudowire', metadata: { name: `pw-${i}` }, spec: { tunnelRef: { name: `t-${i % nodes}` } } }),
    ); // prettier-ignore
    const createPerS = pws / ((Date.now() - tc) / 1000);
    // convergence is watched, not polled: a list of every pseudowire per poll would load the apiserver
    const ready = new Set<string>();
    const watched = new Informer<Pseudowire>(env.admin, { path: pseudowirePath(), apiVersion: API_VERSION, kind: 'Pseudowire' }, silentLogger()); // prettier-ignore
    watched.on((_type, p) => {
      if (p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        ready.add(p.metadata.name);
      else ready.delete(p.metadata.name);
    });
    watched.start();
    let convergeS = NaN;
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      if (ready.size === pws) {
        convergeS = (Date.now() - t0) / 1000;
        break;
      }
      await sleep(100);
    }
    await watched.stop();
    const benchCpu = process.cpuUsage(cpu0.bench);
    const cpu = [
      `operator ${(cpuS(opProc.pid!) - cpu0.operator).toFixed(1)}`,
      `kube-apiserver ${(cpuS(cp['kube-apiserver'] ?? 0) - cpu0.apiserver).toFixed(1)}`,
      `etcd ${(cpuS(cp.etcd ?? 0) - cpu0.etcd).toFixed(1)}`,
      `bench+agents ${((benchCpu.user + benchCpu.system) / 1e6).toFixed(1)}`,
    ].join(', ');
    const scraped = await scrape(port);
    const atConverge = scraped.requests;
    const reconciles = [...scraped.reconciles]
      .map(([c, n]) => `${c} ${n} (${(scraped.reconcileS.get(c) ?? 0).toFixed(1)} s)`)
      .join(', ');
    // the roll-ups spaced behind the last Ready (tunnel status) land after convergence: they count
    // with the creation's writes; rest begins once no write has come for 5 s
    const t1 = Date.now();
    let settled = atConverge;
    for (let quiet = 0; quiet < 5 && Date.now() - t1 < 60_000;) {
      await sleep(1000);
      const now = (await scrape(port)).requests;
      quiet = writes(now) === writes(settled) ? quiet + 1 : 0;
      settled = now;
    }
    const settleS = (Date.now() - t1) / 1000 - 5;
    await sleep(10_000); // steady state: nothing changes, agents keep polling
    const steady = (await scrape(port)).requests;
    const resources = [
      'pseudowires',
      'pseudowires/status',
      'l2tptunnels',
      'l2tptunnels/status',
      'l2tpnodestates',
      'pods',
      'events',
    ];
    const byRes = resources.map((r) => `${r}=${writes(settled, r)}`).join(' ');
    const steadyByRes = resources
      .map((r) => [r, writes(steady, r) - writes(settled, r)] as const)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r}=${n}`)
      .join(' ');
    return {
      who,
      nodes,
      pws,
      convergeS,
      requests: total(settled),
      writes: writes(settled),
      writesPerPw: writes(settled) / pws,
      trailingWrites: writes(settled) - writes(atConverge),
      settleS,
      steadyWrites: writes(steady) - writes(settled),
      byResource: byRes,
      steadyByResource: steadyByRes || 'none',
      rssMB: rssHwmMB(opProc.pid!),
      createPerS,
      opWritesPerS: writes(atConverge) / convergeS,
      cpu,
      reconciles,
    };
  } finally {
    agentStop = true;
    await agents;
    await stopProcess(opProc, 60_000);
    await env.stop();
  }
}

const argv = process.argv.slice(2);
// --baseline DIR: the dist folder of another build (an earlier commit): each scenario runs with that
// operator first, then with this tree's, in the same run
const bi = argv.indexOf('--baseline');
const baseline = bi >= 0 ? argv.splice(bi, 2)[1] : undefined;
const scenarios = (argv.length ? argv : ['200:1000', '500:5000', '1000:10000']).map(
  (s) => s.split(':').map(Number) as [number, number],
);
const operators: [string, string][] = [
  ...(baseline ? [['baseline', join(baseline, 'operator', 'main.js')] as [string, string]] : []),
  ['this tree', join(import.meta.dirname, '..', 'operator', 'main.js')],
];
const results: Result[] = [];
for (const [n, p] of scenarios) {
  for (const [who, main] of operators) {
    console.log(`scenario: ${p} pseudowires over ${n} nodes, ${who}'s operator ...`);
    const r = await scenario(n, p, who, main);
    console.log(JSON.stringify(r));
    results.push(r);
  }
}
console.log(
  '\n| operator | nodes | pseudowires | converge (s) | operator API requests | writes | writes/pw | writes in 10 s steady state | peak RSS (MB) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.who} | ${r.nodes} | ${r.pws} | ${r.convergeS.toFixed(1)} | ${r.requests} | ${r.writes} | ${r.writesPerPw.toFixed(2)} | ${r.steadyWrites} | ${r.rssMB.toFixed(0)} |`,
  );
}
console.log('\nwhere the time goes (from pseudowire creation to convergence):');
for (const r of results) {
  const base = results.find((b) => b.who === 'baseline' && b.pws === r.pws && b.nodes === r.nodes);
  if (base && base !== r)
    console.log(
      `${r.nodes}/${r.pws}: against the baseline operator in this run: converge ${(r.convergeS / base.convergeS).toFixed(2)}x, writes per pseudowire ${(r.writesPerPw / base.writesPerPw).toFixed(2)}x, peak RSS ${(r.rssMB / base.rssMB).toFixed(2)}x`,
    );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: writes by resource: ${r.byResource}`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: ${r.trailingWrites} writes after convergence (counted above), quiet ${r.settleS.toFixed(1)} s after it`,
  );
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: writes in the 10 s at rest, by resource: ${r.steadyByResource}`,
  );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: CPU seconds: ${r.cpu}`);
  console.log(`${r.who}, ${r.nodes}/${r.pws}: reconciles (summed time): ${r.reconciles}`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: the apiserver's pace in this scenario: the bench created ${r.createPerS.toFixed(0)} pseudowires/s; the operator wrote ${r.opWritesPerS.toFixed(0)} objects/s (ratio ${(r.opWritesPerS / r.createPerS).toFixed(2)})`,
  );
}
const GOALS: Record<number, number> = { 5000: 30, 10000: 60 };
console.log("\ngoals (this tree's operator):");
for (const r of results.filter((x) => x.who === 'this tree')) {
  const g = GOALS[r.pws];
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  if (g !== undefined)
    console.log(
      `${r.pws} over ${r.nodes} converge <= ${g} s: ${r.convergeS.toFixed(1)} s, ${verdict(r.convergeS <= g)}`,
    );
  console.log(
    `${r.pws}: <= 3 writes per pseudowire: ${r.writesPerPw.toFixed(2)}, ${verdict(r.writesPerPw <= 3)}; 0 writes at rest: ${r.steadyWrites}, ${verdict(r.steadyWrites === 0)}`,
  );
  if (r.pws >= 10000)
    console.log(`${r.pws}: peak RSS <= 300 MB: ${r.rssMB.toFixed(0)} MB, ${verdict(r.rssMB <= 300)}`);
}
