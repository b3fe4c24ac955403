// A real Kubernetes cluster on this machine, without Docker: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in a control-plane network namespace that holds the
// underlay bridge; N nodes (node.ts), each a real kubelet + containerd + runc + kube-proxy in its own
// network and mount namespaces with eth0 on that bridge; a primary pod network (bridge + host-local,
// one /24 per node, routes between nodes); images imported into every node from OCI archives.
// Nothing is added to the root network namespace; this process reaches the apiserver through a relay
// on 127.0.0.1. stop() removes every process, namespace, mount, cgroup and file it made.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapture } from '../../../lib/exec.js';
import type { Logger } from '../../../lib/log.js';
import { startControlPlane, type ControlPlane } from '../controlplane.js';
import { ipIn, Lab } from '../netns.js';
import { until } from '../wait.js';
import { RealNode } from './node.js';

export interface ClusterImage {
  /** Fully qualified name, as pods reference it. */
  name: string;
  /** OCI image archive. */
  archive: string;
}

export interface ClusterOptions {
  /** Prefix of every namespace, link, cgroup and /run directory (several clusters can coexist). */
  prefix: string;
  nodes: number;
  /** The underlay /24 as three octets; the control plane is .(1+hostBase), node i is .(10+hostBase+i). */
  underlay: string;
  /** Offset of this cluster's addresses in the underlay (two clusters on one underlay need different ones). */
  hostBase?: number;
  /**
   * Another cluster whose underlay this one joins (one L2 segment, as two sites on one provider
   * network): a veth pair links the two underlay bridges.
   */
  joinUnderlay?: RealCluster;
  /** Pod addresses: node i gets PODNET.i.0/24 inside PODNET.0.0/16. */
  podNet: string;
  serviceCIDR?: string;
  /** Numbers (1-based) of the nodes without a bpffs, where BPF is not available to the datapath. */
  withoutBpffs?: number[];
  /** Containerd's sandbox image. */
  pause: ClusterImage;
  /** Imported into every node before kubelet starts. */
  images: ClusterImage[];
  logger: Logger;
  progress: (msg: string) => void;
}

export interface PodRef {
  namespace: string;
  name: string;
}

export class RealCluster {
  readonly nodes: RealNode[] = [];
  cp!: ControlPlane;
  readonly dir: string;
  readonly logDir: string;
  private readonly net = new Lab();

