// Operator scale bench on the real apiserver: time to converge (every Pseudowire Ready), the
// operator's API requests (writes per pseudowire until it is quiet, then any in 10 s at rest) and
// its peak RSS. The operator runs as its own process with a ServiceAccount token, as in a pod (a
// client certificate would cost the apiserver a chain verification per request, a token is
// verified once and cached); simulated agents (one watch over every node state, with the agents'
// ServiceAccount token: cheaper for the apiserver than a watch per agent, which real agents hold,
// but watches are a small part of its work) report status. Where the time
// goes is printed per scenario: CPU seconds of the operator, kube-apiserver, etcd and this process,
// reconciles and their summed time per controller. The same-run baseline is another build of the
// operator (--baseline DIR, e.g. the previous commit's dist) run on the same scenarios, and a floor
// in each scenario: a fresh apiserver with no operator, the bench creating the pseudowires and writing
// the one status each that any operator must write (the operator's own final status), from 16
// parallel clients, timed; the converge time is printed against it. The apiserver's side is printed
// too: its requests from every client, the watch events it sent and their bytes, and its CEL time
// (--apiserver-profile DIR also saves a CPU profile of each scenario's convergence for go tool pprof).
// The operator runs under the chart's memory limit for its pod (bench/memory-limit.ts; --memory-limit
// Q or none).
// --cookies MODE[,MODE...] runs each scenario once per cookie mode: none (default), literal (a cookie
// value in the spec), secret-each (a cookie Secret per pseudowire), secret-shared (one Secret named by
// every pseudowire). --steady-s N watches the steady state N seconds (default 10) and prints the
// operator's CPU, API requests and the apiserver's CPU per minute in it: what a Secret recheck costs,
// against literal in the same run. --no-floor leaves the floor out.
//   node dist/bench/operator-bench.js [--baseline DIR] [--apiserver-profile DIR] [--memory-limit Q]
//     [--cookies MODES] [--steady-s N] [--no-floor] [nodes:pseudowires ...]
//   (default 200:1000 500:5000 1000:10000)
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { silentLogger } from '../lib/log.js';
import { Informer } from '../lib/kube/informer.js';
import { KubeClient } from '../lib/kube/client.js';
import { AGENT_SA, OPERATOR_SA } from '../lib/api/rbac.js';
import { API_VERSION, type L2TPNodeState, type Pseudowire } from '../lib/api/schemas.js';
import { freePort } from '../test/harness/controlplane.js';
import { sleep } from '../test/harness/wait.js';
import {
  NS,
  createNode,
  healthyStatus,
  nodeStatePath,
  pseudowirePath,
  tunnelPath,
  setupEnv,
  type Env,
} from '../test/integration/operator-env.js';
import { stopProcess } from '../test/harness/process.js';
import { MemoryLimit, chartMemoryLimit } from '../test/harness/memory-limit.js';
import { loadavg } from 'node:os';
import { processCpuSeconds, procStatusMB } from './proc.js';

const loadAverage = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (i < items.length) await fn(items[i++]!);
  })); // prettier-ignore
}

/** user+system CPU seconds of a process (0 once it is gone). */
const cpuS = (pid: number): number => processCpuSeconds(pid) ?? 0;

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
  /** the operator's V8 heap: used and total (MB) */
  heapMB: [number, number];
  requests: Map<string, number>;
  reconciles: Map<string, number>;
  reconcileS: Map<string, number>;
}

async function scrape(port: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Scrape = {
    heapMB: [NaN, NaN],
    requests: new Map(),
    reconciles: new Map(),
    reconcileS: new Map(),
  };
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
    const h = /^kube_l2tp_operator_nodejs_heap_size_(used|total)_bytes ([\d.e+-]+)/.exec(line);
    if (h) out.heapMB[h[1] === 'used' ? 0 : 1] = Number(h[2]) / 2 ** 20;
  }
  return out;
}
const writes = (m: Map<string, number>, resource?: string) =>
  [...m]
    .filter(([k]) => /^(POST|PUT|PATCH|DELETE) /.test(k) && (!resource || k.split(' ')[1] === resource))
    .reduce((s, [, v]) => s + v, 0);
