// Shared topology for the datapath integration tests and benches: two "hosts" joined by a veth
// underlay, a "pod" namespace on each side attached to a bridge with the session device.
//
//   pod1 (eth0 10.201.X.1) -- br -- l2tpethN [host1 10.201.U.1] ==veth== [host2 10.201.U.2] l2tpethN -- br -- pod2
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runOk } from '../../lib/exec.js';
import { MemoryLimit } from '../harness/memory-limit.js';
import { inNs, inNsCapture, ipIn, type Lab } from '../harness/netns.js';
import { within } from '../harness/wait.js';

export const MAIN = fileURLToPath(new URL('../../datapath/main.js', import.meta.url));

export interface Hosts {
  h1: string;
  h2: string;
  u1: string; // underlay addresses
  u2: string;
}

/** Two host namespaces and the underlay. p = short unique prefix (e.g. "kdu"), n = subnet number;
 * v6: the tunnel runs over IPv6 (fd00:<net>:n::1/2); net: the second octet of the IPv4 underlay
 * (10.<net>.n.1/2), for suites that keep to a subnet of their own. */
export async function twoHosts(lab: Lab, p: string, n: number, v6 = false, net = 201): Promise<Hosts> {
  const h1 = await lab.netns(`${p}h1`);
  const h2 = await lab.netns(`${p}h2`);
  // TAPs are persistent: delete them explicitly before their namespace goes.
  for (const ns of [h1, h2]) lab.onCleanup(() => deleteTuns(ns));
  await lab.veth(
    { ns: h1, name: `${p}u1`, addr: `10.${net}.${n}.1/24` },
    { ns: h2, name: `${p}u2`, addr: `10.${net}.${n}.2/24` },
  );
  if (!v6) return { h1, h2, u1: `10.${net}.${n}.1`, u2: `10.${net}.${n}.2` };
  const u1 = `fd00:${net}:${n}::1`;
  const u2 = `fd00:${net}:${n}::2`;
  await ipIn(h1, 'addr', 'add', `${u1}/64`, 'dev', `${p}u1`, 'nodad');
  await ipIn(h2, 'addr', 'add', `${u2}/64`, 'dev', `${p}u2`, 'nodad');
  return { h1, h2, u1, u2 };
}

/**
 * As from a NIC: the underlay segments UDP tunnel super-packets before the other host sees them;
 * with `gro`, the underlay ends also merge what they receive (GRO on, as the datapath bench sets).
 */
export async function singleDatagrams(h: Hosts, p: string, o: { gro?: boolean } = {}): Promise<void> {
  for (const [ns, dev] of [
    [h.h1, `${p}u1`],
    [h.h2, `${p}u2`],
  ] as const) {
    if (o.gro) await inNs(ns, 'ethtool', '-K', dev, 'gro', 'on');
    await inNs(
      ns,
      'ethtool',
      '-K',
      dev,
      'tx-udp_tnl-segmentation',
      'off',
      'tx-udp_tnl-csum-segmentation',
      'off',
    );
  }
}

export async function deleteTuns(ns: string): Promise<void> {
  const r = await inNsCapture(ns, 'ip', '-j', 'link', 'show', 'type', 'tun');
  if (r.code !== 0) return;
  for (const l of JSON.parse(r.stdout || '[]') as { ifname: string }[])
    await runOk('ip', ['-n', ns, 'link', 'del', l.ifname]);
}

