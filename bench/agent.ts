// Node agent scale bench on a real kube-apiserver, userspace backend, one node netns:
//   cold    empty node, L2TPNodeState with N sessions already applied, agent started: time from the
//           agent's spawn until the status shows all N sessions Up at the current generation
//   apply   the agent already running on an empty spec: time from the apiserver committing the
//           N-session spec (watch event) until the status shows all N Up at that generation
//   clear   the spec emptied again: time until the status shows 0 sessions (every TAP gone)
//   static  the baseline measured in the same run: the same N sessions through the project's static
//           mode (no apiserver), time from its spawn to its "ready" log line (every TAP up)
//   remove  (largest agent point) 1,000 of the N sessions taken out of the running agent's spec: time
//           from the commit until the status shows the rest Up and the removed ones gone
//   static  also its stop: SIGTERM until exit, which removes every session it made (the teardown
//           of N sessions in static mode)
// A node state holds at most MAX_NODE_STATE_ITEMS tunnels and sessions: a larger spec is placed over
// several (shards, as the operator places them: operator/reconcilers/limits.ts), which the agent
// reads as one. Points above --agent-max run in static mode only. The kernel's own cost of deleting TAPs one by one and all
// at once (one RTM_DELLINK of an interface group) is measured on bare TAPs in the same run.
// Also: the agent's peak RSS (VmHWM of the node process), and at rest (largest N only) the agent's
// requests on its L2TPNodeState counted from the apiserver's audit log (PATCH of /status and GET,
// per minute), status updates that changed the object (watch events), and the agent's CPU.
// Where the time goes comes from the agent's own log lines (process start, first tunnel, sessions).
// The agent and static mode run under the chart's memory limit for the datapath pod
// (bench/memory-limit.ts; --memory-limit Q or none).
// usage (root): node dist/bench/agent.js [--sessions 1000] [--points 1,100] [--per-tunnel 100]
//               [--rest-seconds 60] [--agent-max 3000] [--prefix kb] [--subnet 10.205.0.0/24]
//               [--memory-limit Q]
// --prefix names the two network namespaces (<prefix>node, <prefix>peer) and the links; the subnet
// (a /24) addresses the underlay between them (.1 the node, .2 the peer).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { AGENT_SA, DEFAULT_NAMESPACE, rbacObjects, serviceAccountUser } from '../lib/api/rbac.js';
import {
  MAX_NODE_STATE_ITEMS,
  MAX_NODE_STATE_SHARDS,
  MAX_NODE_STATE_SPEC_BYTES,
  MAX_SESSIONS_PER_TUNNEL,
} from '../lib/api/limits.js';
import { nodeSelector, shardName, shardsOf } from '../lib/api/node-shards.js';
import { reportedSessions } from '../lib/api/node-status.js';
import { GROUP, VERSION } from '../lib/api/schemas.js';
import type { L2TPNodeState, NodeStateSpec } from '../lib/api/schemas.js';
import { deepEqual } from '../lib/deep-equal.js';
import { run, runCapture } from '../lib/exec.js';
import { withRtnl } from '../lib/netlink/rtnl-handle.js';
import { startControlPlane, type ControlPlane } from '../test/harness/controlplane.js';
import { bridgeLoopbackPort } from '../test/harness/loopback-bridge.js';
import { manySessionsSpec, staticConfigOf } from '../test/harness/nodestate.js';
import { Lab, requireRoot } from '../test/harness/netns.js';
import { sleep } from '../test/harness/wait.js';
import { place } from '../operator/reconcilers/limits.js';
import { desiredNodeState } from '../operator/render.js';
import { KubeClient, resourcePath } from '../lib/kube/client.js';
import { chartMemoryLimit } from '../test/harness/memory-limit.js';
import { startNodeProcess, stopNodeProcess, waitReady, type NodeProcess } from './node-process.js';
import { processCpuSeconds, procStatusMB } from './proc.js';