const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);

/** GET on the apiserver as admin, the body as bytes (metrics text, pprof profiles). */
async function adminGet(env: Env, path: string, timeoutMs = 30_000): Promise<Buffer> {
  const o: RequestOptions = {};
  await env.admin.kc.applyToHTTPSOptions(o);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, env.cp.url), { ...o, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`GET ${path}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`)),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.end();
  });
}

/** The apiserver's own counters: requests from every client, watch events sent, CEL time. */
interface ApiserverScrape {
  /** "VERB resource[/subresource]" -> requests */
  requests: Map<string, number>;
  /** kind or resource -> [events, bytes] */
  watchEvents: Map<string, [number, number]>;
  celS: number;
}

async function scrapeApiserver(env: Env): Promise<ApiserverScrape> {
  const out: ApiserverScrape = { requests: new Map(), watchEvents: new Map(), celS: 0 };
  const text = (await adminGet(env, '/metrics')).toString();
  const labels = (l: string) =>
    Object.fromEntries([...l.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} ([\d.e+-]+)$/.exec(line);
    if (!m) {
      const c = /^apiserver_cel_evaluation_duration_seconds_sum ([\d.e+-]+)$/.exec(line);
      if (c) out.celS += Number(c[1]);
      continue;
    }
    const [, name, l, v] = m;
    const lab = labels(l!);
    if (name === 'apiserver_request_total') {
      const k = `${lab.verb} ${lab.resource}${lab.subresource ? `/${lab.subresource}` : ''}`;
      out.requests.set(k, (out.requests.get(k) ?? 0) + Number(v));
    } else if (name === 'apiserver_watch_events_total' || name === 'apiserver_watch_events_sizes_sum') {
      const k = lab.kind ?? lab.resource ?? '?';
      const cur = out.watchEvents.get(k) ?? [0, 0];
      if (name === 'apiserver_watch_events_total') cur[0] += Number(v);
      else cur[1] += Number(v);
      out.watchEvents.set(k, cur);
    } else if (name === 'apiserver_cel_evaluation_duration_seconds_sum') out.celS += Number(v);
  }
  return out;
}