/** A pod namespace with eth0 (addr CIDR, mtu) bridged in `host` to `dev` through bridge `br`. */
export async function podOn(
  lab: Lab,
  host: string,
  pod: string,
  br: string,
  dev: string,
  addr: string,
  mtu: number,
) {
  await lab.netns(pod);
  await inNs(pod, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1');
  if ((await inNsCapture(host, 'ip', 'link', 'show', br)).code !== 0) {
    await ipIn(host, 'link', 'add', br, 'type', 'bridge');
    await ipIn(host, 'link', 'set', br, 'up');
  }
  const hv = `${pod}v`.slice(0, 15);
  await ipIn(host, 'link', 'add', hv, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod);
  await ipIn(host, 'link', 'set', hv, 'master', br, 'mtu', String(mtu), 'up');
  await ipIn(pod, 'link', 'set', 'eth0', 'mtu', String(mtu), 'up');
  await ipIn(pod, 'addr', 'add', addr, 'dev', 'eth0');
  await attach(host, dev, br);
}

export async function attach(host: string, dev: string, br: string): Promise<void> {
  await ipIn(host, 'link', 'set', dev, 'master', br, 'up');
}

export interface DatapathProc {
  child: ChildProcess;
  /** Parsed JSON log lines so far (waits allow 45 s: the test machines are shared and loaded). */
  lines: Record<string, unknown>[];
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM and wait; resolves the exit code. */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
  /** Ask for a counters dump (SIGUSR2) and return it. */
  counters(): Promise<CountersDump>;
  exited: Promise<number | null>;
}

export interface CountersDump {
  tunnels: {
    tunnelId: number;
    rxPackets: number;
    drops: Record<string, number>;
    sessions: { sessionId: number; rxPackets: number; txPackets: number; drops: Record<string, number> }[];
  }[];
}

/** `kube-l2tp-datapath static --config file ...extra`. */
const staticCommand = (file: string, ...extra: string[]): string[] => [
  ...[process.execPath, MAIN],
  ...['static', '--config', file, ...extra],
];

/** `ip` arguments that run `kube-l2tp-datapath static --config file ...extra` in ns. */
export const staticArgv = (ns: string, file: string, ...extra: string[]): string[] => [
  ...['netns', 'exec', ns],
  ...staticCommand(file, ...extra),
];

/**
 * Start `kube-l2tp-datapath static` in ns with config (an object, written as YAML); with `memory`, in
 * that memory cgroup, as a datapath pod runs.
 */
export async function startDatapath(
  lab: Lab,
  ns: string,
  config: unknown,
  waitReady = true,
  extraArgs: string[] = [],
  memory?: MemoryLimit,
): Promise<DatapathProc> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-dp-'));
  lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  await writeFile(file, stringify(config));
  const [cmd, args] = MemoryLimit.inNetns(
    memory,
    ns,
    staticCommand(file, '--backend', 'userspace', ...extraArgs),
  );
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  lab.onCleanup(async () => {
    if (!done && child.pid) process.kill(child.pid, 'SIGKILL');
    await exited;
  });
  const waitFor = (msg: string, timeoutMs = 45000, from = 0) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `datapath in ${ns}: no "${msg}" within ${timeoutMs} ms\n${stderr}\n${JSON.stringify(lines.slice(-5))}`,
            ),
          ),
        timeoutMs,
      );
      const check = () => {
        const hit = lines.slice(from).find((l) => l.msg === msg);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
        } else if (done) {
          clearTimeout(timer);
          reject(
            new Error(
              `datapath in ${ns} exited before "${msg}": ${stderr}\n${JSON.stringify(lines.slice(-5))}`,
            ),
          );
        } else waiters.push(check);
      };
      check();
    });
  const proc: DatapathProc = {
    child,
    lines,
    exited,
    waitFor: (msg, t) => waitFor(msg, t),
    async stop() {
      if (!done) child.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (!done) child.kill('SIGKILL');
      await exited;
    },
    async counters() {
      const from = lines.length;
      child.kill('SIGUSR2');
      return (await waitFor('counters', 5000, from)) as unknown as CountersDump;
    },
  };
  if (waitReady) await proc.waitFor('ready');
  return proc;
}

/** Mirror-image static configs for the two hosts of one tunnel. */
export interface PairOptions {
  encap: 'udp' | 'ip';
  cookieLength?: 0 | 4 | 8;
  l2specType?: 'none' | 'default';
  sequence?: boolean;
  sessions?: number;
  udpChecksum?: boolean;
}

export function pairConfigs(h: Hosts, o: PairOptions): [unknown, unknown] {
  const ck = (seed: number) =>
    o.cookieLength ? Buffer.alloc(o.cookieLength, seed).toString('hex') : undefined;
  const side = (local: string, remote: string, mine: number, theirs: number, tid: number, ptid: number) => ({
    tunnelId: tid,
    peerTunnelId: ptid,
    encap: o.encap,
    local,
    remote,
    ...(o.encap === 'udp' ? { udpSourcePort: 5000 + mine, udpDestinationPort: 5000 + theirs } : {}),
    ...(o.udpChecksum ? { udpChecksum: true } : {}),
    sessions: Array.from({ length: o.sessions ?? 1 }, (_, i) => {
      const c = ck(mine * 16 + i + 1);
      const pc = ck(theirs * 16 + i + 1);
      return {
        sessionId: mine * 1000 + i + 1,
        peerSessionId: theirs * 1000 + i + 1,
        name: `l2tpeth${i}`,
        ...(c ? { cookie: c } : {}),
        ...(pc ? { peerCookie: pc } : {}),
        l2specType: o.l2specType ?? 'default',
        sendSequence: !!o.sequence,
        requireSequence: !!o.sequence,
      };
    }),
  });
  return [{ tunnels: [side(h.u1, h.u2, 1, 2, 42, 45)] }, { tunnels: [side(h.u2, h.u1, 2, 1, 45, 42)] }];
}

