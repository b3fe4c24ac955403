// The local lab: a real kube-apiserver + etcd, the CRDs and RBAC, the operator under its own
// identity, N nodes as network namespaces on an underlay bridge, each node's datapath Pod (the one
// the operator created) run by a kubelet stand-in inside that node's namespace, and pods as
// namespaces attached by the real CNI executable through libcni's cnitool.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { AGENT_SOCKET_DIR } from '../../lib/agent-protocol.js';
import { allCRDs } from '../../lib/api/crdgen.js';
import {
  AGENT_SA,
  DEFAULT_NAMESPACE,
  OPERATOR_SA,
  rbacObjects,
  serviceAccountUser,
} from '../../lib/api/rbac.js';
import { API_VERSION, type L2TPNodeState, type Pseudowire } from '../../lib/api/schemas.js';
import { runCapture } from '../../lib/exec.js';
import type { Logger } from '../../lib/log.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import { cnitoolPath } from '../harness/cnitool.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { LabKubelet, type LabNode } from '../harness/kubelet.js';
import { bridgeLoopbackPort } from '../harness/loopback-bridge.js';
import { Lab, inNsCapture, ip, ipIn, pingSummary } from '../harness/netns.js';
import { sleep, until } from '../harness/wait.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Absolute, because the CNI commands run with a PATH that holds no programs at all. */
const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : '/sbin/ip';

export interface LabOptions {
  nodes: number;
  /** Prefix of every namespace and link this lab creates (several labs can coexist). */
  prefix: string;
  /** Underlay /24, as its first three octets. */
  underlay: string;
  backend: 'userspace' | 'auto' | 'kernel';
  /** Join an underlay bridge another lab created (cross-cluster: two control planes, one L2 underlay). */
  sharedUnderlay?: string;
  /** Host number of the first node on the underlay (default 11). */
  firstHost?: number;
  logger: Logger;
  progress: (msg: string) => void;
}

export interface LabPod {
  name: string;
  node: string;
  netns: string;
  ifname: string;
  network: string;
  /** The container ID cnitool derives from the netns path (what the plugin records). */
  containerID: string;
  address?: string;
}

export class LocalLab {
  readonly nodes: (LabNode & { address: string })[] = [];
  readonly pods: LabPod[] = [];
  cp!: ControlPlane;
  operator: RunningOperator | undefined;
  kubelet!: LabKubelet;
  private readonly net = new Lab();
  readonly dir: string;
  private operatorKubeconfig = '';
  readonly podLogs = new Map<string, string[]>();

  get underlayBridge(): string {
    return `${this.o.prefix}-ul`;
  }