/** What the apiserver did between two scrapes, as one line. */
function apiserverDelta(a: ApiserverScrape, b: ApiserverScrape): string {
  const req = [...b.requests]
    .map(([k, v]) => [k, v - (a.requests.get(k) ?? 0)] as const)
    .filter(([k, n]) => n > 0 && !k.startsWith('WATCH') && !k.startsWith('LIST') && !k.startsWith('GET'))
    .sort((x, y) => y[1] - x[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const reads = [...b.requests]
    .filter(([k]) => /^(WATCH|LIST|GET) /.test(k))
    .reduce((s, [k, v]) => s + v - (a.requests.get(k) ?? 0), 0);
  const ev = [...b.watchEvents]
    .map(([k, [n, by]]) => {
      const [n0, b0] = a.watchEvents.get(k) ?? [0, 0];
      return [k, n - n0, by - b0] as const;
    })
    // the control plane's own start-up trickles in below that
    .filter(([, n]) => n >= 10)
    .map(([k, n, by]) => `${k} ${n} (${(by / 1e6).toFixed(1)} MB)`)
    .join(', ');
  return `writes by every client: ${req || 'none'}; reads (GET, LIST, WATCH) ${reads}; watch events sent: ${ev || 'none'}; CEL ${(b.celS - a.celS).toFixed(1)} s`;
}

/** A CPU profile of the apiserver for `seconds` (pprof format), saved to `file`; errors are printed. */
function profileApiserver(env: Env, seconds: number, file: string): Promise<void> {
  return adminGet(env, `/debug/pprof/profile?seconds=${seconds}`, (seconds + 30) * 1000).then(
    (b) => writeFileSync(file, b),
    (e: unknown) => console.log(`apiserver profile failed: ${String(e)}`),
  );
}

type CookieMode = 'none' | 'literal' | 'secret-each' | 'secret-shared';

/** A pseudowire's cookie in each mode, and the Secrets the mode needs. */
function cookieOf(mode: CookieMode, i: number): object {
  if (mode === 'literal') return { cookie: { value: (0x10000000 + i).toString(16) } };
  if (mode === 'secret-each') return { cookie: { secretRef: { name: `ck-${i}`, key: 'cookie' } } };
  if (mode === 'secret-shared') return { cookie: { secretRef: { name: 'ck-shared', key: 'cookie' } } };
  return {};
}
function secretsOf(mode: CookieMode, pws: number): { name: string; value: string }[] {
  if (mode === 'secret-each')
    return Array.from({ length: pws }, (_, i) => ({ name: `ck-${i}`, value: (0x10000000 + i).toString(16) }));
  if (mode === 'secret-shared') return [{ name: 'ck-shared', value: '0a0b0c0d' }];
  return [];
}

/** The steady state after convergence, per minute. */
interface Steady {
  seconds: number;
  operatorCpuPerMin: number;
  apiserverCpuPerMin: number;
  etcdCpuPerMin: number;
  requestsPerMin: number;
  /** "VERB resource" -> requests per minute, the largest first */
  byRequest: string;
  reconcilesPerMin: string;
}

interface Result {
  /** which operator: this tree's, or the baseline build's */
  who: string;
  cookies: CookieMode;
  steady: Steady;
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
  /** the operator's V8 heap at convergence, used / total (MB) */
  heapAtConverge: string;
  /** the baseline: pseudowires the bench itself created per second */
  createPerS: number;
  opWritesPerS: number;
  cpu: string;
  reconciles: string;
  /** the apiserver's side, from tunnel creation to convergence */
  apiserver: string;
  /** one converged pseudowire's status: what the floor writes */
  sampleStatus: object | undefined;
}

interface Floor {
  nodes: number;
  pws: number;
  createS: number;
  statusS: number;
  totalS: number;
  cpu: string;
  apiserver: string;
}

/**
 * What the apiserver alone does on this machine: a fresh control plane, no operator, one watcher of
 * every pseudowire (as the operator's informer), the bench creating the pseudowires and then writing
 * each one status (the operator's final status of one of them, with the operator's identity), 16 clients in parallel as in the
 * scenarios. Node states, pods and the agents' reports are left out: this is the least any operator
 * must cost, not a model of one.
 */
async function floor(nodes: number, pws: number, status: object): Promise<Floor> {
  const env = await setupEnv();
  // the status is written as the operator writes it: with its ServiceAccount token
  const writer = KubeClient.fromFile(await env.cp.serviceAccountKubeconfig(NS, OPERATOR_SA));
  const watched = new Informer<Pseudowire>(env.admin, { path: pseudowirePath(), apiVersion: API_VERSION, kind: 'Pseudowire' }, silentLogger()); // prettier-ignore
  try {
    watched.start();
    await watched.waitForSync();
    const cp = controlPlanePids(env.cp.dir);
    const api0 = await scrapeApiserver(env);
    const cpu0 = { apiserver: cpuS(cp['kube-apiserver'] ?? 0), etcd: cpuS(cp.etcd ?? 0), bench: process.cpuUsage() }; // prettier-ignore
    const ids = Array.from({ length: pws }, (_, i) => i);
    const t0 = Date.now();
    await pool(ids, 16, (i) =>
      env.admin.create(pseudowirePath('default'), { apiVersion: API_VERSION, kind: 'Pseudowire', metadata: { name: `pw-${i}` }, spec: { tunnelRef: { name: `t-${i % nodes}` } } }),
    ); // prettier-ignore
    const t1 = Date.now();
    await pool(ids, 16, (i) =>
      writer.patch(`${pseudowirePath('default', `pw-${i}`)}/status`, { status: { ...status, tunnel: `t-${i % nodes}` } }),
    ); // prettier-ignore
    const t2 = Date.now();
    const bench = process.cpuUsage(cpu0.bench);
    return {
      nodes,
      pws,
      createS: (t1 - t0) / 1000,
      statusS: (t2 - t1) / 1000,
      totalS: (t2 - t0) / 1000,
      cpu: [
        `kube-apiserver ${(cpuS(cp['kube-apiserver'] ?? 0) - cpu0.apiserver).toFixed(1)}`,
        `etcd ${(cpuS(cp.etcd ?? 0) - cpu0.etcd).toFixed(1)}`,
        `bench ${((bench.user + bench.system) / 1e6).toFixed(1)}`,
      ].join(', '),
      apiserver: apiserverDelta(api0, await scrapeApiserver(env)),
    };
  } finally {
    await watched.stop();
    writer.close();
    await env.stop();
  }
}

async function scenario(
  nodes: number,
  pws: number,
  who: string,
  main: string,
  profileDir: string | undefined,
  cookies: CookieMode = 'none',
): Promise<Result> {
  const env = await setupEnv();
  let opProc: ReturnType<typeof spawn> | undefined;
  let agentStop = false;
  let agents: Promise<void> | undefined;
  let agentClient: KubeClient | undefined;
  let limit: MemoryLimit | undefined;
  let stopping = false;
  try {
    const names = Array.from({ length: nodes }, (_, i) => `node-${i}`);
    await pool(names, 16, (n) =>
      createNode(env.admin, n, `10.${Math.floor(names.indexOf(n) / 250)}.${names.indexOf(n) % 250}.1`),
    );
    const port = await freePort();
    const operatorKubeconfig = await env.cp.serviceAccountKubeconfig(NS, OPERATOR_SA);
    agentClient = KubeClient.fromFile(await env.cp.serviceAccountKubeconfig(NS, AGENT_SA));
    const agent = agentClient;
    limit =
      memoryLimit === 'none'
        ? undefined
        : MemoryLimit.create(`kube-l2tp-bench-operator-${process.pid}`, memoryLimit);
    const opArgs = [
      main,
      '--kubeconfig',
      operatorKubeconfig,
      '--namespace',
      NS,
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--leader-elect=false',
      '--pod-delete-grace-seconds',
      '0',
    ];
    const [opCmd, opCmdArgs] = MemoryLimit.wrap(limit, process.execPath, opArgs);
    opProc = spawn(opCmd, opCmdArgs, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    }); // prettier-ignore
    opProc.on('exit', (code, signal) => {
      if (!stopping) console.log(`the operator exited during the scenario: ${signal ?? `code ${code}`}${signal === 'SIGKILL' && limit ? ` (memory limit ${limit.quantity})` : ''}`);
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
    const seen = new Informer<L2TPNodeState>(agent, { path: nodeStatePath(), apiVersion: API_VERSION, kind: 'L2TPNodeState' }, silentLogger()); // prettier-ignore
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
          await agent.patch(`${nodeStatePath(name)}/status`, { status: healthyStatus(ns) }).catch(() => todo.add(name)); // prettier-ignore
        });
        await sleep(100);
      }
      await seen.stop();
    })();
    const cp = controlPlanePids(env.cp.dir);
    const api0 = await scrapeApiserver(env);
    // the profile covers the first part of convergence (at most its expected length)
    const profiled = profileDir
      ? profileApiserver(env, Math.max(5, Math.min(60, Math.round(pws / 250))), join(profileDir, `apiserver-${who.replace(/\W/g, '')}-${nodes}-${pws}.pprof`))
      : undefined; // prettier-ignore
    // the cookie Secrets exist before the pseudowires (not timed)
    await pool(secretsOf(cookies, pws), 16, (c) =>
      env.admin.create('/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: c.name }, data: { cookie: Buffer.from(c.value).toString('base64') } }),
    ); // prettier-ignore
    const cpu0 = { operator: cpuS(opProc.pid!), apiserver: cpuS(cp['kube-apiserver'] ?? 0), etcd: cpuS(cp.etcd ?? 0), bench: process.cpuUsage() }; // prettier-ignore
    const t0 = Date.now();
    const tunnels = names.map((n, i) => ({ name: `t-${i}`, local: n, peer: names[(i + 1) % nodes]! }));
    await pool(tunnels, 16, (t) =>
      env.admin.create(tunnelPath(), { apiVersion: API_VERSION, kind: 'L2TPTunnel', metadata: { name: t.name }, spec: { local: { node: t.local }, peer: { node: t.peer }, allowedNamespaces: ['default'] } }),
    ); // prettier-ignore
    const tc = Date.now();
    await pool(Array.from({ length: pws }, (_, i) => i), 16, (i) =>
      env.admin.create(pseudowirePath('default'), { apiVersion: API_VERSION, kind: 'Pseudowire', metadata: { name: `pw-${i}` }, spec: { tunnelRef: { name: `t-${i % nodes}` }, ...cookieOf(cookies, i) } }),
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
    const sample = watched.get('default/pw-0')?.status;
    await watched.stop();
    const apiserver = apiserverDelta(api0, await scrapeApiserver(env));
    await profiled;
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
    // steady state: nothing changes, agents keep polling
    const s0 = { at: Date.now(), op: cpuS(opProc.pid!), api: cpuS(cp['kube-apiserver'] ?? 0), etcd: cpuS(cp.etcd ?? 0), scrape: await scrape(port) }; // prettier-ignore
    await sleep(steadyS * 1000);
    const s1 = { at: Date.now(), op: cpuS(opProc.pid!), api: cpuS(cp['kube-apiserver'] ?? 0), etcd: cpuS(cp.etcd ?? 0), scrape: await scrape(port) }; // prettier-ignore
    const steady = s1.scrape.requests;
    const perMin = (n: number) => (n * 60_000) / (s1.at - s0.at);
    const delta = (a: Map<string, number>, b: Map<string, number>) =>
      [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, n]) => n > 0);
    const steadyState: Steady = {
      seconds: (s1.at - s0.at) / 1000,
      operatorCpuPerMin: perMin(s1.op - s0.op),
      apiserverCpuPerMin: perMin(s1.api - s0.api),
      etcdCpuPerMin: perMin(s1.etcd - s0.etcd),
      requestsPerMin: perMin(total(s1.scrape.requests) - total(s0.scrape.requests)),
      byRequest:
        delta(s0.scrape.requests, s1.scrape.requests)
          .sort((x, y) => y[1] - x[1])
          .map(([k, n]) => `${k} ${perMin(n).toFixed(0)}`)
          .join(', ') || 'none',
      reconcilesPerMin:
        delta(s0.scrape.reconciles, s1.scrape.reconciles)
          .map(([k, n]) => `${k} ${perMin(n).toFixed(0)}`)
          .join(', ') || 'none',
    };
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
      cookies,
      steady: steadyState,
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
      rssMB: procStatusMB(opProc.pid!, 'VmHWM'),
      heapAtConverge: `${scraped.heapMB[0].toFixed(0)} / ${scraped.heapMB[1].toFixed(0)} MB`,
      createPerS,
      opWritesPerS: writes(atConverge) / convergeS,
      cpu,
      reconciles,
      apiserver,
      sampleStatus: sample,
    };
  } finally {
    agentStop = true;
    stopping = true;
    await agents;
    await stopProcess(opProc, 60_000);
    await limit?.remove();
    agentClient?.close();
    await env.stop();
  }
}

