// `npm run lab [-- --nodes N --encap UDP|IP --cookies --mode Bridge|Exclusive --keep]`: the README's
// main job, on a real cluster. Brings up the control plane and N real nodes, installs Multus and the
// chart as a user does, applies the README's example, waits for the pods the runtime attached,
// proves traffic with kubectl exec, prints a summary, and tears everything down (or, with --keep,
// leaves it for kubectl).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/log.js';
import { until } from '../harness/wait.js';
import { parseImageList, RealLab } from './real-lab.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2' },
    encap: { type: 'string', default: 'UDP' },
    cookies: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'Bridge' },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    images: { type: 'string' },
  },
});

const t0 = Number(process.env.KUBE_L2TP_LAB_T0 ?? Date.now());
const progress = (msg: string) =>
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
const logger = createLogger({ name: 'lab', level: values.verbose ? 'info' : 'warn', destination: 'stderr' });

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(w[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error(
      'the lab runs real nodes in network and mount namespaces: run it as root (sudo npm run lab)',
    );
    return 2;
  }
  const imageList = values.images ?? process.env.KUBE_L2TP_IMAGES;
  if (!imageList) {
    console.error('no image list: run it through `npm run lab` (scripts/build-images.sh builds the images)');
    return 2;
  }
  const encap = values.encap.toUpperCase() === 'IP' ? 'IP' : 'UDP';
  const mode = values.mode.toLowerCase() === 'exclusive' ? 'Exclusive' : 'Bridge';
  const lab = await RealLab.start({
    prefix: 'kl',
    nodes: Math.max(2, Number(values.nodes)),
    underlay: '10.231.0',
    podNet: '10.232',
    images: parseImageList(readFileSync(imageList, 'utf8')),
    logger,
    progress,
  });
  let ok = false;
  try {
    const [a, b] = lab.nodeNames;
    const ns = 'l2tp-demo';
    progress(
      `kubectl apply examples/in-cluster-pair.yaml: L2TPTunnel a-to-b (${encap}) ${a} <-> ${b}, Pseudowire ${ns}/red-wire (${mode}), pod-a and pod-b`,
    );
    await lab.apply(
      lab.example({ nodeA: a!, nodeB: b!, encapsulation: encap, cookies: values.cookies, mode }),
    );
    const pw = await lab.waitPseudowireReady(ns, 'red-wire');
    progress(
      `pseudowire Ready: session ${pw.status?.endpoints?.[0]?.sessionID ?? '?'}, MTU ${pw.status?.mtu ?? '?'}`,
    );
    const podA = { namespace: ns, name: 'pod-a' };
    const podB = { namespace: ns, name: 'pod-b' };
    await lab.waitPodsReady([podA, podB]);
    progress('pods Running: containerd called Multus, Multus called kube-l2tp for net1');
    const ifs = [];
    for (const p of [podA, podB]) {
      const i = await lab.podInterface(p);
      const st = (await lab.networkStatus(p)).find((x) => x.interface === 'net1');
      ifs.push({ pod: p.name, ...i, status: st });
    }
    const addrB = ifs[1]!.addresses[0]?.split('/')[0] ?? '10.10.0.2';
    const addrA = ifs[0]!.addresses[0]?.split('/')[0] ?? '10.10.0.1';
    progress(`kubectl exec pod-a -- ping ${addrB}`);
    const p = await lab.ping(podA, addrB, 10);
    progress(`ping: ${p.received}/${p.sent} replies, avg RTT ${p.rttAvgMs ?? '?'} ms`);
    progress('TCP throughput pod-b -> pod-a (iperf3 through kubectl exec, 3 s)');
    const mbps = await lab.throughput(podA, podB, addrA, 3);
    progress(`throughput: ${mbps.toFixed(0)} Mbit/s`);
    const states = await until(
      'counters in status',
      async () => {
        const st = await lab.nodeStates();
        return st.every((s) => s.status?.sessions?.every((x) => (x.counters?.rxPackets ?? 0) > 0))
          ? st
          : undefined;
      },
      45_000,
      1000,
    ).catch(() => lab.nodeStates());

    console.log('\n== kubectl get pods -A -o wide');
    console.log(await lab.kubectl(['get', 'pods', '-A', '-o', 'wide']));
    console.log('== kubectl get l2tptunnels,pseudowires,l2tpnodestates -A');
    console.log(await lab.kubectl(['get', 'l2tptunnels,pseudowires,l2tpnodestates', '-A']));
    console.log('== sessions (L2TPNodeState status)');
    const rows = [['node', 'backend', 'interface', 'session', 'mtu', 'state', 'rx pkts', 'tx pkts', 'drops']];
    for (const s of states)
      for (const x of s.status?.sessions ?? [])
        rows.push([
          s.metadata.name,
          s.status?.backend ?? '?',
          x.ifname,
          String(x.sessionId),
          String(x.mtu ?? ''),
          x.state,
          String(x.counters?.rxPackets ?? ''),
          String(x.counters?.txPackets ?? ''),
          Object.entries(x.counters?.drops ?? {})
            .filter(([, n]) => n > 0)
            .map(([r, n]) => `${r}=${n}`)
            .join(',') || '0',
        ]);
    console.log(table(rows));
    console.log('\n== pod interfaces (kubectl exec) and Multus network-status');
    console.log(
      table([
        ['pod', 'net1 address', 'mtu', 'network-status'],
        ...ifs.map((x) => [
          x.pod,
          x.addresses.join(','),
          String(x.mtu),
          x.status ? `${x.status.name} ${x.status.interface} mac ${x.status.mac ?? '?'}` : 'missing',
        ]),
      ]),
    );
    const mtu = pw.status?.mtu;
    ok = p.received >= 8 && mbps > 0 && ifs.every((x) => x.status && (mtu === undefined || x.mtu === mtu));
    console.log(
      `\nresult: ${ok ? 'PASS' : 'FAIL'}: ${p.received}/${p.sent} pings, ${mbps.toFixed(0)} Mbit/s over the pseudowire`,
    );
    if (values.keep) {
      console.log(`\nkept. export KUBECONFIG=${lab.cluster.cp.adminKubeconfig}; kubectl get pods -A`);
      console.log(
        `      kubectl -n ${ns} exec pod-a -- ping -c3 ${addrB}      (Ctrl-C tears everything down)`,
      );
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
  } catch (e) {
    console.error(`lab failed: ${(e as Error).message}`);
    console.error(await lab.kubectl(['get', 'pods', '-A', '-o', 'wide']).catch(() => ''));
    console.error(await lab.kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp']).catch(() => ''));
  } finally {
    progress('tearing down');
    await lab.stop();
    progress('done');
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
