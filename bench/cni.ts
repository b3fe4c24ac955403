// CNI ADD/DEL latency: kube-l2tp's shim (+ agent) and its in-process TypeScript entry against the
// reference Go `bridge` plugin, all with the same host-local IPAM, interleaved in one run.
// Whole-process wall time per exec, as a runtime sees it. Needs root.
//   node dist/bench/cni.js [--n 60] [--agent-ballast-mb 0]
// --agent-ballast-mb: the agent under test holds that much touched memory (the real agent's RSS at
// 1,000 sessions is ~190 MB), which is what makes a fork() of the agent expensive.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AGENT_SOCKET_DIR } from '../lib/agent-protocol.js';
import { runCapture, runOk } from '../lib/exec.js';
import { withCniDataAt } from '../test/harness/cnitool.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NODE_NS = 'kcbench';
const POD_NS = 'kcbpod';
const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '60' },
    'agent-ballast-mb': { type: 'string', default: '0' },
    inner: { type: 'boolean' },
  },
});
const N = Number(values.n);
const BALLAST_MB = Number(values['agent-ballast-mb']);
if (!Number.isInteger(BALLAST_MB) || BALLAST_MB < 0)
  throw new Error('--agent-ballast-mb: a whole number of MB');

async function outer(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/cni needs root (network namespaces)');
  const mk = await runCapture('make', ['-s', '-C', join(REPO, 'cmd/cni/shim')]);
  if (mk.code !== 0) throw new Error(mk.stderr);
  for (const ns of [NODE_NS, POD_NS]) {
    await runOk('ip', ['netns', 'del', ns]);
    await runCapture('ip', ['netns', 'add', ns]);
  }
  const cniData = await mkdtemp(join(tmpdir(), 'kc-cnibench-data-'));
  try {
    await runCapture('ip', ['-n', NODE_NS, 'link', 'set', 'lo', 'up']);
    await runCapture('ip', ['-n', NODE_NS, 'tuntap', 'add', 'dev', 'kcbtap0', 'mode', 'tap']);
    await runCapture('ip', ['-n', NODE_NS, 'link', 'set', 'kcbtap0', 'mtu', '1400', 'up']);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        NODE_NS,
        // the run's own, empty /var/lib/cni for host-local's leases
        ...withCniDataAt(cniData),
        process.execPath,
        fileURLToPath(import.meta.url),
        '--inner',
        '--n',
        String(N),
        '--agent-ballast-mb',
        String(BALLAST_MB),
      ],
      {
        stdio: 'inherit',
      },
    );
    const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
    process.exitCode = code;
  } finally {
    for (const ns of [POD_NS, NODE_NS]) await runOk('ip', ['netns', 'del', ns]);
    await rm(cniData, { recursive: true, force: true });
  }
}

interface Impl {
  name: string;
  file: string;
  args: string[];
  conf: string;
  env: Record<string, string>;
  add: number[];
  del: number[];
}