const argv = process.argv.slice(2);
// --baseline DIR: the dist folder of another build (an earlier commit): each scenario runs with that
// operator first, then with this tree's, in the same run
const bi = argv.indexOf('--baseline');
const baseline = bi >= 0 ? argv.splice(bi, 2)[1] : undefined;
// --memory-limit Q|none: the operator's memory cgroup limit (default: the chart's operator limit)
const mi = argv.indexOf('--memory-limit');
const memoryLimit = mi >= 0 ? argv.splice(mi, 2)[1]! : chartMemoryLimit('operator');
const ci = argv.indexOf('--cookies');
const cookieModes = (ci >= 0 ? argv.splice(ci, 2)[1]!.split(',') : ['none']) as CookieMode[];
for (const m of cookieModes)
  if (!['none', 'literal', 'secret-each', 'secret-shared'].includes(m)) throw new Error(`--cookies ${m}?`);
const si = argv.indexOf('--steady-s');
const steadyS = si >= 0 ? Number(argv.splice(si, 2)[1]) : 10;
const fi = argv.indexOf('--no-floor');
const noFloor = fi >= 0 && argv.splice(fi, 1).length > 0;
const pi = argv.indexOf('--apiserver-profile');
const profileDir = pi >= 0 ? argv.splice(pi, 2)[1] : undefined;
const scenarios = (argv.length ? argv : ['200:1000', '500:5000', '1000:10000']).map(
  (s) => s.split(':').map(Number) as [number, number],
);
const operators: [string, string][] = [
  ...(baseline ? [['baseline', join(baseline, 'operator', 'main.js')] as [string, string]] : []),
  ['this tree', join(import.meta.dirname, '..', 'operator', 'main.js')],
];
const results: Result[] = [];
const floors: Floor[] = [];
for (const [n, p] of scenarios) {
  for (const cookies of cookieModes) {
    for (const [who, main] of operators) {
      console.log(`scenario: ${p} pseudowires over ${n} nodes, cookies ${cookies}, ${who}'s operator ...`);
      const r = await scenario(n, p, who, main, profileDir, cookies);
      console.log(JSON.stringify({ ...r, sampleStatus: undefined }));
      results.push(r);
    }
  }
  if (noFloor) continue;
  const status = results.findLast((r) => r.pws === p && r.nodes === n)?.sampleStatus;
  if (!status) {
    console.log(`floor ${n}/${p}: no converged pseudowire's status to write: skipped`);
    continue;
  }
  console.log(`floor: ${p} pseudowires created and given one status each, no operator ...`);
  const f = await floor(n, p, status);
  console.log(JSON.stringify(f));
  floors.push(f);
}
console.log(
  `\n| operator | nodes | pseudowires | converge (s) | operator API requests | writes | writes/pw | writes in the steady state | peak RSS (MB; memory limit ${memoryLimit}) |`,
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.who} | ${r.nodes} | ${r.pws} | ${r.convergeS.toFixed(1)} | ${r.requests} | ${r.writes} | ${r.writesPerPw.toFixed(2)} | ${r.steadyWrites} | ${r.rssMB.toFixed(0)} |`,
  );
}
console.log(
  '\nfloor: the apiserver alone in the same run (creates, then one status write each, 16 clients, no operator)',
);
console.log('| nodes | pseudowires | create (s) | status writes (s) | floor (s) | CPU seconds |');
console.log('|---|---|---|---|---|---|');
for (const f of floors)
  console.log(
    `| ${f.nodes} | ${f.pws} | ${f.createS.toFixed(1)} | ${f.statusS.toFixed(1)} | ${f.totalS.toFixed(1)} | ${f.cpu} |`,
  );
for (const f of floors) console.log(`floor ${f.nodes}/${f.pws}: apiserver: ${f.apiserver}`);
console.log('\nwhere the time goes (from pseudowire creation to convergence):');
for (const r of results) {
  const base = results.find(
    (b) => b.who === 'baseline' && b.pws === r.pws && b.nodes === r.nodes && b.cookies === r.cookies,
  );
  if (base && base !== r)
    console.log(
      `${r.nodes}/${r.pws}, cookies ${r.cookies}: against the baseline operator in this run: converge ${(r.convergeS / base.convergeS).toFixed(2)}x, writes per pseudowire ${(r.writesPerPw / base.writesPerPw).toFixed(2)}x, peak RSS ${(r.rssMB / base.rssMB).toFixed(2)}x`,
    );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: writes by resource: ${r.byResource}`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: ${r.trailingWrites} writes after convergence (counted above), quiet ${r.settleS.toFixed(1)} s after it`,
  );
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: writes in the 10 s at rest, by resource: ${r.steadyByResource}`,
  );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: CPU seconds: ${r.cpu}`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: the operator's heap at convergence (used / total): ${r.heapAtConverge}; peak RSS ${r.rssMB.toFixed(0)} MB`,
  );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: apiserver: ${r.apiserver}`);
  const f = floors.find((x) => x.pws === r.pws && x.nodes === r.nodes);
  if (f)
    console.log(
      `${r.who}, ${r.nodes}/${r.pws}: converge ${r.convergeS.toFixed(1)} s against the floor's ${f.totalS.toFixed(1)} s: ${(r.convergeS / f.totalS).toFixed(2)}x`,
    );
  console.log(`${r.who}, ${r.nodes}/${r.pws}: reconciles (summed time): ${r.reconciles}`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}: the apiserver's pace in this scenario: the bench created ${r.createPerS.toFixed(0)} pseudowires/s; the operator wrote ${r.opWritesPerS.toFixed(0)} objects/s (ratio ${(r.opWritesPerS / r.createPerS).toFixed(2)})`,
  );
}
console.log(
  `\nsteady state (${steadyS} s after the operator is quiet), per minute; load average ${loadAverage()}:`,
);
console.log(
  '| operator | cookies | nodes | pseudowires | operator CPU-s/min | apiserver CPU-s/min | etcd CPU-s/min | operator API requests/min | by request | reconciles/min |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const st = r.steady;
  console.log(
    `| ${r.who} | ${r.cookies} | ${r.nodes} | ${r.pws} | ${st.operatorCpuPerMin.toFixed(2)} | ${st.apiserverCpuPerMin.toFixed(2)} | ${st.etcdCpuPerMin.toFixed(2)} | ${st.requestsPerMin.toFixed(0)} | ${st.byRequest} | ${st.reconcilesPerMin} |`,
  );
}
// each cookie mode against the same operator's literal cookies (or none) in this run
for (const r of results) {
  const base =
    results.find(
      (b) => b.who === r.who && b.pws === r.pws && b.nodes === r.nodes && b.cookies === 'literal',
    ) ??
    results.find((b) => b.who === r.who && b.pws === r.pws && b.nodes === r.nodes && b.cookies === 'none');
  if (!base || base === r) continue;
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : `${a.toFixed(2)} vs 0`);
  console.log(
    `${r.who}, ${r.nodes}/${r.pws}, cookies ${r.cookies} against ${base.cookies} (same run): operator CPU ${ratio(r.steady.operatorCpuPerMin, base.steady.operatorCpuPerMin)}, apiserver CPU ${ratio(r.steady.apiserverCpuPerMin, base.steady.apiserverCpuPerMin)}, operator API requests ${ratio(r.steady.requestsPerMin, base.steady.requestsPerMin)} per minute`,
  );
}

const GOALS: Record<number, number> = { 5000: 30, 10000: 60 };
console.log("\ngoals (this tree's operator):");
for (const r of results.filter((x) => x.who === 'this tree')) {
  const g = GOALS[r.pws];
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const f = floors.find((x) => x.pws === r.pws && x.nodes === r.nodes);
  const vsFloor = f ? ` (the apiserver's floor here: ${f.totalS.toFixed(1)} s)` : '';
  if (g !== undefined)
    console.log(
      `${r.pws} over ${r.nodes} converge <= ${g} s: ${r.convergeS.toFixed(1)} s, ${verdict(r.convergeS <= g)}${vsFloor}`,
    );
  console.log(
    `${r.pws}: <= 3 writes per pseudowire: ${r.writesPerPw.toFixed(2)}, ${verdict(r.writesPerPw <= 3)}; 0 writes at rest: ${r.steadyWrites}, ${verdict(r.steadyWrites === 0)}`,
  );
  if (r.pws >= 10000)
    console.log(`${r.pws}: peak RSS <= 300 MB: ${r.rssMB.toFixed(0)} MB, ${verdict(r.rssMB <= 300)}`);
}