  private constructor(readonly o: LabOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `${o.prefix}-lab-`));
  }

  static async start(o: LabOptions): Promise<LocalLab> {
    const lab = new LocalLab(o);
    try {
      await lab.up();
      return lab;
    } catch (e) {
      await lab.stop();
      throw e;
    }
  }

  private async up(): Promise<void> {
    const { o } = this;
    o.progress('starting etcd and kube-apiserver (real binaries built from Go modules)');
    mkdirSync(join(this.dir, 'logs'));
    this.cp = await startControlPlane({ logDir: join(this.dir, 'logs') });
    o.progress(`control plane up at ${this.cp.url}`);
    await this.cp.kubectl(['create', 'namespace', DEFAULT_NAMESPACE]);
    const crds = [
      ...allCRDs(),
      JSON.parse(readFileSync(join(REPO, 'test/fixtures/multus-nad-crd.json'), 'utf8')),
    ];
    await this.cp.kubectl(['apply', '-f', '-'], { input: crds.map((c) => YAML.stringify(c)).join('---\n') });
    await this.cp.kubectl(['apply', '-f', '-'], {
      input: rbacObjects()
        .map((x) => YAML.stringify(x))
        .join('---\n'),
    });
    await this.cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    o.progress('CRDs (kube-l2tp + Multus NetworkAttachmentDefinition) and RBAC installed');
    this.operatorKubeconfig = await this.cp.kubeconfigFor({
      user: serviceAccountUser(DEFAULT_NAMESPACE, OPERATOR_SA),
      groups: ['system:serviceaccounts'],
    });
    const agentKubeconfig = await this.cp.kubeconfigFor({
      user: serviceAccountUser(DEFAULT_NAMESPACE, AGENT_SA),
      groups: ['system:serviceaccounts'],
    });

    // underlay: a bridge in the root namespace, one veth per node
    const br = o.sharedUnderlay ?? this.underlayBridge;
    if (!o.sharedUnderlay) {
      await runCapture('ip', ['link', 'del', br]);
      await ip('link', 'add', br, 'type', 'bridge');
      this.net.onCleanup(() => runCapture('ip', ['link', 'del', br]));
      await ip('link', 'set', br, 'up');
    }
    const apiPort = Number(new URL(this.cp.url).port);
    for (let i = 1; i <= o.nodes; i++) {
      const name = `${o.prefix}-node${i}`;
      const address = `${o.underlay}.${(o.firstHost ?? 11) + i - 1}`;
      await this.net.netns(name);
      const hostEnd = `${o.prefix}-n${i}`;
      await runCapture('ip', ['link', 'del', hostEnd]);
      await ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
      await ip('link', 'set', hostEnd, 'master', br, 'up');
      await ipIn(name, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ipIn(name, 'link', 'set', 'eth0', 'up');
      await bridgeLoopbackPort(this.net, name, apiPort, this.dir);
      const root = join(this.dir, 'nodes', name);
      mkdirSync(root, { recursive: true });
      this.nodes.push({ name, netns: name, root, address });
      await this.cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name, labels: { 'kubernetes.io/hostname': name } },
        }),
      });
      await this.cp.kubectl([
        'patch',
        'node',
        name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address }] } }),
      ]);
    }
    o.progress(
      `${o.nodes} nodes as network namespaces on underlay ${o.underlay}.0/24: ${this.nodes.map((n) => `${n.name}=${n.address}`).join(', ')}`,
    );

    this.kubelet = new LabKubelet({
      cp: this.cp,
      nodes: this.nodes,
      entrypoints: { 'kube-l2tp-datapath': [process.execPath, join(REPO, 'dist/datapath/main.js')] },
      podKubeconfig: agentKubeconfig,
      namespace: DEFAULT_NAMESPACE,
      logger: o.logger.child({ component: 'kubelet' }),
      // resync and counters every 2 s instead of 10/30 s, so the summary shows fresh counters
      extraEnv: { KUBE_L2TP_STATUS_COUNTER_SECONDS: '2', KUBE_L2TP_RESYNC_SECONDS: '2' },
      onOutput: (pod, line) => {
        const l = this.podLogs.get(pod) ?? [];
        l.push(line);
        if (l.length > 2000) l.shift();
        this.podLogs.set(pod, l);
      },
    });
    this.kubelet.start();
    await this.startOperator();
  }

  async startOperator(): Promise<void> {
    this.o.progress('starting the operator (as its ServiceAccount, leader-elected)');
    this.operator = await startOperator({
      kubeconfig: this.operatorKubeconfig,
      logger: this.o.logger.child({ component: 'operator' }),
      namespace: DEFAULT_NAMESPACE,
      pod: { backend: this.o.backend },
      leaderElection: { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 },
      http: false,
    });
  }

  /** The operator as its own process (so a fault test can SIGKILL it), with the operator identity. */
  operatorProcess(name: string): ChildProcess {
    const p = spawn(
      process.execPath,
      [
        join(REPO, 'dist/operator/main.js'),
        ...['--kubeconfig', this.operatorKubeconfig, '--namespace', DEFAULT_NAMESPACE],
        ...['--metrics-addr', '127.0.0.1:0', '--lease-duration-ms', '4000', '--retry-period-ms', '500'],
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LOG_LEVEL: 'info', DATAPATH_BACKEND: this.o.backend, POD_NAME: name },
      },
    );
    const lines: string[] = [];
    const keep = (d: Buffer) => {
      lines.push(...d.toString().split('\n').filter(Boolean));
      if (lines.length > 500) lines.splice(0, lines.length - 500);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    this.podLogs.set(`operator-${name}`, lines);
    this.net.onCleanup(async () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    });
    return p;
  }

  async stopOperator(): Promise<void> {
    await this.operator?.stop();
    this.operator = undefined;
  }

  apply(objects: unknown[]): Promise<string> {
    return this.cp.kubectl(['apply', '-f', '-'], {
      input: objects.map((x) => YAML.stringify(x)).join('---\n'),
    });
  }

  async get<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.cp.kubectl(['get', ...args, '-o', 'json'])) as T;
  }

  async waitPseudowireReady(namespace: string, name: string, timeoutMs = 90_000): Promise<Pseudowire> {
    return until(
      `pseudowire ${namespace}/${name} Ready`,
      async () => {
        const pw = await this.get<Pseudowire>(['pseudowire', '-n', namespace, name]);
        return pw.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pw : undefined;
      },
      timeoutMs,
    );
  }

  nodeByName(name: string) {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  /** CNI ADD through cnitool, run in the node's namespace as a runtime would, with no Node.js on PATH. */
  async attachPod(p: {
    name: string;
    node: string;
    namespace: string;
    network: string;
    ip?: string;
    ifname?: string;
  }): Promise<LabPod> {
    const node = this.nodeByName(p.node);
    const netns = `${this.o.prefix}-${p.name}`;
    await this.net.netns(netns);
    const nad = await this.get<{ spec: { config: string } }>([
      'network-attachment-definitions',
      '-n',
      p.namespace,
      p.network,
    ]);
    const conf = JSON.parse(nad.spec.config) as Record<string, unknown>;
    // Multus would hand this config to the plugin; the lab only points it at this node's socket,
    // through a link under the agent directory (the only place the shim connects to)
    conf.agentSocket = await this.nodeSocketLink(node);
    conf.name = p.network;
    const netconf = join(node.root, 'netconf');
    mkdirSync(netconf, { recursive: true });
    writeFileSync(join(netconf, `${p.network}.conf`), JSON.stringify(conf));
    const ifname = p.ifname ?? 'net1';
    const env = this.cniEnv(
      node,
      ifname,
      `IgnoreUnknown=1;K8S_POD_NAMESPACE=${p.namespace};K8S_POD_NAME=${p.name}${p.ip ? `;IP=${p.ip}` : ''}`,
      netconf,
    );
    const r = await runCapture(
      IP,
      ['netns', 'exec', node.netns, cnitoolPath(), 'add', p.network, `/run/netns/${netns}`],
      { env },
    );
    if (r.code !== 0)
      throw new Error(`CNI ADD for ${p.name} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
    const containerID = `cnitool-${createHash('sha512').update(`/run/netns/${netns}`).digest('hex').slice(0, 20)}`;
    const pod: LabPod = {
      name: p.name,
      node: p.node,
      netns,
      ifname,
      network: p.network,
      containerID,
      ...(p.ip ? { address: p.ip } : {}),
    };
    this.pods.push(pod);
    return pod;
  }

  /** CNI DEL; idempotent like the plugin's DEL. */
  async detachPod(pod: LabPod): Promise<void> {
    const node = this.nodeByName(pod.node);
    const env = this.cniEnv(node, pod.ifname, '', join(node.root, 'netconf'));
    const r = await runCapture(
      IP,
      ['netns', 'exec', node.netns, cnitoolPath(), 'del', pod.network, `/run/netns/${pod.netns}`],
      { env },
    );
    if (r.code !== 0)
      throw new Error(`CNI DEL for ${pod.name} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  private cniEnv(node: LabNode, ifname: string, args: string, netconf: string): NodeJS.ProcessEnv {
    return {
      PATH: join(this.dir, 'no-node-on-path'),
      NETCONFPATH: netconf,
      CNI_PATH: `${join(node.root, 'opt/cni/bin')}:/usr/lib/cni`,
      CNI_IFNAME: ifname,
      CNI_ARGS: args,
      CNI_CACHE_DIR: join(node.root, 'cni-cache'),
    };
  }

  async ping(
    from: LabPod,
    to: string,
    count = 5,
  ): Promise<{ sent: number; received: number; rttAvgMs?: number; output: string }> {
    const r = await inNsCapture(from.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', to);
    return pingSummary(r.stdout, r.stderr, count);
  }

  /** A short iperf3 TCP run between two pods; returns Mbit/s. */
  async throughput(server: LabPod, client: LabPod, serverAddr: string, seconds = 3): Promise<number> {
    const srv = runCapture('ip', ['netns', 'exec', server.netns, 'iperf3', '-s', '-1', '-B', serverAddr], {
      timeoutMs: (seconds + 20) * 1000,
    });
    await sleep(500);
    const r = await inNsCapture(client.netns, 'iperf3', '-c', serverAddr, '-t', String(seconds), '-J');
    await srv;
    if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stdout.slice(0, 400)} ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  }

  async nodeStates(): Promise<L2TPNodeState[]> {
    return (await this.get<{ items: L2TPNodeState[] }>(['l2tpnodestates'])).items;
  }

  private async nodeSocketLink(node: { name: string; root: string }): Promise<string> {
    const link = join(AGENT_SOCKET_DIR, `${node.name}.sock`);
    if (!existsSync(link)) {
      mkdirSync(AGENT_SOCKET_DIR, { recursive: true });
      symlinkSync(join(node.root, 'run/kube-l2tp/cni.sock'), link);
      this.net.onCleanup(async () => rmSync(link, { force: true }));
    }
    return link;
  }

  async stop(): Promise<void> {
    // pods first, while the agents still answer the CNI DEL, as a runtime would before a node drains
    for (const p of [...this.pods].reverse()) await this.detachPod(p).catch(() => undefined);
    await this.kubelet?.stop().catch(() => undefined);
    await this.operator?.stop().catch(() => undefined);
    await this.net.cleanup();
    await this.cp?.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The example of the README: one tunnel between two nodes, one pseudowire, static IPAM. */
  static example(o: {
    nodeA: string;
    nodeB: string;
    encapsulation?: 'UDP' | 'IP';
    cookies?: boolean;
    mode?: 'Bridge' | 'Exclusive';
  }) {
    const cookie = (v: string) => (o.cookies ? { value: v } : undefined);
    return [
      {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 'red' },
        spec: { encapsulation: o.encapsulation ?? 'UDP', local: { node: o.nodeA }, peer: { node: o.nodeB } },
      },
      {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: {
          name: 'red-wire',
          namespace: 'default',
          annotations: { 'l2tp.kube-l2tp.io/ipam': JSON.stringify({ type: 'static' }) },
        },
        spec: {
          tunnelRef: { name: 'red' },
          ...(o.cookies
            ? { cookie: cookie('0a0b0c0d0e0f1011'), peerCookie: cookie('1213141516171819') }
            : {}),
          attachment: { mode: o.mode ?? 'Bridge' },
        },
      },
    ];
  }
}
