// CNI test rig: the real libcni client (cnitool), the kube-l2tp shim executable, Debian's IPAM
// plugins, and CNI agents (test/tools/dev-agent) running inside "node" network namespaces.
// cnitool and the shim always run with a PATH that holds no node binary.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_SOCKET_DIR } from '../../lib/agent-protocol.js';
import { runCapture, type RunResult } from '../../lib/exec.js';
import { ipIn, type Lab } from './netns.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHIM = join(REPO, 'cmd/cni/shim/build/kube-l2tp');
export const DEV_AGENT = join(REPO, 'dist/test/tools/dev-agent.js');
export const IN_PROCESS_MAIN = join(REPO, 'dist/test/tools/cni-in-process.js');
export const SYSTEM_CNI_DIR = '/usr/lib/cni';

/** iproute2's ip by absolute path: the client runs with a PATH that has nothing on it. */
export const IP_BIN =
  ['/usr/sbin/ip', '/usr/bin/ip', '/sbin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

export function cnitoolPath(): string {
  const bin = process.env.KUBE_L2TP_BIN ?? join(homedir(), '.cache/kube-l2tp/bin');
  const p = join(bin, 'cnitool');
  if (!existsSync(p)) throw new Error(`cnitool not found at ${p} (run scripts/build-go-tools.sh cnitool)`);
  return p;
}

export async function buildShim(): Promise<void> {
  const r = await runCapture('make', ['-s', '-C', join(REPO, 'cmd/cni/shim')]);
  if (r.code !== 0) throw new Error(`building the shim failed: ${r.stderr}`);
}

export interface PseudowireEntry {
  ifname: string;
  mtu: number;
  tunnelId: number;
  sessionId: number;
  up: boolean;
  /** The Pseudowire's attachment mode (default bridge) and whom it is shared with. */
  mode?: 'bridge' | 'exclusive';
  allowedNamespaces?: string[];
}

/** A CNI agent process serving one node (network namespace). */
export class Agent {
  constructor(
    readonly node: string,
    readonly socket: string,
    readonly pwFile: string,
    readonly stateDir: string,
    private proc: ChildProcess | undefined,
    readonly stderr: string[],
  ) {}

  async setPseudowires(ready: boolean, pws: Record<string, PseudowireEntry>): Promise<void> {
    await writeFile(`${this.pwFile}.tmp`, JSON.stringify({ ready, pseudowires: pws }));
    await import('node:fs/promises').then((f) => f.rename(`${this.pwFile}.tmp`, this.pwFile));
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((res) => {
      p.once('exit', () => res());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 3000).unref();
    });
  }
}

export interface CniRunOptions {
  ifname?: string;
  /** CNI_ARGS; default IgnoreUnknown=1;K8S_POD_NAMESPACE=kc, as a runtime passes it */
  args?: string;
  /** run the client inside this netns (the node), like a runtime would */
  node?: string;
}

/** Where the node keeps CNI state; host-local's leases are in <this>/networks/<network>. */
export const NODE_CNI_DATA_DIR = '/var/lib/cni';

/**
 * The argv prefix that runs a command in a private mount namespace (nothing propagates back) where
 * `dir` is the node's /var/lib/cni: host-local keeps its leases there, and a network config may not
 * move them (the agent refuses a dataDir).
 */
export function withCniDataAt(dir: string): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mkdir -p "$1" && mount --bind "$0" "$1" && shift && exec "$@"',
    dir,
    NODE_CNI_DATA_DIR,
  ];
}

/** One test's CNI world: a temp dir with bin/ (shim + IPAM plugins), net.d/, agent state. */
export class CniRig {
  readonly bin: string;
  readonly netd: string;
  /**
   * What the rig's agents see at /var/lib/cni: a network config may not move host-local's dataDir (the
   * agent refuses it, as it refuses node files in spec.ipam), so each agent runs in a mount namespace
   * of its own where this directory is mounted there, as the datapath pod mounts the node's.
   */
  readonly cniData: string;
  private readonly agents: Agent[] = [];
  /** PATH for cnitool and the shim: an empty directory, so no node is reachable. */
  readonly noNodePath: string;

  private constructor(readonly dir: string) {
    this.bin = join(dir, 'bin');
    this.netd = join(dir, 'net.d');
    this.noNodePath = join(dir, 'empty-path');
    this.cniData = join(dir, 'cni-data');
  }

  /** host-local's lease files of a network (its allocated addresses). */
  leases(network: string): string[] {
    const d = join(this.cniData, 'networks', network);
    return existsSync(d) ? readdirSync(d).filter((f) => /^\d+\./.test(f)) : [];
  }

  static async create(): Promise<CniRig> {
    const dir = await mkdtemp(join(tmpdir(), 'kc-cni-'));
    const rig = new CniRig(dir);
    await mkdir(rig.bin);
    await mkdir(rig.netd);
    await mkdir(rig.noNodePath);
    await mkdir(rig.cniData);
    await copyFile(SHIM, join(rig.bin, 'kube-l2tp'));
    for (const p of ['host-local', 'static', 'loopback', 'bridge', 'tuning']) {
      await symlink(join(SYSTEM_CNI_DIR, p), join(rig.bin, p));
    }
    return rig;
  }

