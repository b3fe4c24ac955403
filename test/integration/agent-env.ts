// The node agent as the integration tests run it: a real kube-apiserver with the CRDs and the chart's
// RBAC, the agent as a process under its own identity inside a network namespace that plays the node
// (the apiserver relayed onto its loopback), its node state written as the operator writes it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_SA, DEFAULT_NAMESPACE, rbacObjects, serviceAccountUser } from '../../lib/api/rbac.js';
import { shardName } from '../../lib/api/node-shards.js';
import type { L2TPNodeState, NodeStateSpec } from '../../lib/api/schemas.js';
import { desiredNodeState } from '../../operator/render.js';
import { runCapture } from '../../lib/exec.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { bridgeLoopbackPort } from '../harness/loopback-bridge.js';
import type { Lab } from '../harness/netns.js';
import { MemoryLimit } from '../harness/memory-limit.js';
import { stopProcess } from '../harness/process.js';
import { staticArgv } from './datapath-lab.js';

const repo = process.cwd();

export class AgentEnv {
  private readonly procs: ChildProcess[] = [];

  private constructor(
    readonly cp: ControlPlane,
    readonly dir: string,
    readonly node: string,
    private readonly agentKubeconfig: string,
  ) {}

  /**
   * The apiserver, the node's netns (made in lab) with the apiserver on its loopback, and with peer
   * a second netns on the far side of a veth underlay (links `${prefix}0` and `${prefix}1`,
   * addresses `${subnet}.1/24` on the node and `${subnet}.2/24` on the peer).
   */
  static async start(
    lab: Lab,
    node: string,
    dirPrefix: string,
    peer?: { ns: string; prefix: string; subnet: string },
  ): Promise<AgentEnv> {
    const dir = mkdtempSync(join(tmpdir(), dirPrefix));
    const cp = await startControlPlane();
    try {
      await cp.kubectl(['apply', '-f', join(repo, 'crds')]);
      await cp.kubectl(['create', 'namespace', DEFAULT_NAMESPACE]);
      await cp.kubectl(['apply', '-f', '-'], {
        input: rbacObjects()
          .map((o) => JSON.stringify(o))
          .join('\n'),
      });
      const kc = await cp.kubeconfigFor({ user: serviceAccountUser(DEFAULT_NAMESPACE, AGENT_SA) });
      await lab.netns(node);
      await bridgeLoopbackPort(lab, node, Number(new URL(cp.url).port), dir);
      if (peer) {
        await lab.netns(peer.ns);
        await lab.veth(
          { ns: node, name: `${peer.prefix}0`, addr: `${peer.subnet}.1/24` },
          { ns: peer.ns, name: `${peer.prefix}1`, addr: `${peer.subnet}.2/24` },
        );
      }
      return new AgentEnv(cp, dir, node, kc);
    } catch (e) {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * `kube-l2tp-datapath agent` in the node's netns with fast resyncs; extra args choose the backend
   * (they come last: one given here wins over the default of the same name, e.g. --cni-socket).
   * With memory, in that cgroup, which it sees mounted as a container sees its own.
   */
  startAgent(
    extraArgs: string[],
    env: NodeJS.ProcessEnv = {},
    memory?: MemoryLimit,
  ): { proc: ChildProcess; log: () => string; exited: Promise<void> } {
    let out = '';
    const d = this.dir;
    const agent = [
      ...[process.execPath, join(repo, 'dist/datapath/main.js'), 'agent'],
      ...['--node-name', this.node, '--kubeconfig', this.agentKubeconfig],
      ...['--cni-socket', join(d, 'cni.sock'), '--cni-bin-dir', join(d, 'bin')],
      ...['--cni-conf-dir', join(d, 'conf'), '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      ...['--cni-state-dir', join(d, 'state'), '--resync-seconds', '1', '--status-counter-seconds', '2'],
      ...extraArgs,
    ];
    const [cmd, args] = MemoryLimit.inNetns(memory, this.node, agent);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    this.procs.push(proc);
    return { proc, log: () => out, exited };
  }

  stopAgent(p: ChildProcess): Promise<void> {
    return stopProcess(p);
  }

  /** One of the node's node states (shard 0 by default), as the operator writes it, under its field manager. */
  async applyNodeState(spec: NodeStateSpec, shard = 0): Promise<void> {
    await this.cp.kubectl(['apply', '--server-side', '--field-manager=test-operator', '-f', '-'], {
      input: JSON.stringify(desiredNodeState(this.node, spec, shard)),
    });
  }

  async nodeState(shard = 0): Promise<L2TPNodeState> {
    return JSON.parse(
      await this.cp.kubectl(['get', 'l2tpnodestates', shardName(this.node, shard), '-o', 'json']),
    ) as L2TPNodeState;
  }

  /** `kube-l2tp-datapath static --config FILE ...extra` in another netns, stopped with this env. */
  startPeer(ns: string, config: string, ...extra: string[]): ChildProcess {
    const proc = spawn('ip', staticArgv(ns, config, ...extra), { stdio: 'ignore' });
    this.procs.push(proc);
    return proc;
  }

  /**
   * Stops every agent and peer this env started, then the apiserver, then lab's namespaces (the
   * agent leaves devices on SIGTERM by design: the namespaces take them along).
   */
  async stop(lab?: Lab): Promise<void> {
    for (const p of this.procs) await this.stopAgent(p);
    await this.cp.stop();
    rmSync(this.dir, { recursive: true, force: true });
    await lab?.cleanup();
  }
}

/** For after(): stops env if it started, and removes lab's namespaces either way. */
export async function stopAgentEnv(env: AgentEnv | undefined, lab: Lab): Promise<void> {
  if (env) await env.stop(lab);
  else await lab.cleanup();
}

/** A link's ifindex inside a netns, or undefined when it is not there. */
export async function ifindexIn(ns: string, dev: string): Promise<number | undefined> {
  const r = await runCapture('ip', ['-n', ns, '-o', 'link', 'show', dev]);
  return r.code === 0 ? Number(r.stdout.split(':')[0]) : undefined;
}
