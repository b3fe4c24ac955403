// The lab on a real cluster: the cluster harness (real kubelets, containerd, kube-proxy, scheduler,
// controller-manager), Multus installed from its manifest, kube-l2tp installed with `helm install`
// (only the image reference and pull policy set), the README's example applied with kubectl, and pods
// that the runtime attached through Multus and the kube-l2tp CNI executable. Everything a user would
// see goes through kubectl, helm and the kubelet; nothing here attaches or starts anything itself.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { L2TPNodeState, Pseudowire } from '../../lib/api/schemas.js';
import { runCapture } from '../../lib/exec.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { after, before } from 'node:test';
import { RealCluster, type ClusterImage, type PodRef } from '../harness/cluster/cluster.js';
import { leftovers } from '../harness/cluster/leaks.js';
import { multusManifest } from '../harness/cluster/multus.js';
import { POD_NETNS_DIR } from '../harness/cluster/node.js';
import { pingSummary } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { liveTsharkArgs, parseFields, type ScenarioTarget } from './scenarios.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CHART = join(REPO, 'deploy/helm/kube-l2tp');
export const RELEASE_NAMESPACE = 'kube-l2tp';
/** The example's own image, replaced by the local tools image (busybox + iperf3). */
const EXAMPLE_IMAGE = 'busybox:1.36';

export interface LabImages {
  kubeL2tp: ClusterImage;
  pause: ClusterImage;
  tools: ClusterImage;
  multus: ClusterImage;
}

export interface RealLabOptions {
  prefix: string;
  nodes: number;
  underlay: string;
  podNet: string;
  images: LabImages;
  /** Offset of this cluster's addresses in the underlay (see ClusterOptions.hostBase). */
  hostBase?: number;
  /** A lab whose underlay this one joins (two clusters on one L2 underlay). */
  joinUnderlay?: RealLab;
  /** Numbers (1-based) of the nodes without a bpffs (see ClusterOptions.withoutBpffs). */
  withoutBpffs?: number[];
  /** Extra `helm install --set` values (the image reference and pull policy are always set). */
  helmSet?: string[];
  logger: Logger;
  progress: (msg: string) => void;
}

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
};

export interface NetworkStatus {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
}

/**
 * The images the lab needs, from the `NAME ARCHIVE` lines scripts/build-images.sh prints (each image
 * known by the last path element of its repository: kube-l2tp, pause, tools, multus).
 */
export function parseImageList(text: string): LabImages {
  const byRepo = new Map<string, ClusterImage>();
  for (const line of text.split('\n')) {
    const [name, archive] = line.trim().split(/\s+/);
    if (!name || !archive) continue;
    byRepo.set(splitImage(name).repository.split('/').pop()!, { name, archive });
  }
  const pick = (k: string) => {
    const img = byRepo.get(k);
    if (!img) throw new Error(`no ${k} image in the image list (scripts/build-images.sh prints it)`);
    return img;
  };
  return { kubeL2tp: pick('kube-l2tp'), pause: pick('pause'), tools: pick('tools'), multus: pick('multus') };
}

/** The image list named by KUBE_L2TP_IMAGES (npm test and npm run lab build the images and set it). */
export function imagesFromEnv(): LabImages {
  const list = process.env.KUBE_L2TP_IMAGES;
  if (!list)
    throw new Error('KUBE_L2TP_IMAGES is not set: run through `npm test -- e2e` (it builds the images)');
  return parseImageList(readFileSync(list, 'utf8'));
}

/** A 2-node lab for one e2e file (as root, images from KUBE_L2TP_IMAGES). */
export function startTestLab(o: TestLabOptions): Promise<RealLab> {
  return RealLab.start(testLabOptions(o));
}

interface TestLabOptions {
  prefix: string;
  underlay: string;
  podNet: string;
  withoutBpffs?: number[];
  logger: Logger;
  progress: (msg: string) => void;
}

/** The options of a 2-node lab for one e2e file: as root, images from KUBE_L2TP_IMAGES. */
function testLabOptions(o: TestLabOptions): RealLabOptions {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (real nodes in namespaces)');
  return { ...o, nodes: 2, images: imagesFromEnv() };
}

/** Progress of long e2e steps, on stdout where the test runner shows it. */
export const progress = (m: string): void => console.log(`  · ${m}`);

/** An e2e file's logger: warnings and errors on stderr. */
export const e2eLogger = (name: string): Logger =>
  createLogger({ name: `e2e-${name}`, level: 'warn', destination: 'stderr' });

/** Stops a test's lab and fails when its cluster left anything on the machine. */
export async function stopTestLab(lab: RealLab | undefined, prefix: string): Promise<void> {
  await lab?.stop();
  const left = await leftovers(prefix);
  if (left.length > 0) throw new Error(`the cluster left these behind: ${left.join(', ')}`);
}

