// What the agent's periodic resync costs a node at rest, per backend, in the same run: the agent runs
// a reconcile pass over its whole node state every 10 s (and reads every session's counters for its
// status and metrics) even when nothing changed. Per backend, N sessions are made on one node by the
// agent's own reconcile() through the backend the agent would select, then --passes passes over the
// same desired state run back to back, each with allCounters() as the agent's pass does:
//   first    the pass that made the N sessions (s)
//   pass     CPU time of one steady pass (median, and the range), and its wall time (median)
//   at rest  that CPU per resync interval: the share of one CPU the node's backend work takes idle
// The apiserver side of a pass (the node state read, status writes when due) is the same for every
// backend and not here: bench/agent.js measures the whole agent at rest (userspace backend).
// The userspace backend is the baseline printed beside ebpf.
// usage (root): node dist/bench/resync.js [--sessions 3000] [--per-tunnel 1000] [--passes 9]
//               [--backends userspace,ebpf] [--prefix kr] [--net 208]
// --prefix names the two network namespaces (<prefix>h1, <prefix>h2); --net is the second octet of
// the underlay's 10.N.1.0/24. The node's side runs as a child in <prefix>h1 (`--child`).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { DEFAULT_RESYNC_SECONDS } from '../datapath/agent/agent.js';
import { reconcile } from '../datapath/agent/reconcile.js';
import { desiredFromSpec } from '../datapath/agent/desired.js';
import { selectBackend } from '../datapath/backend/select.js';
import { Lab, inNs, requireRoot } from '../test/harness/netns.js';
import { manySessionsSpec } from '../test/harness/nodestate.js';
import { privateBpffs } from '../test/integration/datapath-ebpf-lab.js';
import { twoHosts } from '../test/integration/datapath-lab.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '3000' },
    'per-tunnel': { type: 'string', default: '1000' },
    passes: { type: 'string', default: '9' },
    backends: { type: 'string', default: 'userspace,ebpf' },
    prefix: { type: 'string', default: 'kr' },
    net: { type: 'string', default: '208' },
    // the node's side, run in the namespace: backend, bpffs, local and remote underlay addresses
    child: { type: 'string' },
    bpffs: { type: 'string' },
    local: { type: 'string' },
    remote: { type: 'string' },
  },
});
const N = Number(values.sessions);
const PER_TUNNEL = Number(values['per-tunnel']);
const PASSES = Number(values.passes);
const BACKENDS = values.backends.split(',') as Backend[];
type Backend = 'userspace' | 'ebpf';
if (!Number.isInteger(N) || N < 1) throw new Error(`--sessions: ${values.sessions}`);
if (!Number.isInteger(PASSES) || PASSES < 1) throw new Error(`--passes: ${values.passes}`);
if (BACKENDS.some((b) => b !== 'userspace' && b !== 'ebpf'))
  throw new Error(`--backends: ${values.backends}`);

interface ChildResult {
  firstS: number;
  /** Per steady pass: CPU ms (user + system) and wall ms. */
  passes: { cpuMs: number; wallMs: number }[];
}

/** The node's side: make the sessions, time the steady passes, remove everything. */
async function child(backend: Backend, bpffs: string, local: string, remote: string): Promise<ChildResult> {
  const logger = pino({ level: 'warn' });
  const desired = desiredFromSpec(
    manySessionsSpec({ nodeName: 'bench', n: N, perTunnel: PER_TUNNEL, local, remote, namePrefix: '' }),
    { underlayMtu: 1500 },
  );
  const { backend: b } = await selectBackend(backend, { logger, bpffs });
  try {
    const t0 = performance.now();
    const first = await reconcile(b, desired, logger);
    const firstS = (performance.now() - t0) / 1000;
    const up = first.sessions.filter((s) => s.state === 'Up').length;
    if (up !== N) throw new Error(`${backend}: ${up} of ${N} sessions up after the first pass`);
    const passes: ChildResult['passes'] = [];
    for (let i = 0; i < PASSES; i++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      const r = await reconcile(b, desired, logger);
      await b.allCounters();
      const c = process.cpuUsage(c0);
      passes.push({ cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() - w0 });
      if (r.removed.length || r.sessions.some((s) => s.state !== 'Up'))
        throw new Error(`${backend}: a steady pass changed something: ${JSON.stringify(r.removed)}`);
    }
    return { firstS, passes };
  } finally {
    await b.close({ keepDevices: false });
  }
}

async function runChild(ns: string, backend: Backend, bpffs: string, local: string, remote: string) {
  const out = await inNs(
    ns,
    process.execPath,
    fileURLToPath(import.meta.url),
    ...['--child', backend, '--bpffs', bpffs, '--local', local, '--remote', remote],
    ...['--sessions', String(N), '--per-tunnel', String(PER_TUNNEL), '--passes', String(PASSES)],
  );
  return JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
}

if (values.child) {
  const r = await child(values.child as Backend, values.bpffs!, values.local!, values.remote!);
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  requireRoot();
  const lab = new Lab();
  try {
    const h = await twoHosts(lab, values.prefix, 1, false, Number(values.net));
    const bpffs = await privateBpffs(lab);
    console.log(
      `resync bench: ${N} sessions on one node (${PER_TUNNEL} per tunnel, UDP, 8-byte cookies), ` +
        `${PASSES} steady passes each (reconcile + counters, as the agent's pass every ${DEFAULT_RESYNC_SECONDS} s)`,
    );
    const results = new Map<Backend, ChildResult>();
    for (const b of BACKENDS) {
      process.stderr.write(`${b}: ${N} sessions, ${PASSES} passes...\n`);
      results.set(b, await runChild(h.h1, b, bpffs, h.u1, h.u2));
    }
    const pad = (s: string, w: number) => s.padEnd(w);
    const f = (x: number, d = 0) => x.toFixed(d);
    console.log(
      `\n${pad('backend', 10)} ${pad('first s', 8)} ${pad('pass CPU ms (range)', 22)} ${pad('pass wall ms', 13)} ` +
        `${pad(`at rest, % of a CPU`, 20)} vs userspace (pass CPU)`,
    );
    const base = results.get('userspace');
    for (const [b, r] of results) {
      const cpu = r.passes.map((p) => p.cpuMs);
      const m = median(cpu);
      const range = `${f(Math.min(...cpu))}-${f(Math.max(...cpu))}`;
      const vs = b !== 'userspace' && base ? `${f(m / median(base.passes.map((p) => p.cpuMs)), 2)}x` : '';
      console.log(
        `${pad(b, 10)} ${pad(f(r.firstS, 2), 8)} ${pad(`${f(m)} (${range})`, 22)} ` +
          `${pad(f(median(r.passes.map((p) => p.wallMs))), 13)} ${pad(f((m / (DEFAULT_RESYNC_SECONDS * 1000)) * 100, 2), 20)} ${vs}`,
      );
    }
  } finally {
    await lab.cleanup();
  }
}