/** CPU seconds of the agent, which must still run. */
function cpuSeconds(pid: number): number {
  const s = processCpuSeconds(pid);
  if (s === undefined) throw new Error(`process ${pid} is gone`);
  return s;
}

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    points: { type: 'string', default: '1,100' },
    'per-tunnel': { type: 'string', default: '100' },
    'rest-seconds': { type: 'string', default: '60' },
    'agent-max': { type: 'string', default: '20000' },
    prefix: { type: 'string', default: 'kb' },
    subnet: { type: 'string', default: '10.205.0.0/24' },
    'memory-limit': { type: 'string' },
  },
});
/** The agent's (and static mode's) memory cgroup limit: the chart's datapath pod limit by default. */
const MEMORY_LIMIT = values['memory-limit'] ?? chartMemoryLimit('datapath');
let cgroups = 0;
const N = Number(values.sessions);
const POINTS = [
  ...new Set([...values.points.split(',').filter(Boolean).map(Number), N].filter((n) => n > 0 && n <= N)),
].sort((a, b) => a - b);
const PER_TUNNEL = Number(values['per-tunnel']);
const REST_S = Number(values['rest-seconds']);
const GOAL_S = 10;
/** What one node's shards hold, less a tunnel per shard. */
const NODE_MAX = MAX_NODE_STATE_SHARDS * MAX_NODE_STATE_ITEMS;
const AGENT_MAX = Math.min(Number(values['agent-max']), NODE_MAX);
/** Sessions taken out of the running agent's spec at once (largest agent point). */
const REMOVE = 1000;

const PREFIX = values.prefix;
if (!/^[a-z][a-z0-9]{0,5}$/.test(PREFIX))
  throw new Error(`--prefix ${PREFIX}: 1-6 lowercase letters or digits`);
const NODE = `${PREFIX}node`;
const PEER = `${PREFIX}peer`;
const net = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(values.subnet);
if (!net) throw new Error(`--subnet ${values.subnet}: expected a /24 like 10.205.0.0/24`);
const LOCAL = `${net[1]}.1`;
const REMOTE = `${net[1]}.2`;
// the repository, from this file's place (dist/bench/agent.js), so the bench runs from any directory
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(repo, 'dist/datapath/main.js');

// ---- the spec --------------------------------------------------------------------------------

function spec(n: number): NodeStateSpec {
  return manySessionsSpec({
    nodeName: NODE,
    n,
    perTunnel: PER_TUNNEL,
    local: LOCAL,
    remote: REMOTE,
    namePrefix: `${PREFIX}-`,
  });
}

/** The same sessions as a static-mode config. */
function staticConfig(n: number): string {
  return JSON.stringify(staticConfigOf(spec(n)));
}

// ---- processes -------------------------------------------------------------------------------

/** The agent or static mode in the node's namespace, in a memory cgroup of its own (a pod each). */
function startNode(args: string[]): NodeProcess {
  return startNodeProcess(
    ['netns', 'exec', NODE, process.execPath, MAIN, ...args],
    MEMORY_LIMIT,
    `kube-l2tp-bench-agent-${process.pid}-${++cgroups}`,
  );
}

async function tapCount(): Promise<number> {
  const r = await runCapture('ip', ['-n', NODE, '-o', 'link', 'show', 'type', 'tun']);
  return r.stdout.split('\n').filter((l) => l.includes('l2tpeth')).length;
}

// ---- the apiserver side ----------------------------------------------------------------------

let cp: ControlPlane;
let api: k8s.CustomObjectsApi;
/** Writes the node states as the operator does (one client, create or merge patch). */
let writer: KubeClient | undefined;
const NODE_STATES = { group: GROUP, version: VERSION, plural: 'l2tpnodestates' };
let agentUser = '';
let auditLog = '';

interface Seen {
  t: number;
  /** Every shard's generation ("name:gen ..."), and what the agent has observed of each. */
  gen: string;
  obsGen: string;
  shards: number;
  total: number;
  up: number;
  ready: boolean;
  /** The largest shard's object, and the statuses of all shards together. */
  bytes: number;
  statusBytes: number;
  /** tx + rx packets over every session's counters (TAPs up send IPv6 RS/MLD on their own). */
  packets: number;
}
let latest: Seen | undefined;
const events: Seen[] = [];
const waiters = new Set<() => void>();

const genKey = (shards: L2TPNodeState[], g: (o: L2TPNodeState) => number | undefined) =>
  shards.map((o) => `${o.metadata.name}:${g(o) ?? '-'}`).join(' ');