  private constructor(readonly o: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `${o.prefix}-cluster-`));
    this.logDir = join(this.dir, 'logs');
    mkdirSync(this.logDir);
  }

  get cpNetns(): string {
    return `${this.o.prefix}-cp`;
  }

  get underlayBridge(): string {
    return `${this.o.prefix}-ul`;
  }

  /** The underlay address of host n of this cluster (1 is the control plane, 10+i node i). */
  hostAddress(n: number): string {
    return `${this.o.underlay}.${(this.o.hostBase ?? 0) + n}`;
  }

  static async start(o: ClusterOptions): Promise<RealCluster> {
    const c = new RealCluster(o);
    try {
      await c.up();
      return c;
    } catch (e) {
      await c.stop();
      throw e;
    }
  }

  private async up(): Promise<void> {
    const { o } = this;
    const t = Date.now();
    const cpAddr = this.hostAddress(1);
    await this.net.netns(this.cpNetns);
    await ipIn(this.cpNetns, 'link', 'add', this.underlayBridge, 'type', 'bridge');
    await ipIn(this.cpNetns, 'addr', 'add', `${cpAddr}/24`, 'dev', this.underlayBridge);
    await ipIn(this.cpNetns, 'link', 'set', this.underlayBridge, 'up');
    if (o.joinUnderlay) {
      // deleting this cluster's netns removes both ends of the pair
      const other = o.joinUnderlay;
      const link = `${o.prefix}-x`;
      await ipIn(
        this.cpNetns,
        'link',
        'add',
        link,
        'type',
        'veth',
        'peer',
        'name',
        link,
        'netns',
        other.cpNetns,
      );
      await ipIn(this.cpNetns, 'link', 'set', link, 'master', this.underlayBridge, 'up');
      await ipIn(other.cpNetns, 'link', 'set', link, 'master', other.underlayBridge, 'up');
    }
    o.progress(`control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler at ${cpAddr}`);
    this.cp = await startControlPlane({
      logDir: this.logDir,
      cluster: {
        netns: this.cpNetns,
        address: cpAddr,
        serviceCIDR: o.serviceCIDR ?? '10.96.0.0/16',
        clusterCIDR: `${o.podNet}.0.0/16`,
      },
    });
    o.progress(`control plane ready in ${secs(t)}`);

    const t2 = Date.now();
    for (let i = 1; i <= o.nodes; i++) await this.addNodeNetwork(i);
    await Promise.all(this.nodes.map((n) => n.prepare()));
    o.progress(`${o.nodes} nodes: containerd running (${secs(t2)})`);
    const t3 = Date.now();
    await Promise.all(this.nodes.map((n) => this.importImages(n)));
    o.progress(
      `images imported into every node: ${[o.pause, ...o.images].map((i) => i.name).join(', ')} (${secs(t3)})`,
    );
    const t4 = Date.now();
    await Promise.all(this.nodes.map((n) => n.join()));
    await this.waitNodesReady();
    await until(
      'the default ServiceAccount',
      async () => (await runCapture(join(this.cp.binDir, 'kubectl'), ['--kubeconfig', this.cp.adminKubeconfig,
        'get', 'serviceaccount', 'default', '-n', 'default'])).code === 0, // prettier-ignore
      60_000,
      300,
    );
    o.progress(`nodes Ready: ${this.nodes.map((n) => `${n.name}=${n.o.address}`).join(', ')} (${secs(t4)})`);
  }

  /** Node i's netns with eth0 on the underlay bridge, and its routes to every other node's pods. */
  private async addNodeNetwork(i: number): Promise<void> {
    const { o } = this;
    const name = `${o.prefix}-node${i}`;
    const address = this.hostAddress(10 + i);
    await this.net.netns(name);
    const port = `${o.prefix}-n${i}`;
    await ipIn(this.cpNetns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
    await ipIn(this.cpNetns, 'link', 'set', port, 'master', this.underlayBridge, 'up');
    await ipIn(name, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    await ipIn(name, 'link', 'set', 'eth0', 'up');
    await ipIn(name, 'route', 'add', 'default', 'via', this.hostAddress(1));
    for (let j = 1; j <= o.nodes; j++) {
      if (j !== i) await ipIn(name, 'route', 'add', `${o.podNet}.${j}.0/24`, 'via', this.hostAddress(10 + j));
    }
    const runDir = `/run/${o.prefix}-n${i}`;
    this.nodes.push(
      new RealNode({
        name,
        address,
        podCIDR: `${o.podNet}.${i}.0/24`,
        clusterCIDR: `${o.podNet}.0.0/16`,
        root: join(this.dir, 'nodes', name),
        runDir,
        binDir: this.cp.binDir,
        cp: this.cp,
        pauseImage: o.pause.name,
        logDir: this.logDir,
        bpffs: !o.withoutBpffs?.includes(i),
      }),
    );
  }

  private async importImages(n: RealNode): Promise<void> {
    for (const img of [this.o.pause, ...this.o.images]) await n.importImage(img.archive);
  }

  /** Imports one more image into every node (e.g. a rebuilt image for an upgrade). */
  async loadImage(img: ClusterImage): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.importImage(img.archive)));
  }

  async waitNodesReady(timeoutMs = 120_000): Promise<void> {
    await until(
      'every node Ready',
      async () => {
        const nodes = await this.getJson<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(['nodes']); // prettier-ignore
        const ready = nodes.items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length >= this.nodes.length;
      },
      timeoutMs,
      500,
    );
  }

  kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return this.cp.kubectl(args, { timeoutMs: 120_000, ...opts });
  }

  async getJson<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.kubectl(['get', ...args, '-o', 'json'])) as T;
  }

  /** kubectl exec: the apiserver asks the pod's kubelet, which asks containerd (the real path). */
  exec(pod: PodRef, cmd: string[], timeoutMs = 60_000) {
    return runCapture(
      join(this.cp.binDir, 'kubectl'),
      ['--kubeconfig', this.cp.adminKubeconfig, 'exec', '-n', pod.namespace, pod.name, '--', ...cmd],
      { timeoutMs },
    );
  }

  node(name: string): RealNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in this cluster`);
    return n;
  }

  async stop(): Promise<void> {
    for (const n of this.nodes)
      await n.stop().catch((e) => this.o.logger.warn({ err: String(e) }, 'node stop'));
    await this.cp?.stop().catch(() => undefined);
    await this.net.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const secs = (t: number) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
