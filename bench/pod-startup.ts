// Pod creation to Ready on a real cluster (real kubelets, containerd, Multus, kube-l2tp from helm):
// pods with a kube-l2tp net1 against the same pods without it, interleaved in one run, one pod at a
// time so they never queue behind each other. Times are taken by this process from the create request
// to the watch event that shows the pod Ready (milliseconds; the API's own timestamps have 1 s steps).
//   KUBE_L2TP_IMAGES=FILE node dist/bench/pod-startup.js [--n 20] [--nodes 2]
// (npm run lab prepares the images; scripts/build-images.sh prints the list FILE holds.)
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import { createLogger } from '../lib/log.js';
import { imagesFromEnv, RealLab } from '../test/e2e/real-lab.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '20' }, nodes: { type: 'string', default: '2' } },
});
const N = Number(values.n);
const NS = 'l2tp-demo';
const t0 = Date.now();
const progress = (m: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${m}`);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const isReady = (p: V1Pod) =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/pod-startup needs root (real nodes)');
  const lab = await RealLab.start({
    prefix: 'pb',
    nodes: Number(values.nodes),
    underlay: '10.235.0',
    podNet: '10.236',
    images: imagesFromEnv(),
    logger: createLogger({ name: 'bench', level: 'warn', destination: 'stderr' }),
    progress,
  });
  try {
    const [a, b] = lab.nodeNames as [string, string];
    // the tunnel and pseudowire of the README example, without its two pods
    await lab.apply(lab.example({ nodeA: a, nodeB: b }).filter((x) => x.kind !== 'Pod'));
    await lab.waitPseudowireReady(NS, 'red-wire');
    const kc = new KubeConfig();
    kc.loadFromFile(lab.cluster.cp.adminKubeconfig);
    const api = kc.makeApiClient(CoreV1Api);
    const ready = new Map<string, () => void>();
    const watch = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      {},
      (_type: string, p: V1Pod) => {
        if (isReady(p)) ready.get(p.metadata!.name!)?.();
      },
      () => undefined,
    );
    const pod = (name: string, node: string, withNet1: boolean): V1Pod => ({
      metadata: {
        name,
        namespace: NS,
        ...(withNet1 ? { annotations: { 'k8s.v1.cni.cncf.io/networks': 'red-wire' } } : {}),
      },
      spec: {
        nodeName: node,
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'c', image: lab.o.images.tools.name, command: ['sleep', '3600'] }],
      },
    });
    const times = { with: [] as number[], without: [] as number[] };
    progress(`${N} pods with a kube-l2tp net1 and ${N} without, interleaved, alternating nodes`);
    // one warm-up of each kind: the first sandbox on a node pays for image unpacking
    for (let i = -1; i < N; i++) {
      for (const kind of ['with', 'without'] as const) {
        const name = `${kind}-${i < 0 ? 'warm' : i}`;
        const node = i % 2 === 0 ? a : b;
        const done = new Promise<void>((res) => ready.set(name, res));
        const start = performance.now();
        await api.createNamespacedPod({ namespace: NS, body: pod(name, node, kind === 'with') });
        await done;
        if (i >= 0) times[kind].push(performance.now() - start);
        await api.deleteNamespacedPod({ namespace: NS, name, gracePeriodSeconds: 0 });
      }
    }
    watch.abort();
    const row = (k: 'with' | 'without') =>
      `${k === 'with' ? 'with kube-l2tp net1' : 'without (baseline)'}`.padEnd(22) +
      `${quantile(times[k], 0.5).toFixed(0).padStart(6)} ms ${quantile(times[k], 0.99).toFixed(0).padStart(6)} ms`;
    console.log(`\npod creation -> Ready, ${N} pods each, same run           p50       p99`);
    console.log(row('without'));
    console.log(row('with'));
    const d50 = quantile(times.with, 0.5) - quantile(times.without, 0.5);
    console.log(
      `net1 adds ${d50.toFixed(0)} ms at p50 (ratio ${(quantile(times.with, 0.5) / quantile(times.without, 0.5)).toFixed(2)}x; aim: <= +100 ms)`,
    );
  } finally {
    await lab.stop();
  }
}

await main();