function summarize(shards: L2TPNodeState[]): Seen {
  const sessions = shards.flatMap((o) => reportedSessions(o));
  return {
    t: Date.now(),
    gen: genKey(shards, (o) => o.metadata.generation),
    obsGen: genKey(shards, (o) => o.status?.observedGeneration),
    shards: shards.length,
    total: sessions.length,
    up: sessions.filter((s) => s.state === 'Up').length,
    ready: shards.every((o) => o.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True'),
    bytes: Math.max(...shards.map((o) => JSON.stringify(o).length)),
    statusBytes: shards.reduce((a, o) => a + JSON.stringify(o.status ?? {}).length, 0),
    packets: sessions.reduce((a, s) => a + (s.counters?.txPackets ?? 0) + (s.counters?.rxPackets ?? 0), 0),
  };
}

async function startWatch(kc: k8s.KubeConfig): Promise<() => void> {
  const w = new k8s.Watch(kc);
  let abort: AbortController | undefined;
  let stopped = false;
  const objs = new Map<string, L2TPNodeState>();
  const go = async () => {
    abort = await w.watch(
      `/apis/${GROUP}/${VERSION}/l2tpnodestates`,
      { labelSelector: nodeSelector(NODE) },
      (phase, obj: L2TPNodeState) => {
        if (phase === 'DELETED') objs.delete(obj.metadata.name);
        else objs.set(obj.metadata.name, obj);
        const shards = shardsOf(NODE, objs.values());
        latest = shards.length ? summarize(shards) : undefined;
        if (latest) events.push(latest);
        for (const f of waiters) f();
      },
      () => {
        if (!stopped) setTimeout(() => void go(), 200);
      },
    );
  };
  await go();
  return () => {
    stopped = true;
    abort?.abort();
  };
}

/** Resolves with the first watched state (now or later) that satisfies pred. */
function waitFor(what: string, pred: (s: Seen) => boolean, timeoutMs = 180_000): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (latest && pred(latest)) {
        waiters.delete(check);
        clearTimeout(timer);
        resolve(latest);
      }
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`timed out waiting for ${what}; last seen ${JSON.stringify(latest)}`));
    }, timeoutMs);
    waiters.add(check);
    check();
  });
}

/**
 * When the watch saw the change that ends in generations `gen` begin (events from index mark on):
 * the first event whose generations differ from those before it. With several node states the
 * agent may act on the first one written before the last is committed.
 */
async function committedAt(mark: number, gen: string): Promise<number> {
  const before = events[mark - 1]?.gen;
  for (let i = 0; i < 2000; i++) {
    if (events.slice(mark).some((x) => x.gen === gen)) {
      const e = events.slice(mark).find((x) => x.gen !== before);
      if (e) return e.t;
    }
    await sleep(5);
  }
  throw new Error(`generation ${gen} never seen`);
}

const allUp = (n: number, gen: string) => (s: Seen) =>
  s.gen === gen && s.obsGen === gen && s.total === n && s.up === n && s.ready;

/** The shards' specs as last applied: a new spec is placed over them as the operator would. */
let applied: (NodeStateSpec | undefined)[] = [];

/**
 * Applies spec(n) as the operator writes it: placed over shards (sessions stay where they are),
 * each applied. Returns the shards' generations as the watch reports them.
 */
async function applyNodeState(n: number): Promise<string> {
  const placed = place(spec(n), applied, (p) => p.name.padStart(12, '0'), {
    sessionsPerTunnel: MAX_SESSIONS_PER_TUNNEL,
    nodeStateItems: MAX_NODE_STATE_ITEMS,
    nodeStateSpecBytes: MAX_NODE_STATE_SPEC_BYTES,
    nodeStateShards: MAX_NODE_STATE_SHARDS,
  });
  if (placed.refused.size) throw new Error(`${placed.refused.size} sessions do not fit on one node`);
  // a shard left with nothing is kept with an empty spec, as the operator keeps it until its agent
  // reports it empty: the status then says the agent has seen its sessions go
  const shards = Array.from(
    { length: Math.max(applied.length, placed.shards.length) },
    (_, k) => placed.shards[k] ?? (applied[k] ? { nodeName: NODE, tunnels: [] } : undefined),
  );
  // only the shards that change are written, together, as the operator writes them in one reconcile
  await Promise.all(
    shards.map(async (sp, k) => {
      if (!sp || deepEqual(sp, applied[k])) return;
      if (applied[k])
        await writer!.patch(resourcePath({ ...NODE_STATES, name: shardName(NODE, k) }), { spec: sp });
      else await writer!.create(resourcePath(NODE_STATES), desiredNodeState(NODE, sp, k));
    }),
  );
  const objs: L2TPNodeState[] = [];
  for (const [k, sp] of shards.entries()) {
    if (!sp) continue;
    const name = shardName(NODE, k);
    objs.push((await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'l2tpnodestates', name })) as L2TPNodeState); // prettier-ignore
  }
  applied = shards;
  return genKey(objs, (o) => o.metadata.generation);
}

