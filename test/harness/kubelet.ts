// Plays the kubelet for the local lab: runs the Pods bound to lab nodes (the datapath pods the
// operator creates) as processes inside each node's network namespace, with the Pod's own command,
// args and env, its hostPath volumes bind-mounted from a per-node directory (each lab node has its
// own /opt/cni/bin, /etc/cni/net.d, /run/kube-l2tp), and reports the Pod's phase back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import type { ControlPlane } from './controlplane.js';

export interface LabNode {
  name: string;
  netns: string;
  /** Root of this node's private host directories. */
  root: string;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodObj {
  metadata: { name: string; namespace: string; uid: string; deletionTimestamp?: string };
  spec: {
    nodeName?: string;
    containers: Container[];
    volumes?: { name: string; hostPath?: { path: string } }[];
  };
  status?: { phase?: string };
}

export interface KubeletOptions {
  cp: ControlPlane;
  nodes: LabNode[];
  /** Program + args that stand for the image's binaries (e.g. node dist/datapath/main.js). */
  entrypoints: Record<string, string[]>;
  /** Kubeconfig the pods use instead of an in-cluster service account token. */
  podKubeconfig: string;
  namespace: string;
  logger: Logger;
  onOutput?: (pod: string, line: string) => void;
  /** Environment added to every pod (lab-wide knobs, like a kubelet's own config). */
  extraEnv?: Record<string, string>;
}

/** $(VAR) expansion as the kubelet does it for command and args. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
}

export class LabKubelet {
  private readonly running = new Map<string, ChildProcess>();
  private readonly names = new Map<string, string>();
  /** restartPolicy Always: a container that exits is started again (after a short back-off). */
  private readonly restarts = new Map<string, { count: number; exitedAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: KubeletOptions) {}

  private syncing: Promise<void> | undefined;

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      this.syncing = this.sync().catch((e: unknown) => {
        this.o.logger.warn({ err: String(e) }, 'kubelet sync failed');
      });
      await this.syncing;
      this.syncing = undefined;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), 500);
    };
    void loop();
  }

  /** Level-triggered: run what is bound and not running, stop what is gone. */
  async sync(): Promise<void> {
    const list = JSON.parse(
      await this.o.cp.kubectl(['get', 'pods', '-n', this.o.namespace, '-o', 'json']),
    ) as {
      items: PodObj[];
    };
    const seen = new Set<string>();
    for (const pod of list.items) {
      const node = this.o.nodes.find((n) => n.name === pod.spec.nodeName);
      if (!node) continue;
      const key = pod.metadata.uid;
      seen.add(key);
      if (pod.metadata.deletionTimestamp) {
        await this.kill(key);
        await this.o.cp
          .kubectl([
            'delete',
            'pod',
            '-n',
            this.o.namespace,
            pod.metadata.name,
            '--grace-period=0',
            '--force',
            '--wait=false',
          ])
          .catch(() => undefined);
        continue;
      }
      const r = this.restarts.get(key);
      if (!this.running.has(key) && (!r || Date.now() - r.exitedAt > 1000)) this.run(pod, node);
    }
    for (const key of [...this.running.keys()]) if (!seen.has(key)) await this.kill(key);
  }

  private run(pod: PodObj, node: LabNode): void {
    const c = pod.spec.containers[0];
    if (!c || this.stopped) return;
    const env: Record<string, string> = { KUBECONFIG: this.o.podKubeconfig, ...this.o.extraEnv };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = node.name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = pod.metadata.name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace')
        env[e.name] = pod.metadata.namespace;
    }
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => expand(a, env));
    const [bin, ...rest] = argv;
    const entry = bin === undefined ? undefined : this.o.entrypoints[bin.split('/').pop() ?? bin];
    if (!entry) {
      this.o.logger.error({ pod: pod.metadata.name, command: argv }, 'no lab entrypoint for this command');
      return;
    }
    // hostPath volumes: bind-mount this node's private directory over the mount path, in a
    // private mount namespace (slave propagation keeps new netns mounts visible)
    const binds: string[] = [];
    for (const m of c.volumeMounts ?? []) {
      const v = pod.spec.volumes?.find((x) => x.name === m.name);
      if (
        !v?.hostPath ||
        v.hostPath.path === '/dev/net/tun' ||
        v.hostPath.path.startsWith('/var/run/netns') ||
        v.hostPath.path.startsWith('/run/netns')
      )
        continue;
      const src = join(node.root, v.hostPath.path);
      mkdirSync(src, { recursive: true });
      binds.push(`mkdir -p '${m.mountPath}' && mount --bind '${src}' '${m.mountPath}'`);
    }
    const script = [...binds, 'exec "$@"'].join(' && ');
    const proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        node.netns,
        'unshare',
        '--mount',
        '--propagation',
        'slave',
        'sh',
        '-c',
        script,
        'pod',
        ...entry,
        ...rest,
      ],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const forward = (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line) this.o.onOutput?.(pod.metadata.name, line);
    };
    proc.stdout?.on('data', forward);
    proc.stderr?.on('data', forward);
    this.running.set(pod.metadata.uid, proc);
    this.names.set(pod.metadata.uid, pod.metadata.name);
    this.o.logger.info({ pod: pod.metadata.name, node: node.name }, 'started pod');
    void this.setPhase(pod, 'Running', true);
    proc.on('exit', () => {
      if (this.running.get(pod.metadata.uid) === proc) {
        this.running.delete(pod.metadata.uid);
        const r = this.restarts.get(pod.metadata.uid) ?? { count: -1, exitedAt: 0 };
        this.restarts.set(pod.metadata.uid, { count: r.count + 1, exitedAt: Date.now() });
        this.o.logger.warn({ pod: pod.metadata.name }, 'container exited; restarting it');
        if (!this.stopped) void this.setPhase(pod, 'Running', false);
      }
    });
  }

  /** PID of the running container of a pod (ip netns exec, unshare and sh all exec into it). */
  pidOf(podName: string): number | undefined {
    for (const [uid, p] of this.running) if (this.names.get(uid) === podName) return p.pid;
    return undefined;
  }

  restartCount(podUid: string): number {
    return Math.max(0, (this.restarts.get(podUid)?.count ?? -1) + 1);
  }

  private async setPhase(pod: PodObj, phase: string, containerReady: boolean): Promise<void> {
    const ready = containerReady ? 'True' : 'False';
    const now = new Date().toISOString();
    const c = pod.spec.containers[0];
    const status = {
      phase,
      hostIP: '127.0.0.1',
      conditions: [
        { type: 'Ready', status: ready, lastTransitionTime: now },
        { type: 'ContainersReady', status: ready, lastTransitionTime: now },
      ],
      containerStatuses: c
        ? [
            {
              name: c.name,
              image: c.image,
              imageID: '',
              ready: ready === 'True',
              restartCount: this.restartCount(pod.metadata.uid),
              started: ready === 'True',
              state:
                ready === 'True'
                  ? { running: { startedAt: now } }
                  : { waiting: { reason: 'ContainerRestarting' } },
            },
          ]
        : [],
    };
    await this.o.cp
      .kubectl([
        'patch',
        'pod',
        '-n',
        this.o.namespace,
        pod.metadata.name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ])
      .catch((e: unknown) => this.o.logger.warn({ err: String(e) }, 'pod status update failed'));
  }

  private async kill(uid: string): Promise<void> {
    const p = this.running.get(uid);
    if (!p) return;
    this.running.delete(uid);
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.syncing; // a sync in flight may still start a pod: let it, then stop everything
    for (const uid of [...this.running.keys()]) await this.kill(uid);
  }
}