/** Splits "repo:tag" (a registry port's colon is not a tag separator). */
export function splitImage(name: string): { repository: string; tag: string } {
  const i = name.lastIndexOf(':');
  if (i < 0 || name.indexOf('/', i) >= 0) return { repository: name, tag: 'latest' };
  return { repository: name.slice(0, i), tag: name.slice(i + 1) };
}

export class RealLab {
  cluster!: RealCluster;

  /** Its options, set when it boots. */
  o!: RealLabOptions;

  private constructor() {}

  static async start(o: RealLabOptions): Promise<RealLab> {
    const lab = new RealLab();
    await lab.boot(o);
    return lab;
  }

  /**
   * A 2-node lab for the enclosing describe of an e2e file (as root, images from KUBE_L2TP_IMAGES):
   * started before its tests, stopped after them, failing when the cluster left anything on the
   * machine. Usable once before() ran.
   */
  static forDescribe(name: string, o: { prefix: string; underlay: string; podNet: string }): RealLab {
    const lab = new RealLab();
    before(() => lab.boot(testLabOptions({ ...o, logger: e2eLogger(name), progress })));
    after(() => stopTestLab(lab.cluster ? lab : undefined, o.prefix));
    return lab;
  }

  private async boot(o: RealLabOptions): Promise<void> {
    this.o = o;
    try {
      this.cluster = await RealCluster.start({
        prefix: o.prefix,
        nodes: o.nodes,
        underlay: o.underlay,
        podNet: o.podNet,
        ...(o.hostBase !== undefined ? { hostBase: o.hostBase } : {}),
        ...(o.joinUnderlay ? { joinUnderlay: o.joinUnderlay.cluster } : {}),
        ...(o.withoutBpffs ? { withoutBpffs: o.withoutBpffs } : {}),
        pause: o.images.pause,
        images: [o.images.kubeL2tp, o.images.tools, o.images.multus],
        logger: o.logger,
        progress: o.progress,
      });
      await this.installMultus();
      await this.helmInstall();
    } catch (e) {
      await this.cluster?.stop();
      throw e;
    }
  }

  get nodeNames(): string[] {
    return this.cluster.nodes.map((n) => n.name);
  }

  /** The first node's name. */
  get nodeA(): string {
    return this.nodeNames[0]!;
  }

  /** The second node's name. */
  get nodeB(): string {
    return this.nodeNames[1]!;
  }

  async installMultus(): Promise<void> {
    const t = Date.now();
    await this.apply(multusManifest(this.o.images.multus.name));
    await this.kubectl([
      'rollout',
      'status',
      'daemonset/kube-multus-ds',
      '-n',
      'kube-system',
      '--timeout=180s',
    ]);
    // the DaemonSet is Ready once 00-multus.conf exists on every node: from then on containerd calls Multus
    await until(
      'Multus configuration on every node',
      async () => {
        for (const n of this.cluster.nodes) {
          const r = await n.exec('ls', ['/etc/cni/net.d']);
          if (!/00-multus\.conf/.test(r.stdout)) return false;
        }
        return true;
      },
      60_000,
      500,
    );
    this.o.progress(`Multus ${this.o.images.multus.name} installed from its manifest (${secs(t)})`);
  }

  helm(args: string[], timeoutMs = 300_000) {
    return runCapture(
      join(this.cluster.cp.binDir, 'helm'),
      ['--kubeconfig', this.cluster.cp.adminKubeconfig, ...args],
      {
        timeoutMs,
      },
    );
  }

  /** `helm install` as a user does: the chart, the image reference and its pull policy (plus extras). */
  async helmInstall(extraSet: string[] = []): Promise<void> {
    const t = Date.now();
    const { repository, tag } = splitImage(this.o.images.kubeL2tp.name);
    const set = [
      `image.repository=${repository}`,
      `image.tag=${tag}`,
      'image.pullPolicy=Never',
      // as on a host whose containerd keeps them under its state dir
      `cni.netnsDir=${POD_NETNS_DIR}`,
      ...(this.o.helmSet ?? []),
      ...extraSet,
    ];
    const r = await this.helm([
      'install', 'kube-l2tp', CHART, '-n', RELEASE_NAMESPACE, '--create-namespace', '--wait', '--timeout', '4m',
      ...set.flatMap((s) => ['--set', s]),
    ]); // prettier-ignore
    if (r.code !== 0) throw new Error(`helm install failed: ${r.stderr || r.stdout}`);
    this.o.progress(
      `helm install kube-l2tp (${set.filter((s) => s.startsWith('image.')).join(' ')}): operator Running (${secs(t)})`,
    );
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return this.cluster.kubectl(args, input !== undefined ? { input } : {});
  }

