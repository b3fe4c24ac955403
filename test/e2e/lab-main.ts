// `npm run lab [-- --nodes N --encap UDP|IP --cookies --mode Bridge|Exclusive --keep]`: the README's
// main job. Brings the lab up, applies the example, attaches a pod on each side, proves traffic,
// prints a summary, and tears down (or, with --keep, leaves it for kubectl).
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/log.js';
import { until } from '../harness/wait.js';
import { LocalLab } from './lab.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2' },
    encap: { type: 'string', default: 'UDP' },
    cookies: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'Bridge' },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
});

const t0 = Date.now();
const progress = (msg: string) =>
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);
const logger = createLogger({ name: 'lab', level: values.verbose ? 'info' : 'warn', destination: 'stderr' });

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n');
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error(
      'the lab creates network namespaces, TAP devices and bridges: run it as root (sudo npm run lab)',
    );
    return 2;
  }
  const encap = values.encap.toUpperCase() === 'IP' ? 'IP' : 'UDP';
  const mode = values.mode.toLowerCase() === 'exclusive' ? 'Exclusive' : 'Bridge';
  const lab = await LocalLab.start({
    nodes: Math.max(2, Number(values.nodes)),
    prefix: 'kl',
    underlay: '10.210.0',
    backend: 'userspace',
    logger,
    progress,
  });
  let ok = false;
  try {
    const [a, b] = lab.nodes;
    progress(
      `applying the example: L2TPTunnel red (${encap}) ${a!.name} <-> ${b!.name}, Pseudowire default/red-wire (${mode})`,
    );
    await lab.apply(
      LocalLab.example({
        nodeA: a!.name,
        nodeB: b!.name,
        encapsulation: encap,
        cookies: values.cookies,
        mode,
      }),
    );
    progress(
      'waiting for the operator to allocate IDs, render node states and datapath pods, and the agents to report',
    );
    const pw = await lab.waitPseudowireReady('default', 'red-wire');
    progress(
      `pseudowire Ready: session ${pw.spec.sessionID ?? pw.status?.endpoints?.[0]?.sessionID ?? '?'}; MTU ${pw.status?.mtu ?? '?'}`,
    );
    progress('attaching pod-a and pod-b with the CNI executable through cnitool (no Node.js on PATH)');
    const podA = await lab.attachPod({
      name: 'pod-a',
      node: a!.name,
      namespace: 'default',
      network: 'red-wire',
      ip: '192.168.77.1/24',
    });
    const podB = await lab.attachPod({
      name: 'pod-b',
      node: b!.name,
      namespace: 'default',
      network: 'red-wire',
      ip: '192.168.77.2/24',
    });
    progress('ping pod-a -> pod-b across the pseudowire');
    const p = await lab.ping(podA, '192.168.77.2', 10);
    progress(`ping: ${p.received}/${p.sent} replies, avg RTT ${p.rttAvgMs ?? '?'} ms`);
    progress('TCP throughput pod-b -> pod-a (iperf3, 3 s)');
    const mbps = await lab.throughput(podA, podB, '192.168.77.1', 3);
    progress(`throughput: ${mbps.toFixed(0)} Mbit/s`);

    progress('waiting for the agents to report counters in L2TPNodeState.status');
    const states = await until(
      'counters in status',
      async () => {
        const st = await lab.nodeStates();
        return st.every((s) => s.status?.sessions?.every((x) => (x.counters?.rxPackets ?? 0) > 0))
          ? st
          : undefined;
      },
      20_000,
    ).catch(() => lab.nodeStates());
    console.log('\n== objects');
    console.log(await lab.cp.kubectl(['get', 'l2tptunnels,pseudowires,l2tpnodestates', '-A']));
    console.log('== datapath pods');
    console.log(await lab.cp.kubectl(['get', 'pods', '-n', 'kube-l2tp', '-o', 'wide']));
    console.log('== sessions');
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
    console.log('\n== pods');
    console.log(
      table([
        ['pod', 'node', 'netns', 'interface', 'address'],
        ...lab.pods.map((x) => [x.name, x.node, x.netns, x.ifname, x.address ?? '']),
      ]),
    );
    ok = p.received >= 8 && mbps > 0;
    console.log(
      `\nresult: ${ok ? 'PASS' : 'FAIL'}: ${p.received}/${p.sent} pings, ${mbps.toFixed(0)} Mbit/s over the pseudowire`,
    );
    if (values.keep) {
      console.log(`\nkept. KUBECONFIG=${lab.cp.adminKubeconfig} kubectl get pseudowires -A`);
      console.log(`pods: ip netns exec ${podA.netns} ping 192.168.77.2   (Ctrl-C tears everything down)`);
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
  } catch (e) {
    console.error(`lab failed: ${(e as Error).message}`);
    for (const [pod, lines] of lab.podLogs)
      console.error(`--- last log lines of ${pod}\n${lines.slice(-15).join('\n')}`);
  } finally {
    progress('tearing down');
    await lab.stop();
    progress('done');
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
