// Many sessions on one node, per backend, in the same run: static mode (`kube-l2tp-datapath static`,
// no apiserver) brings N sessions up, is killed (SIGKILL, as a crash or an OOM kill ends it: the
// sessions' devices, and the ebpf backend's pinned programs and maps, stay), a second process with
// the same configuration adopts them, and its SIGTERM removes them. Per backend and N:
//   ready   spawn to the "ready" log line (every session up)
//   adopt   the second process's spawn to its "ready" line (every session found and adopted)
//   stop    SIGTERM to exit (every session removed)
//   charged what the process's memory cgroup (the datapath pod's, under the chart's limit) was
//           charged at most, against the process's own peak RSS: the rest is mostly the kernel's
//           memory for the sessions' devices (userspace: a TAP, its queue and a socket; ebpf: a veth
//           pair with a queue per CPU on each end, up to SESSION_QUEUES, and map entries)
// The userspace backend is the baseline printed beside ebpf.
// usage (root): node dist/bench/sessions.js [--sessions 1000[,5000]] [--per-tunnel 1000]
//               [--backends userspace,ebpf] [--memory-limit Q|none] [--prefix ks] [--net 207]
// --prefix names the two network namespaces (<prefix>h1, <prefix>h2); --net is the second octet of
// the underlay's 10.N.1.0/24.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SESSION_QUEUES } from '../datapath/backend/ebpf/backend.js';
import { Lab, linkStats, requireRoot } from '../test/harness/netns.js';
import { manySessionsSpec, staticConfigOf } from '../test/harness/nodestate.js';
import { privateBpffs } from '../test/integration/datapath-ebpf-lab.js';
import { staticArgv, twoHosts } from '../test/integration/datapath-lab.js';
import { chartMemoryLimit } from '../test/harness/memory-limit.js';
import { startNodeProcess, stopNodeProcess, waitReady, type NodeProcess } from './node-process.js';
import { procStatusMB } from './proc.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    'per-tunnel': { type: 'string', default: '1000' },
    backends: { type: 'string', default: 'userspace,ebpf' },
    'memory-limit': { type: 'string' },
    prefix: { type: 'string', default: 'ks' },
    net: { type: 'string', default: '207' },
  },
});
const POINTS = values.sessions.split(',').map(Number);
const PER_TUNNEL = Number(values['per-tunnel']);
const BACKENDS = values.backends.split(',') as ('userspace' | 'ebpf')[];
const MEMORY_LIMIT = values['memory-limit'] ?? chartMemoryLimit('datapath');
const NET = Number(values.net);
if (POINTS.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--sessions: ${values.sessions}`);
if (BACKENDS.some((b) => b !== 'userspace' && b !== 'ebpf'))
  throw new Error(`--backends: ${values.backends}`);

interface Result {
  readyS: number;
  adoptS: number;
  stopS: number;
  chargedMB: number;
  rssMB: number;
}

const linkCount = async (ns: string) => (await linkStats(ns)).length;

/** One static-mode run of n sessions with backend b in ns, in a memory cgroup of its own. */
async function once(ns: string, b: string, n: number, file: string, bpffs: string): Promise<Result> {
  const before = await linkCount(ns);
  const extra = b === 'ebpf' ? ['--bpffs', bpffs] : [];
  const start = (run: string) =>
    startNodeProcess(
      staticArgv(ns, file, '--backend', b, ...extra),
      MEMORY_LIMIT,
      `kube-l2tp-bench-sessions-${process.pid}-${b}-${n}-${run}`,
    );
  const ready = (p: NodeProcess, what: string) =>
    waitReady(p, 900_000).then(
      (t) => (t - p.spawnedAt) / 1000,
      (e: unknown) => {
        throw new Error(`${b} with ${n} sessions, ${what}: ${(e as Error).message}`);
      },
    );
  const first = start('up');
  let second: NodeProcess | undefined;
  try {
    const readyS = await ready(first, 'first process');
    // procStatusMB counts MiB; the cgroup's figure is MB
    const rssMB = (procStatusMB(first.pid(), 'VmHWM') * 1024) / 1000;
    first.proc.kill('SIGKILL');
    await first.exited;
    const chargedMB = first.podPeakMB();
    const kept = (await linkCount(ns)) - before;
    if (kept < n) throw new Error(`${b}: ${kept} devices left after SIGKILL, where ${n} sessions were up`);
    second = start('adopt');
    const adoptS = await ready(second, 'the process after SIGKILL');
    const made = second.lines.filter((l) => l.msg === 'session up').length;
    if (made)
      throw new Error(`${b}: the process after SIGKILL made ${made} sessions anew instead of adopting them`);
    const stopS = await stopNodeProcess(second, 120_000);
    if (second.proc.exitCode !== 0)
      throw new Error(`${b} stop exited ${second.proc.exitCode}:\n${second.tail()}`);
    const left = (await linkCount(ns)) - before;
    if (left !== 0) throw new Error(`${b} left ${left} devices behind`);
    return { readyS, adoptS, stopS, chargedMB, rssMB };
  } finally {
    await stopNodeProcess(first);
    if (second) await stopNodeProcess(second);
  }
}

requireRoot();
const lab = new Lab();
const dir = await mkdtemp(join(tmpdir(), 'kube-l2tp-sessions-'));
try {
  const h = await twoHosts(lab, values.prefix, 1, false, NET);
  const bpffs = await privateBpffs(lab);
  const queues = Math.min(cpus().length, SESSION_QUEUES);
  console.log(
    `sessions bench: static mode on one node, ${PER_TUNNEL} sessions per tunnel, UDP, 8-byte cookies; ` +
      `memory limit ${MEMORY_LIMIT} (the chart's datapath pod limit unless --memory-limit); ` +
      `${cpus().length} CPUs: the ebpf session's veth pair has ${queues} queue(s) per end`,
  );
  const results = new Map<string, Result>();
  for (const n of POINTS) {
    const file = join(dir, `sessions-${n}.json`);
    await writeFile(
      file,
      JSON.stringify(
        staticConfigOf(
          manySessionsSpec({
            nodeName: 'bench',
            n,
            perTunnel: PER_TUNNEL,
            local: h.u1,
            remote: h.u2,
            namePrefix: '',
          }),
        ),
      ),
    );
    for (const b of BACKENDS) {
      process.stderr.write(`${b}: ${n} sessions...\n`);
      results.set(`${b}/${n}`, await once(h.h1, b, n, file, bpffs));
    }
  }
  const pad = (s: string, w: number) => s.padEnd(w);
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log(
    `\n${pad('backend', 10)} ${pad('N', 6)} ${pad('ready s', 8)} ${pad('adopt s', 8)} ${pad('stop s', 7)} ` +
      `${pad('charged MB', 11)} ${pad('peak RSS MB', 12)} ${pad('kernel KB/session', 18)} ` +
      `vs userspace (ready, adopt, charged)`,
  );
  for (const n of POINTS) {
    for (const b of BACKENDS) {
      const r = results.get(`${b}/${n}`)!;
      const base = results.get(`userspace/${n}`);
      const vs =
        b !== 'userspace' && base
          ? `${f(r.readyS / base.readyS)}x, ${f(r.adoptS / base.adoptS)}x, ${f(r.chargedMB / base.chargedMB)}x`
          : '';
      console.log(
        `${pad(b, 10)} ${pad(String(n), 6)} ${pad(f(r.readyS), 8)} ${pad(f(r.adoptS), 8)} ${pad(f(r.stopS), 7)} ` +
          `${pad(f(r.chargedMB, 0), 11)} ${pad(f(r.rssMB, 0), 12)} ` +
          `${pad(f(((r.chargedMB - r.rssMB) * 1000) / n, 0), 18)} ${vs}`,
      );
    }
  }
} finally {
  await lab.cleanup();
  await rm(dir, { recursive: true, force: true });
}