interface AuditEvent {
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; name?: string };
  requestReceivedTimestamp: string;
}

/** The agent's requests on its node state between two instants, by verb[/subresource]. */
function agentRequests(from: number, to: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(auditLog, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as AuditEvent;
    const t = Date.parse(e.requestReceivedTimestamp);
    const name = e.objectRef?.name ?? '';
    if (
      t < from ||
      t >= to ||
      e.user?.username !== agentUser ||
      !(name === NODE || name.startsWith(`${NODE}.`))
    )
      continue;
    const sub = e.objectRef?.subresource;
    const k = sub ? `${e.verb}/${sub}` : e.verb;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

// ---- scenarios -------------------------------------------------------------------------------

interface Phases {
  /** spawn -> first log line (node start, imports, native pump load). */
  bootS: number;
  /** first log line -> first "tunnel up" (API GET, TAP listing). */
  firstTunnelS: number;
  /** first "tunnel up" -> last "session up". */
  sessionsS: number;
  /** ms per session over the first and the last 10 % of sessions. */
  msPerSessionHead: number;
  msPerSessionTail: number;
  /** last "session up" -> status observed (counters, status build, PATCH, watch). */
  statusS: number;
}

function phases(p: NodeProcess, endT: number, n: number): Phases {
  const first = p.lines[0]?.t ?? NaN;
  const tunnel = p.lines.find((l) => l.msg === 'tunnel up')?.t ?? NaN;
  const ups = p.lines.filter((l) => l.msg === 'session up' || l.msg === 'session reattached to existing TAP');
  const last = ups[n - 1]?.t ?? NaN;
  const k = Math.max(1, Math.floor(n / 10));
  const rate = (a: number, b: number) => (n > 1 ? ((ups[b]?.t ?? NaN) - (ups[a]?.t ?? NaN)) / (b - a) : NaN);
  return {
    bootS: (first - p.spawnedAt) / 1000,
    firstTunnelS: (tunnel - first) / 1000,
    sessionsS: (last - tunnel) / 1000,
    msPerSessionHead: rate(0, Math.min(k, n - 1)),
    msPerSessionTail: rate(Math.max(0, n - 1 - k), n - 1),
    statusS: (endT - last) / 1000,
  };
}

interface AgentResult {
  n: number;
  coldS: number;
  cold: Phases;
  applyS: number;
  apply: Phases;
  clearS: number;
  coldWrites: number;
  hwmMB: number;
  podPeakMB: number;
  rssMB: number;
  /** Node states (shards) the spec took, the largest one's size, and all their statuses. */
  shards: number;
  objectKB: number;
  statusKB: number;
  remove?: RemoveResult;
  rest?: {
    seconds: number;
    patchPerMin: number;
    getPerMin: number;
    changesPerMin: number;
    cpuPct: number;
    other: string;
    packetsInStatus: number;
  };
}

interface RemoveResult {
  n: number;
  /** commit -> every removed session gone and the rest Up in the status. */
  totalS: number;
  /** commit -> the agent's first "session deleted" line (watch, pass start, listing). */
  toStartS: number;
  /** first "session deleted" -> "session TAPs deleted" (pump release, one rtnetlink request). */
  deleteS: number;
  /** -> status seen. */
  toStatusS: number;
  oneRequest: boolean;
}

interface StaticResult {
  n: number;
  readyS: number;
  phases: Phases;
  hwmMB: number;
  podPeakMB: number;
  stopS: number;
  listTapsMs: number;
}

async function agentRun(n: number, dir: string, kubeconfig: string, rest: boolean): Promise<AgentResult> {
  await runCapture(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.adminKubeconfig, 'delete', 'l2tpnodestates', '-l', nodeSelector(NODE), '--ignore-not-found']); // prettier-ignore
  applied = [];
  const gen = await applyNodeState(n);
  if ((await tapCount()) !== 0) throw new Error('node not empty before the cold start');
  const a = startNode([
    ...['agent', '--node-name', NODE, '--backend', 'userspace', '--kubeconfig', kubeconfig],
    ...['--cni-socket', join(dir, `cni-${n}.sock`), '--cni-state-dir', join(dir, 'state')],
    ...['--no-install-cni', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
  ]);
  try {
    const up = await waitFor(`cold start of ${n}`, allUp(n, gen)).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${a.tail()}`);
    });
    const coldS = (up.t - a.spawnedAt) / 1000;
    const cold = phases(a, up.t, n);
    await sleep(1000); // the audit line of a request lands after its response
    const coldWrites = agentRequests(a.spawnedAt - 1000, up.t + 1000).get('patch/status') ?? 0;
    const pid = a.pid();
    let restOut: AgentResult['rest'];
    if (rest) {
      await sleep(2000);
      const from = Date.now();
      const cpu0 = cpuSeconds(pid);
      const ev0 = events.length;
      const pk0 = latest?.packets ?? 0;
      process.stderr.write(`  n=${n}: ${REST_S} s at rest...\n`);
      await sleep(REST_S * 1000);
      const to = Date.now();
      const cpu1 = cpuSeconds(pid);
      await sleep(1500); // let the audit log catch up
      const req = agentRequests(from, to);
      const min = (to - from) / 60_000;
      const other = [...req]
        .filter(([k]) => k !== 'patch/status' && k !== 'get')
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      restOut = {
        seconds: (to - from) / 1000,
        patchPerMin: (req.get('patch/status') ?? 0) / min,
        getPerMin: (req.get('get') ?? 0) / min,
        changesPerMin: events.slice(ev0).filter((e) => e.t >= from && e.t < to).length / min,
        cpuPct: ((cpu1 - cpu0) / ((to - from) / 1000)) * 100,
        other,
        packetsInStatus: (latest?.packets ?? 0) - pk0,
      };
    }
    const rssMB = procStatusMB(pid, 'VmRSS');
    const shards = latest?.shards ?? NaN;
    const objectKB = (latest?.bytes ?? NaN) / 1024;
    const statusKB = (latest?.statusBytes ?? NaN) / 1024;

    // remove: REMOVE sessions taken out of the running agent's spec
    let removeOut: RemoveResult | undefined;
    if (rest && n > REMOVE) {
      const lineMark = a.lines.length;
      const m = events.length;
      const g = await applyNodeState(n - REMOVE);
      const c = await committedAt(m, g);
      const done = await waitFor(`removal of ${REMOVE} of ${n}`, allUp(n - REMOVE, g));
      const lines = a.lines.slice(lineMark);
      const first = lines.find((l) => l.msg === 'session deleted')?.t ?? NaN;
      const taps = lines.find((l) => l.msg === 'session TAPs deleted');
      const left = await tapCount();
      if (left !== n - REMOVE) throw new Error(`${left} TAPs after removing ${REMOVE} of ${n}`);
      removeOut = {
        n: REMOVE,
        totalS: (done.t - c) / 1000,
        toStartS: (first - c) / 1000,
        deleteS: ((taps?.t ?? NaN) - first) / 1000,
        toStatusS: (done.t - (taps?.t ?? NaN)) / 1000,
        oneRequest: (taps?.oneRequest as boolean | undefined) === true,
      };
    }

    // clear: every session removed by the running agent
    let mark = events.length;
    const g0 = await applyNodeState(0);
    const c0 = await committedAt(mark, g0);
    const cleared = await waitFor(`clear of ${n}`, allUp(0, g0));
    const clearS = (cleared.t - c0) / 1000;
    if ((await tapCount()) !== 0) throw new Error('TAPs left after the spec was emptied');

    // apply to a running agent
    const lineMark = a.lines.length;
    mark = events.length;
    const g1 = await applyNodeState(n);
    const committed = await committedAt(mark, g1);
    const up1 = await waitFor(`apply of ${n}`, allUp(n, g1));
    const applyS = (up1.t - committed) / 1000;
    const applyLines: NodeProcess = { ...a, spawnedAt: committed, lines: a.lines.slice(lineMark) };
    const apply = phases(applyLines, up1.t, n);
    apply.bootS = NaN;
    apply.firstTunnelS = ((applyLines.lines.find((l) => l.msg === 'tunnel up')?.t ?? NaN) - committed) / 1000;

    const g2 = await applyNodeState(0);
    await waitFor(`final clear of ${n}`, allUp(0, g2));
    const hwmMB = procStatusMB(pid, 'VmHWM');
    const podPeakMB = a.podPeakMB();
    return {
      n,
      coldS,
      cold,
      applyS,
      apply,
      clearS,
      coldWrites,
      hwmMB,
      podPeakMB,
      rssMB,
      shards,
      objectKB,
      statusKB,
      ...(removeOut ? { remove: removeOut } : {}),
      ...(restOut ? { rest: restOut } : {}),
    };
  } finally {
    await stopNodeProcess(a);
  }
}

async function staticRun(n: number, dir: string): Promise<StaticResult> {
  if ((await tapCount()) !== 0) throw new Error('node not empty before the static run');
  const cfg = join(dir, `static-${n}.json`);
  writeFileSync(cfg, staticConfig(n));
  const s = startNode(['static', '--config', cfg, '--backend', 'userspace']);
  try {
    const readyT = await waitReady(s, 180_000);
    const taps = await tapCount();
    if (taps !== n) throw new Error(`static: ${taps} TAPs, expected ${n}`);
    const hwmMB = procStatusMB(s.pid(), 'VmHWM');
    const podPeakMB = s.podPeakMB();
    // what one listSessions (a pass of the agent) costs with n TAPs present
    const t0 = performance.now();
    await runCapture('ip', ['-n', NODE, '-j', '-d', 'link', 'show', 'type', 'tun']);
    const listTapsMs = performance.now() - t0;
    const stopS = await stopNodeProcess(s, 120_000);
    if ((await tapCount()) !== 0) throw new Error('static left TAPs behind');
    return {
      n,
      readyS: (readyT - s.spawnedAt) / 1000,
      phases: phases(s, readyT, n),
      hwmMB,
      podPeakMB,
      stopS,
      listTapsMs,
    };
  } finally {
    await stopNodeProcess(s);
  }
}

/** Cost of one `ip` exec from Node inside the node namespace, as the backend pays it. */
async function ipExecMs(): Promise<number> {
  const k = 50;
  const t0 = performance.now();
  for (let i = 0; i < k; i++) await runCapture('ip', ['-n', NODE, '-j', '-d', 'link', 'show', 'dev', 'lo']);
  return (performance.now() - t0) / k;
}

/**
 * What the kernel charges for deleting k bare TAPs in the node namespace: one RTM_DELLINK each (an
 * `ip -batch` of `link del`), against all of them at once (RtnlLinks.delMany, an interface group).
 */
async function kernelDeleteCost(k: number): Promise<{ oneByOneS: number; atOnceS: number }> {
  const names = Array.from({ length: k }, (_, i) => `${PREFIX}k${i}`);
  const make = () =>
    run('ip', ['-n', NODE, '-batch', '-'], {
      input: names.map((n) => `tuntap add dev ${n} mode tap`).join('\n') + '\n',
    });
  await make();
  let t0 = performance.now();
  await run('ip', ['-n', NODE, '-batch', '-'], {
    input: names.map((n) => `link del dev ${n}`).join('\n') + '\n',
  });
  const oneByOneS = (performance.now() - t0) / 1000;
  await make();
  const ns = `/run/netns/${NODE}`;
  const indices = await withRtnl(
    async (r) => (await r.links.list()).filter((l) => names.includes(l.name)).map((l) => l.index),
    ns,
  );
  t0 = performance.now();
  await withRtnl((r) => r.links.delMany(indices), ns);
  const atOnceS = (performance.now() - t0) / 1000;
  if ((await tapCount()) !== 0 || (await run('ip', ['-n', NODE, '-o', 'link'])).includes(`${PREFIX}k`))
    throw new Error('bare TAPs left behind');
  return { oneByOneS, atOnceS };
}

// ---- main ------------------------------------------------------------------------------------

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pad = (s: string, w: number) => s.padStart(w);

async function main() {
  requireRoot();
  console.log(
    `the agent and static mode run under a memory limit of ${MEMORY_LIMIT} (the chart's datapath pod limit unless --memory-limit)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'kl2tp-agent-bench-'));
  const lab = new Lab();
  let stopWatch = () => undefined as void;
  auditLog = join(dir, 'audit.log');
  const policy = join(dir, 'audit-policy.yaml');
  writeFileSync(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '- level: Metadata',
      `  resources: [{group: ${JSON.stringify(GROUP)}, resources: [l2tpnodestates, l2tpnodestates/status]}]`,
      '- level: None',
      '',
    ].join('\n'),
  );
  try {
    process.stderr.write('starting the control plane...\n');
    cp = await startControlPlane({
      apiserverArgs: [
        `--audit-policy-file=${policy}`,
        `--audit-log-path=${auditLog}`,
        '--audit-log-mode=blocking',
      ],
    });
    await cp.kubectl(['apply', '-f', join(repo, 'crds')]);
    await cp.kubectl(['create', 'namespace', DEFAULT_NAMESPACE]);
    await cp.kubectl(['apply', '-f', '-'], { input: rbacObjects().map((o) => JSON.stringify(o)).join('\n') }); // prettier-ignore
    agentUser = serviceAccountUser(DEFAULT_NAMESPACE, AGENT_SA);
    const kubeconfig = await cp.kubeconfigFor({ user: agentUser });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.adminKubeconfig);
    api = kc.makeApiClient(k8s.CustomObjectsApi);
    writer = new KubeClient(kc);
    for (let i = 0; i < 100; i++) {
      // the CRDs take a moment to be served
      const r = await runCapture(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.adminKubeconfig, 'get', 'l2tpnodestates']); // prettier-ignore
      if (r.code === 0) break;
      await sleep(200);
    }
    stopWatch = await startWatch(kc);

    await lab.netns(NODE);
    await lab.netns(PEER);
    await bridgeLoopbackPort(lab, NODE, Number(new URL(cp.url).port), dir);
    await lab.veth(
      { ns: NODE, name: `${PREFIX}-u0`, addr: `${LOCAL}/24` },
      { ns: PEER, name: `${PREFIX}-u1`, addr: `${REMOTE}/24` },
    );

    const execMs = await ipExecMs();
    process.stderr.write(`kernel: deleting ${REMOVE} bare TAPs one by one and at once...\n`);
    const kdel = await kernelDeleteCost(REMOVE);
    const statics: StaticResult[] = [];
    const agents: (AgentResult | undefined)[] = [];
    const agentTop = Math.max(...POINTS.filter((n) => n <= AGENT_MAX));
    for (const n of POINTS) {
      process.stderr.write(`n=${n}: static baseline...\n`);
      statics.push(await staticRun(n, dir));
      if (n > AGENT_MAX) {
        agents.push(undefined);
        continue;
      }
      process.stderr.write(`n=${n}: agent...\n`);
      agents.push(await agentRun(n, dir, kubeconfig, n === agentTop));
    }

    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      `\nnode agent bench: userspace backend, ${PER_TUNNEL} sessions per tunnel, UDP, 8-byte cookies`,
    );
    console.log(`one \`ip\` exec from Node: ${f(execMs, 1)} ms; load average at the end: ${load}\n`);
    console.log(
      `agent points up to ${AGENT_MAX} sessions (a node state holds at most ${MAX_NODE_STATE_ITEMS} tunnels and sessions, a node at most ${MAX_NODE_STATE_SHARDS} node states); above: static mode only`,
    );
    console.log(
      `kernel, ${REMOVE} bare TAPs deleted: one by one ${f(kdel.oneByOneS)} s, at once (interface group) ${f(kdel.atOnceS)} s\n`,
    );
    console.log('time to all sessions Up (s); ratio = agent / static baseline of the same run;');
    console.log('static-stop = SIGTERM to exit, removing all N; clear = agent spec emptied to status 0');
    console.log(
      `${pad('N', 6)} ${pad('static', 8)} ${pad('agent-cold', 11)} ${pad('ratio', 6)} ${pad('agent-apply', 12)} ${pad('ratio', 6)} ${pad('clear', 7)} ${pad('static-stop', 12)} ${pad(`goal<=${GOAL_S}s`, 10)}`,
    );
    const goal = (x: number) => (x <= GOAL_S ? 'met' : 'MISSED');
    for (let i = 0; i < POINTS.length; i++) {
      const s = statics[i]!;
      const a = agents[i];
      const cold = a?.coldS ?? NaN;
      const apply = a?.applyS ?? NaN;
      console.log(
        `${pad(String(s.n), 6)} ${pad(f(s.readyS), 8)} ${pad(f(cold), 11)} ${pad(f(cold / s.readyS), 6)} ${pad(f(apply), 12)} ${pad(f(apply / s.readyS), 6)} ${pad(f(a?.clearS ?? NaN), 7)} ${pad(f(s.stopS), 12)} ${pad(s.n === N ? goal(a ? Math.max(cold, s.readyS) : s.readyS) : '', 10)}`,
      );
    }
    const rm = agents.find((a) => a?.remove)?.remove;
    const rmOf = agents.find((a) => a?.remove)?.n;
    const static1k = statics.find((s) => s.n === REMOVE);
    if (rm) {
      console.log(
        `\nremoving ${rm.n} of ${rmOf} sessions from the running agent: ${f(rm.totalS)} s (goal <= 3 s: ${rm.totalS <= 3 ? 'met' : 'MISSED'})` +
          `${static1k ? `; static mode stopping ${REMOVE} sessions, same run: ${f(static1k.stopS)} s` : ''}`,
      );
      console.log(
        `  commit -> first session deleted ${f(rm.toStartS)} s, -> TAPs deleted ${f(rm.deleteS)} s (${rm.oneRequest ? 'one request' : 'link by link'}), -> status seen ${f(rm.toStatusS)} s`,
      );
    }
    console.log('\nwhere the time goes (s, from log timestamps; ms/session over the first / last 10 %)');
    console.log(
      `${pad('run', 14)} ${pad('boot', 6)} ${pad('to-tunnel', 10)} ${pad('sessions', 9)} ${pad('ms/s head', 10)} ${pad('ms/s tail', 10)} ${pad('to-status', 10)}`,
    );
    const row = (name: string, p: Phases) =>
      console.log(
        `${pad(name, 14)} ${pad(f(p.bootS), 6)} ${pad(f(p.firstTunnelS), 10)} ${pad(f(p.sessionsS), 9)} ${pad(f(p.msPerSessionHead, 1), 10)} ${pad(f(p.msPerSessionTail, 1), 10)} ${pad(f(p.statusS), 10)}`,
      );
    for (let i = 0; i < POINTS.length; i++) {
      row(`static ${POINTS[i]}`, statics[i]!.phases);
      const a = agents[i];
      if (!a) continue;
      row(`cold ${POINTS[i]}`, a.cold);
      row(`apply ${POINTS[i]}`, a.apply);
    }
    console.log(
      `\nmemory (MB; HWM: the process's peak RSS; pod: the most its memory cgroup (limit ${MEMORY_LIMIT}) was charged, kernel memory of its devices included) and the node states (objects: how many; object KB: the largest; status KB: all statuses)`,
    );
    console.log(
      `${pad('N', 6)} ${pad('static HWM', 11)} ${pad('agent HWM', 10)} ${pad('ratio', 6)} ${pad('static pod', 11)} ${pad('agent pod', 10)} ${pad('agent RSS', 10)} ${pad('objects', 8)} ${pad('object KB', 10)} ${pad('status KB', 10)} ${pad('PATCH/cold', 11)} ${pad('ip -j tun ms', 13)}`,
    );
    for (let i = 0; i < POINTS.length; i++) {
      const s = statics[i]!;
      const a = agents[i];
      console.log(
        `${pad(String(s.n), 6)} ${pad(f(s.hwmMB, 1), 11)} ${pad(f(a?.hwmMB ?? NaN, 1), 10)} ${pad(f((a?.hwmMB ?? NaN) / s.hwmMB), 6)} ${pad(f(s.podPeakMB, 0), 11)} ${pad(f(a?.podPeakMB ?? NaN, 0), 10)} ${pad(f(a?.rssMB ?? NaN, 1), 10)} ${pad(a ? String(a.shards) : '-', 8)} ${pad(f(a?.objectKB ?? NaN, 0), 10)} ${pad(f(a?.statusKB ?? NaN, 0), 10)} ${pad(a ? String(a.coldWrites) : '-', 11)} ${pad(f(s.listTapsMs, 0), 13)}`,
      );
    }
    const withRest = agents.find((a) => a?.rest);
    const r = withRest?.rest;
    if (r) {
      console.log(
        `\nat rest, ${withRest.n} sessions, ${f(r.seconds, 0)} s (apiserver audit log, agent identity, its node state):`,
      );
      console.log(
        `  status PATCH/min ${f(r.patchPerMin, 1)}  (object changed: ${f(r.changesPerMin, 1)}/min by watch)  GET/min ${f(r.getPerMin, 1)}  agent CPU ${f(r.cpuPct, 1)} %  RSS ${f(withRest.rssMB, 0)} MB  counter packets reported meanwhile: ${r.packetsInStatus}${r.other ? `  other: ${r.other}` : ''}`,
      );
    }
  } finally {
    stopWatch();
    writer?.close();
    await lab.cleanup();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