async function timed(i: Impl, cmd: 'ADD' | 'DEL', id: string): Promise<number> {
  const t0 = performance.now();
  const r = await runCapture(i.file, i.args, {
    env: {
      ...i.env,
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: id,
      CNI_NETNS: `/run/netns/${POD_NS}`,
      CNI_IFNAME: 'net1',
      // as kubelet and Multus pass it: the pod's namespace, the wire's own
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kc;K8S_POD_NAME=bench',
    },
    input: i.conf,
  });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${i.name} ${cmd} failed: ${r.stdout} ${r.stderr}`);
  return ms;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/** Resident set of a process, MB, from /proc (after the runs: what the forks had to copy). */
async function rssMb(pid: number | undefined): Promise<string> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? '?' : String(Math.round(Number(kb) / 1024));
}

async function inner(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kc-cnibench-'));
  const bin = join(dir, 'bin');
  await runCapture('mkdir', ['-p', bin]);
  await runCapture('cp', [join(REPO, 'cmd/cni/shim/build/kube-l2tp'), bin]);
  for (const p of ['bridge', 'host-local']) await runCapture('ln', ['-s', `/usr/lib/cni/${p}`, join(bin, p)]);
  const pwFile = join(dir, 'pw.json');
  await writeFile(
    pwFile,
    JSON.stringify({
      ready: true,
      pseudowires: { 'kc/bench-wire': { ifname: 'kcbtap0', mtu: 1400, tunnelId: 1, sessionId: 1, up: true } },
    }),
  );
  // the shim connects only under the agent's directory
  const sockDir = join(AGENT_SOCKET_DIR, basename(dir));
  const sock = join(sockDir, 'cni.sock');
  const agent = spawn(
    process.execPath,
    [
      join(REPO, 'dist/test/tools/dev-agent.js'),
      '--socket',
      sock,
      '--pseudowires',
      pwFile,
      '--state-dir',
      join(dir, 'state'),
      '--ballast-mb',
      String(BALLAST_MB),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, LOG_LEVEL: process.env.AGENT_LOG_LEVEL ?? 'warn' },
    },
  );
  await new Promise<void>((r) => agent.stdout.once('data', () => r()));
  let agentRssMb = '?';
  const ipam = (subnet: string) => ({ type: 'host-local', ranges: [[{ subnet }]] });
  const l2tp = (net: string, subnet: string) =>
    JSON.stringify({
      cniVersion: '1.0.0',
      name: net,
      type: 'kube-l2tp',
      pseudowire: { namespace: 'kc', name: 'bench-wire' },
      mode: 'bridge',
      agentSocket: sock,
      ipam: ipam(subnet),
    });
  const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: bin };
  // the in-process entry loads the netlink addon: pass an explicit location on
  const addon = process.env.KUBE_L2TP_NETLINK_ADDON;
  if (addon) env.KUBE_L2TP_NETLINK_ADDON = addon;
  const impls: Impl[] = [
    {
      name: 'reference Go bridge',
      file: join(bin, 'bridge'),
      args: [],
      conf: JSON.stringify({
        cniVersion: '1.0.0',
        name: 'kcbref',
        type: 'bridge',
        bridge: 'kcbbr0',
        mtu: 1400,
        ipam: ipam('10.202.20.0/24'),
      }),
      env,
      add: [],
      del: [],
    },
    {
      name: 'kube-l2tp shim + agent',
      file: join(bin, 'kube-l2tp'),
      args: [],
      conf: l2tp('kcbshim', '10.202.21.0/24'),
      env,
      add: [],
      del: [],
    },
    {
      name: 'kube-l2tp in-process (node main.js)',
      file: process.execPath,
      args: [join(REPO, 'dist/test/tools/cni-in-process.js')],
      conf: l2tp('kcbmain', '10.202.22.0/24'),
      env: { ...env, KUBE_L2TP_PSEUDOWIRES: pwFile, KUBE_L2TP_STATE_DIR: join(dir, 'state-main') },
      add: [],
      del: [],
    },
  ];
  try {
    for (let i = -5; i < N; i++) {
      for (const impl of impls) {
        const id = `kcb-${impl.name.length}-${i + 5}`;
        const a = await timed(impl, 'ADD', id);
        const d = await timed(impl, 'DEL', id);
        if (i >= 0) {
          impl.add.push(a);
          impl.del.push(d);
        }
      }
    }
    agentRssMb = await rssMb(agent.pid);
  } finally {
    agent.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
    await rm(sockDir, { recursive: true, force: true });
  }
  const ref = impls[0]!;
  const f = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `CNI ADD/DEL wall time per exec, ms, n=${N} each, interleaved, host-local IPAM, same run, ` +
      `agent ballast ${BALLAST_MB} MB (agent RSS ${agentRssMb} MB)`,
  );
  console.log(
    `${'plugin'.padEnd(36)} ADD p50  ADD p99  DEL p50  DEL p99  | ratio vs reference (p50 ADD, DEL, ADD+DEL)`,
  );
  for (const i of impls) {
    const r = (a: number, b: number) => (a / b).toFixed(2);
    const sum = pct(i.add, 50) + pct(i.del, 50);
    const refSum = pct(ref.add, 50) + pct(ref.del, 50);
    console.log(
      `${i.name.padEnd(36)}${f(pct(i.add, 50))}  ${f(pct(i.add, 99))}  ${f(pct(i.del, 50))}  ${f(pct(i.del, 99))}  | ` +
        `${r(pct(i.add, 50), pct(ref.add, 50))}x ${r(pct(i.del, 50), pct(ref.del, 50))}x ${r(sum, refSum)}x`,
    );
  }
}

if (values.inner) await inner();
else await outer();