/** Short TCP transfer with iperf3 from pod a to pod b; returns bytes received. */
export async function tcpBytes(a: string, b: string, bAddr: string, seconds = 1): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await inNsCapture(
      a,
      'iperf3',
      '-c',
      bAddr,
      '-p',
      '5201',
      '-t',
      String(seconds),
      '-J',
      '--connect-timeout',
      '3000',
    );
    const j = JSON.parse(r.stdout || '{}') as { end?: { sum_received?: { bytes?: number } } };
    return j.end?.sum_received?.bytes ?? 0;
  } finally {
    server.kill('SIGKILL');
  }
}

/**
 * `count` pings at 100 per second from pod to target, started now (extra: more ping options);
 * resolves ping's output and the number of replies when it ends.
 */
export function backgroundPing(
  lab: Lab,
  pod: string,
  target: string,
  count: number,
  extra: string[] = [],
): Promise<{ out: string; received: number }> {
  const pinger = spawn(
    'ip',
    ['netns', 'exec', pod, 'ping', '-i', '0.01', '-c', String(count), ...extra, target],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  let out = '';
  pinger.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  lab.onCleanup(async () => pinger.kill('SIGKILL'));
  return new Promise((resolve) =>
    pinger.on('exit', () => resolve({ out, received: Number(/(\d+) received/.exec(out)?.[1] ?? 0) })),
  );
}

/** Captures what passes dev in ns (a tcpdump filter) while fn runs; returns the pcap file. */
export async function captureWhile(
  lab: Lab,
  ns: string,
  dev: string,
  filter: string,
  fn: () => Promise<unknown>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-cap-'));
  lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'cap.pcap');
  const dump = spawn(
    'ip',
    ['netns', 'exec', ns, 'tcpdump', '-U', '--immediate-mode', '-n', '-i', dev, '-w', file, filter],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise((r) => dump.on('exit', r));
  lab.onCleanup(async () => dump.kill('SIGKILL'));
  // tcpdump says "listening on" once its socket is bound
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    dump.stderr!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await fn();
  await new Promise((r) => setTimeout(r, 300));
  dump.kill('SIGINT');
  await exited;
  return file;
}

/** Minimal pcap reader (linktype Ethernet): returns each frame's bytes. */
export async function readPcap(file: string): Promise<Buffer[]> {
  const b = await readFile(file);
  const frames: Buffer[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const incl = b.readUInt32LE(off + 8);
    frames.push(b.subarray(off + 16, off + 16 + incl));
    off += 16 + incl;
  }
  return frames;
}

/** Send `size` random bytes over TCP from pod a to pod b (socat); true when they arrive intact. */
export async function tcpIntact(
  lab: Lab,
  a: string,
  b: string,
  bAddr: string,
  size = 16 << 20,
): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-tcp-'));
  lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await writeFile(src, randomBytes(size));
  const rx = spawn(
    'ip',
    ['netns', 'exec', b, 'socat', '-u', 'TCP-LISTEN:7000,reuseaddr', `OPEN:${dst},creat,trunc`],
    {
      stdio: 'ignore',
    },
  );
  const rxDone = new Promise((r) => rx.on('exit', r));
  lab.onCleanup(async () => rx.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 300));
  await inNsCapture(a, 'socat', '-u', `OPEN:${src}`, `TCP:${bAddr}:7000,retry=5`);
  await within(rxDone, 10_000);
  const digest = async (f: string) =>
    createHash('sha256')
      .update(await readFile(f).catch(() => Buffer.alloc(0)))
      .digest('hex');
  return (await digest(src)) === (await digest(dst));
}