  /**
   * A rig for one node: the shim built, the node's netns made (removed with the lab, as the rig is),
   * holding a TAP with the given MTU that stands for a session device.
   */
  static async forNode(lab: Lab, node: string, tap: string, mtu: number): Promise<CniRig> {
    await buildShim();
    const rig = await CniRig.create();
    lab.onCleanup(() => rig.cleanup());
    await lab.netns(node);
    await ipIn(node, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    await ipIn(node, 'link', 'set', tap, 'mtu', String(mtu), 'up');
    return rig;
  }

  /** Start a CNI agent inside `node` (a netns name). */
  async agent(node: string, ready = true, pws: Record<string, PseudowireEntry> = {}): Promise<Agent> {
    const d = join(this.dir, `agent-${node}`);
    await mkdir(d, { recursive: true });
    const a = new Agent(
      node,
      join(this.socketDir(node), 'cni.sock'),
      join(d, 'pseudowires.json'),
      join(d, 'state'),
      undefined,
      [],
    );
    await a.setPseudowires(ready, pws);
    const proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        node,
        ...withCniDataAt(this.cniData),
        process.execPath,
        DEV_AGENT,
        '--socket',
        a.socket,
        '--pseudowires',
        a.pwFile,
        '--state-dir',
        a.stateDir,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
      },
    );
    proc.stderr!.on('data', (d: Buffer) => a.stderr.push(d.toString()));
    await new Promise<void>((res, rej) => {
      const t = setTimeout(
        () => rej(new Error(`agent in ${node} did not start: ${a.stderr.join('')}`)),
        10_000,
      );
      proc.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(t);
          res();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(t);
        rej(new Error(`agent in ${node} exited ${code}: ${a.stderr.join('')}`));
      });
    });
    (a as unknown as { proc: ChildProcess }).proc = proc;
    this.agents.push(a);
    return a;
  }

  /** Write net.d/<name>.conflist with the given plugins. */
  async network(name: string, cniVersion: string, plugins: Record<string, unknown>[]): Promise<void> {
    await writeFile(
      join(this.netd, `${name}.conflist`),
      JSON.stringify({ cniVersion, name, plugins }, null, 1),
    );
  }

  /** cnitool add|check|del|gc|status NET NETNS, with no node on PATH and nothing but what cnitool needs in env. */
  cnitool(cmd: string, net: string, netns: string, o: CniRunOptions = {}): Promise<RunResult> {
    const env: Record<string, string> = {
      PATH: this.noNodePath,
      NETCONFPATH: this.netd,
      CNI_PATH: this.bin,
      CNI_IFNAME: o.ifname ?? 'net1',
    };
    // what every runtime passes: the pod's namespace (the pseudowires of l2tpPlugin live in kc)
    env.CNI_ARGS = o.args ?? `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE}`;
    const tool = cnitoolPath();
    const netnsPath = netns.startsWith('/') ? netns : `/run/netns/${netns}`;
    if (o.node)
      return runCapture(IP_BIN, ['netns', 'exec', o.node, tool, cmd, net, netnsPath], {
        env,
        timeoutMs: 60_000,
      });
    return runCapture(tool, [cmd, net, netnsPath], { env, timeoutMs: 60_000 });
  }

  /** Run the shim directly (for bad-input tables and GC with valid attachments). */
  shim(env: Record<string, string>, stdin: string | object): Promise<RunResult> {
    return runCapture(join(this.bin, 'kube-l2tp'), [], {
      env: { PATH: this.noNodePath, ...env },
      input: typeof stdin === 'string' ? stdin : JSON.stringify(stdin),
      timeoutMs: 60_000,
    });
  }

  /**
   * Where an agent of this rig listens: the shim talks only to sockets under the agent's own
   * directory, so each rig gets a directory of its own there.
   */
  socketDir(node: string): string {
    return join(AGENT_SOCKET_DIR, `${basename(this.dir)}-${node}`);
  }

  async cleanup(): Promise<void> {
    for (const a of this.agents) await a.stop().catch(() => undefined);
    for (const a of this.agents) await rm(dirname(a.socket), { recursive: true, force: true });
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The namespace of the rig's pods and pseudowires, unless a test says otherwise. */
export const POD_NAMESPACE = 'kc';

/** `{...}` conflist entry for kube-l2tp. */
export function l2tpPlugin(agent: Agent, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'kube-l2tp',
    pseudowire: { namespace: POD_NAMESPACE, name: 'red-wire' },
    agentSocket: agent.socket,
    ...extra,
  };
}

/** Parse a CNI error printed on stdout. */
export function cniError(r: RunResult): { code: number; msg: string; details?: string } | undefined {
  try {
    const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
    return typeof e.code === 'number' ? (e as { code: number; msg: string }) : undefined;
  } catch {
    return undefined;
  }
}