  apply(objects: unknown[]): Promise<string> {
    return this.kubectl(['apply', '-f', '-'], objects.map((x) => YAML.stringify(x)).join('---\n'));
  }

  /**
   * The README's example (examples/in-cluster-pair.yaml) as a user adapts it: node-a and node-b
   * replaced by two nodes, its busybox image by the local tools image; options for the lab's variants.
   */
  example(
    o: {
      /** Default: this lab's first and second nodes. */
      nodeA?: string;
      nodeB?: string;
      encapsulation?: 'UDP' | 'IP';
      cookies?: boolean;
      mode?: 'Bridge' | 'Exclusive';
    } = {},
  ): Obj[] {
    const text = readFileSync(join(REPO, 'examples/in-cluster-pair.yaml'), 'utf8')
      .replaceAll('node-a', o.nodeA ?? this.nodeA)
      .replaceAll('node-b', o.nodeB ?? this.nodeB)
      .replaceAll(EXAMPLE_IMAGE, this.o.images.tools.name);
    const objs = YAML.parseAllDocuments(text)
      .map((d) => d.toJS() as Obj | null)
      .filter((x): x is Obj => x !== null);
    for (const x of objs) {
      const spec = x.spec as Record<string, unknown> | undefined;
      if (x.kind === 'L2TPTunnel' && o.encapsulation) spec!.encapsulation = o.encapsulation;
      if (x.kind === 'Pseudowire') {
        if (o.mode) spec!.attachment = { mode: o.mode };
        if (o.cookies)
          Object.assign(spec!, {
            cookie: { value: '0a0b0c0d0e0f1011' },
            peerCookie: { value: '1213141516171819' },
          });
      }
      // busybox as PID 1 ignores SIGTERM: do not wait 30 s for it on delete
      if (x.kind === 'Pod')
        (spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds = 1;
    }
    return objs;
  }

  async waitPseudowireReady(namespace: string, name: string, timeoutMs = 120_000): Promise<Pseudowire> {
    return until(
      `pseudowire ${namespace}/${name} Ready`,
      async () => {
        const pw = await this.cluster.getJson<Pseudowire>(['pseudowire', '-n', namespace, name]);
        return pw.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pw : undefined;
      },
      timeoutMs,
      500,
    );
  }

  async waitPodsReady(pods: PodRef[], timeoutMs = 120_000): Promise<void> {
    for (const p of pods) {
      await until(
        `pod ${p.namespace}/${p.name} Ready`,
        async () => {
          const pod = await this.cluster.getJson<{ status?: { conditions?: { type: string; status: string }[] } }>([
            'pod', '-n', p.namespace, p.name,
          ]); // prettier-ignore
          return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
        },
        timeoutMs,
        300,
      );
    }
  }

  /** The kube-l2tp state a node holds for pods: links in its netns and attachment records. */
  async nodeFootprint(node: string): Promise<{ links: string[]; records: string[] }> {
    const n = this.cluster.node(node);
    const l = await n.exec('ip', ['-o', 'link', 'show']);
    const links = l.stdout
      .split('\n')
      .map((x) => x.split(':')[1]?.trim().split('@')[0] ?? '')
      // the pseudowire's own devices (session device, its bridge) are not per-pod state
      .filter((x) => x !== '' && !/^(l2tpeth|kl2b)/.test(x));
    const r = await n.exec('find', ['/var/lib/cni/kube-l2tp', '-type', 'f']);
    return { links: links.sort(), records: r.stdout.split('\n').filter(Boolean).sort() };
  }

  /**
   * The node's footprint once it is back to `before`, or the last one read after `timeoutMs`. A
   * deleted pod's sandbox attempt may still be running: the kubelet retries a failed sandbox, and
   * a retry under way when the pod goes finishes its ADD, its undo and the runtime's DEL after that.
   */
  async footprintBackTo(
    node: string,
    before: { links: string[]; records: string[] },
    timeoutMs = 30_000,
  ): Promise<{ links: string[]; records: string[] }> {
    const same = (f: typeof before) => JSON.stringify(f) === JSON.stringify(before);
    let last = await this.nodeFootprint(node);
    for (const deadline = Date.now() + timeoutMs; !same(last) && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 500));
      last = await this.nodeFootprint(node);
    }
    return last;
  }

  /**
   * A pod on `node` attached to `network` that is expected never to start: the messages of its
   * FailedCreatePodSandBox events (what the runtime reported from the CNI call).
   */
  async failingPod(pod: PodRef, node: string, network: string): Promise<string[]> {
    await this.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { ...pod, annotations: { 'k8s.v1.cni.cncf.io/networks': network } },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': node },
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'c', image: this.o.images.tools.name, command: ['sleep', '3600'] }],
        },
      },
    ]);
    return until(
      `a sandbox failure event for ${pod.namespace}/${pod.name}`,
      async () => {
        const ev = await this.cluster.getJson<{ items: { reason?: string; message?: string }[] }>([
          'events', '-n', pod.namespace, '--field-selector', `involvedObject.name=${pod.name}`,
        ]); // prettier-ignore
        const msgs = ev.items
          .filter((e) => e.reason === 'FailedCreatePodSandBox')
          .map((e) => e.message ?? '');
        return msgs.length > 0 ? msgs : undefined;
      },
      90_000,
      1000,
    );
  }

  /** Multus's k8s.v1.cni.cncf.io/network-status annotation: what the runtime's CNI call returned. */
  async networkStatus(pod: PodRef): Promise<NetworkStatus[]> {
    const p = await this.cluster.getJson<{ metadata: { annotations?: Record<string, string> } }>([
      'pod', '-n', pod.namespace, pod.name,
    ]); // prettier-ignore
    const raw = p.metadata.annotations?.['k8s.v1.cni.cncf.io/network-status'];
    return raw ? (JSON.parse(raw) as NetworkStatus[]) : [];
  }

  /** The interface inside the pod, read through kubectl exec: MTU and IPv4 addresses. */
  async podInterface(pod: PodRef, ifname = 'net1'): Promise<{ mtu: number; addresses: string[] }> {
    const r = await this.cluster.exec(pod, ['ip', '-o', 'addr', 'show', 'dev', ifname]);
    const m = await this.cluster.exec(pod, ['cat', `/sys/class/net/${ifname}/mtu`]);
    if (m.code !== 0) throw new Error(`${pod.namespace}/${pod.name} has no ${ifname}: ${m.stderr}`);
    const addresses = [...r.stdout.matchAll(/inet (\S+)/g)].map((x) => x[1]!);
    return { mtu: Number(m.stdout.trim()), addresses };
  }

  async ping(
    from: PodRef,
    to: string,
    count = 10,
  ): Promise<{ sent: number; received: number; rttAvgMs?: number; output: string }> {
    const r = await this.cluster.exec(from, ['ping', '-c', String(count), '-W', '2', to], 60_000);
    return pingSummary(r.stdout, r.stderr, count);
  }

  /** iperf3 TCP from client to server (both through kubectl exec); Mbit/s received. */
  async throughput(server: PodRef, client: PodRef, serverAddr: string, seconds = 3): Promise<number> {
    const s = await this.cluster.exec(server, ['iperf3', '-s', '-1', '-D', '-B', serverAddr]);
    if (s.code !== 0) throw new Error(`iperf3 server: ${s.stderr}`);
    const r = await until(
      'iperf3 client run',
      async () => {
        const x = await this.cluster.exec(
          client,
          ['iperf3', '-c', serverAddr, '-t', String(seconds), '-J'],
          (seconds + 30) * 1000,
        );
        return x.code === 0 ? x : undefined;
      },
      20_000,
      500,
    );
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  }

  async nodeStates(): Promise<L2TPNodeState[]> {
    return (await this.cluster.getJson<{ items: L2TPNodeState[] }>(['l2tpnodestates'])).items;
  }

  /** The shared scenarios' view of this lab (test/e2e/scenarios.ts). */
  target(): ScenarioTarget {
    return {
      nodes: this.nodeNames,
      toolsImage: this.o.images.tools.name,
      kubectl: (args, input) => this.kubectl(args, input),
      podExec: (pod, cmd, timeoutMs) => this.cluster.exec(pod, cmd, timeoutMs),
      nodeExec: (node, file, args) => this.cluster.node(node).exec(file, args),
      capture: (node, bpf, o, minFrames, during) =>
        this.capture(node, liveTsharkArgs(bpf, o), minFrames, during),
      progress: this.o.progress,
    };
  }

  /** tshark on a node's host from before `during` starts until the frames arrived (then SIGINT, which flushes). */
  private async capture(node: string, args: string[], minFrames: number, during: () => Promise<void>) {
    const [file, argv] = this.cluster.node(node).hostCommand('tshark', args);
    const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    try {
      await until('tshark capturing', async () => {
        if (p.exitCode !== null) throw new Error(`tshark exited: ${err}`);
        return err.includes('Capturing on');
      }, 20_000, 100); // prettier-ignore
      await during();
      await until(
        'the frames through tshark',
        async () => parseFields(out).length >= minFrames,
        10_000,
        100,
      ).catch(
        () => undefined, // the caller asserts on what arrived
      );
    } finally {
      p.kill('SIGINT');
      await exited;
    }
    return parseFields(out);
  }

  async stop(): Promise<void> {
    await this.cluster?.stop();
  }
}

const secs = (t: number) => `${((Date.now() - t) / 1000).toFixed(1)} s`;
