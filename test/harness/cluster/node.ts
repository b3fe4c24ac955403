// One real Kubernetes node on this machine: kubelet + containerd + runc + kube-proxy inside the node's
// own network namespace and its own mount namespace, with the standard host paths (/opt/cni/bin,
// /etc/cni/net.d, /var/lib/cni, /var/lib/kubelet, /run/netns, /run/kube-l2tp, ...) bind-mounted from
// per-node directories, so a chart's default hostPaths work unchanged on every node. Every process of
// the node (containers, and the runtime's shims) lives in the node's cgroups, which is how stop()
// finds and removes all of it.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runCapture } from '../../../lib/exec.js';
import type { ControlPlane } from '../controlplane.js';
import { sleep, until } from '../wait.js';

/** The host paths every node has privately (a node-local directory is bind-mounted over each). */
export const NODE_HOST_PATHS = [
  '/opt/cni/bin',
  '/etc/cni/net.d',
  '/var/lib/cni',
  '/var/lib/kubelet',
  '/var/log/pods',
  '/var/log/containers',
  '/run/netns',
  '/run/containerd',
  '/run/kube-l2tp',
] as const;

/** Where each node's containerd keeps pod network namespaces (its state dir, netns_mounts_under_state_dir). */
export const POD_NETNS_DIR = '/run/containerd/io.containerd.grpc.v1.cri/netns';

/** The reference CNI plugins the primary pod network uses (Debian's containernetworking-plugins). */
const PRIMARY_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];
const DEBIAN_CNI_DIR = '/usr/lib/cni';

export interface NodeOptions {
  name: string;
  /** Underlay address (the node's InternalIP). */
  address: string;
  /** The address other nodes reach this node's pods through (its pod /24). */
  podCIDR: string;
  clusterCIDR: string;
  /** Directory for this node's private files (removed by stop()). */
  root: string;
  /** Short directory under /run for sockets (unix socket paths are limited to 108 bytes). */
  runDir: string;
  binDir: string;
  cp: ControlPlane;
  /** The sandbox image, already built (fully qualified name). */
  pauseImage: string;
  logDir: string;
  /** false: the node has no bpffs at /sys/fs/bpf (a host where BPF is not available to the datapath). */
  bpffs?: boolean;
}

export type NodeProcess = 'containerd' | 'kubelet' | 'kube-proxy';

export function cgroupHierarchies(): string[] {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup'];
  return readdirSync('/sys/fs/cgroup')
    .map((h) => join('/sys/fs/cgroup', h))
    .filter((p) => statSync(p).isDirectory() && existsSync(join(p, 'cgroup.procs')));
}

export class RealNode {
  private holder: ChildProcess | undefined;
  private readonly procs = new Map<NodeProcess, ChildProcess>();
  private readonly cgroups: string[] = [];
  readonly containerdSocket: string;

  constructor(readonly o: NodeOptions) {
    this.containerdSocket = join(o.runDir, 'containerd.sock');
  }

  get name(): string {
    return this.o.name;
  }

  /** Path under this node's private directories that stands for host path p on the node. */
  hostPath(p: string): string {
    return join(this.o.root, 'host', p);
  }

  /** Prepares directories, cgroups and the mount namespace, then starts containerd. */
  async prepare(): Promise<void> {
    const { o } = this;
    for (const p of NODE_HOST_PATHS) mkdirSync(this.hostPath(p), { recursive: true });
    mkdirSync(o.runDir, { recursive: true });
    for (const p of PRIMARY_PLUGINS)
      copyFileSync(join(DEBIAN_CNI_DIR, p), join(this.hostPath('/opt/cni/bin'), p));
    writeFileSync(join(this.hostPath('/etc/cni/net.d'), '10-pods.conflist'), this.primaryNetwork());
    this.makeCgroups();
    await this.startHolder();
    await this.startProcess('containerd', 'containerd', ['--config', this.writeContainerdConfig()]);
    await until('containerd socket', async () => existsSync(this.containerdSocket), 30_000, 100);
    await until(
      `containerd on ${o.name} answering`,
      async () => (await this.ctr(['version'])).code === 0,
      30_000,
      200,
    );
  }

  /** Imports an OCI image archive into the node's containerd (the CRI namespace kubelet uses). */
  async importImage(archive: string): Promise<void> {
    const r = await this.ctr(['-n', 'k8s.io', 'images', 'import', '--no-unpack=false', archive]);
    if (r.code !== 0) throw new Error(`importing ${archive} into ${this.name}: ${r.stderr || r.stdout}`);
  }

  ctr(args: string[]) {
    return runCapture('ctr', ['-a', this.containerdSocket, ...args], { timeoutMs: 120_000 });
  }

  /** Starts kubelet and kube-proxy (containerd runs already). */
  async join(): Promise<void> {
    const { o } = this;
    const kubeletKubeconfig = await o.cp.kubeconfigFor(
      { user: `system:node:${o.name}`, groups: ['system:nodes'] },
      o.cp.internalUrl,
    );
    const proxyKubeconfig = await o.cp.kubeconfigFor({ user: 'system:kube-proxy' }, o.cp.internalUrl);
    await this.startProcess('kubelet', join(o.binDir, 'kubelet'), [
      `--config=${this.writeKubeletConfig()}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--hostname-override=${o.name}`,
      `--node-ip=${o.address}`,
      `--root-dir=/var/lib/kubelet`,
      '--v=1',
    ]);
    await this.startProcess('kube-proxy', join(o.binDir, 'kube-proxy'), [
      `--config=${this.writeProxyConfig(proxyKubeconfig)}`,
      `--hostname-override=${o.name}`,
    ]);
  }

  /** SIGKILL (a crash) or SIGTERM one of the node's daemons and start it again with the same arguments. */
  async restart(p: NodeProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const cur = this.procs.get(p);
    if (!cur) throw new Error(`${p} is not running on ${this.name}`);
    const args = cur.spawnargs;
    await killAndWait(cur, signal);
    // spawnargs: nsenter ... -- sh -c SCRIPT sh FILE ARGS...
    const i = args.indexOf('sh', args.indexOf('-c') + 2);
    await this.startProcess(p, args[i + 1]!, args.slice(i + 2));
    if (p === 'containerd')
      await until('containerd socket', async () => (await this.ctr(['version'])).code === 0);
  }

  isRunning(p: NodeProcess): boolean {
    const c = this.procs.get(p);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** nsenter arguments that run a program on the node's host (for long-running ones, like a capture). */
  hostCommand(file: string, args: string[]): [string, string[]] {
    if (!this.holder?.pid) throw new Error(`node ${this.name} is not running`);
    return ['nsenter', ['-t', String(this.holder.pid), '-m', '-u', '-n', '--', file, ...args]];
  }

  /** Runs a program inside the node's network and mount namespaces (as a process on the node's host). */
  exec(file: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
    if (!this.holder?.pid) throw new Error(`node ${this.name} is not running`);
    return runCapture(
      'nsenter',
      ['-t', String(this.holder.pid), '-m', '-u', '-n', '--', file, ...args],
      opts,
    );
  }

  /** Kills every process of the node, removes its cgroups, mounts (with the mount namespace) and files. */
  async stop(): Promise<void> {
    for (const p of ['kube-proxy', 'kubelet'] as const) {
      const c = this.procs.get(p);
      if (c) await killAndWait(c, 'SIGTERM', 5000);
    }
    // containers, shims and containerd: everything left in the node's cgroups
    for (let round = 0; round < 50; round++) {
      const pids = this.cgroupPids();
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await sleep(100);
    }
    if (this.holder) await killAndWait(this.holder, 'SIGKILL', 5000);
    for (const cg of [...this.cgroups].reverse()) removeCgroupTree(cg);
    rmSync(this.o.runDir, { recursive: true, force: true });
    rmSync(this.o.root, { recursive: true, force: true });
  }

  // ---- internals -------------------------------------------------------------------------------------

  private primaryNetwork(): string {
    return JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'pods',
        plugins: [
          {
            type: 'bridge',
            bridge: 'cni0',
            isGateway: true,
            ipMasq: true,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: this.o.podCIDR }]],
              routes: [{ dst: '0.0.0.0/0' }],
            },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    );
  }

  /** cgroupRoot /NAME for the kubelet's pods, /NAME-sys for the node's daemons and the runtime's shims. */
  private makeCgroups(): void {
    for (const h of cgroupHierarchies()) {
      for (const leaf of [this.o.name, `${this.o.name}-sys`]) {
        const cg = join(h, leaf);
        mkdirSync(cg, { recursive: true });
        if (h.endsWith('/cpuset')) {
          for (const f of ['cpuset.cpus', 'cpuset.mems'])
            writeFileSync(join(cg, f), readFileSync(join(h, f), 'utf8').trim() || '0');
        }
        this.cgroups.push(cg);
      }
    }
  }

  private cgroupPids(): number[] {
    const pids = new Set<number>();
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      try {
        for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n'))
          if (l) pids.add(Number(l));
        for (const e of readdirSync(dir, { withFileTypes: true }))
          if (e.isDirectory()) walk(join(dir, e.name));
      } catch {
        // removed meanwhile
      }
    };
    for (const cg of this.cgroups) walk(cg);
    return [...pids];
  }

  /**
   * The node's namespaces live as long as this holder: a shell that entered the node's netns, made a
   * private mount and UTS namespace, mounted the node's own sysfs (its devices, the host's cgroups kept)
   * and bpffs, bind-mounted the node's directories over the standard host paths, made the root shared
   * again (HostToContainer propagation needs it, as on a real host) and sleeps.
   */
  private async startHolder(): Promise<void> {
    const { o } = this;
    const keep = join(o.root, 'cgroup-keep');
    mkdirSync(keep, { recursive: true });
    const binds = NODE_HOST_PATHS.map((p) => `mkdir -p ${p} && mount --bind ${this.hostPath(p)} ${p}`);
    const script = [
      'set -e',
      `mount --rbind /sys/fs/cgroup ${keep}`,
      'mount -t sysfs sysfs /sys',
      `mount --rbind ${keep} /sys/fs/cgroup`,
      `umount -l ${keep}`,
      ...(o.bpffs === false ? [] : ['mount -t bpf bpf /sys/fs/bpf']),
      ...binds,
      `hostname ${o.name}`,
      'mount --make-rshared /',
      'echo ready',
      'exec sleep infinity',
    ].join('\n');
    const h = spawn(
      'nsenter',
      [`--net=/run/netns/${o.name}`, '--', 'unshare', '--mount', '--uts', '--propagation', 'private', '--',
        'sh', '-c', script], // prettier-ignore
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.holder = h;
    let err = '';
    h.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      h.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      h.once('exit', (code) => reject(new Error(`node ${o.name}: namespace holder exited ${code}: ${err}`)));
    });
  }

  /**
   * Starts a daemon inside the node's namespaces, first moved into the node's -sys cgroups so that
   * whatever it forks (the runtime's shims) is found there by stop().
   */
  private async startProcess(name: NodeProcess, file: string, args: string[]): Promise<void> {
    const pid = this.holder!.pid!;
    const procsFiles = cgroupHierarchies().map((h) => join(h, `${this.o.name}-sys`, 'cgroup.procs'));
    const script = `for f in ${procsFiles.join(' ')}; do echo $$ > $f; done; exec nsenter -t ${pid} -m -u -n -- "$@"`;
    const out = createWriteStream(join(this.o.logDir, `${this.o.name}-${name}.log`), { flags: 'a' });
    const p = spawn('sh', ['-c', script, 'sh', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout?.pipe(out);
    p.stderr?.pipe(out);
    this.procs.set(name, p);
    await sleep(50);
    if (p.exitCode !== null) throw new Error(`${name} on ${this.o.name} exited at once (${p.exitCode})`);
  }

  private writeContainerdConfig(): string {
    const { o } = this;
    const root = join(o.root, 'containerd');
    const toml = `version = 2
root = ${q(root)}
# the standard path (a per-node directory is mounted over it): pod netns files are then where a
# host with this setting keeps them, and the chart's cni.netnsDir names that directory
state = "/run/containerd"
oom_score = 0
[grpc]
  address = ${q(this.containerdSocket)}
[ttrpc]
  address = ${q(`${this.containerdSocket}.ttrpc`)}
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(o.root, 'opt'))}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(o.pauseImage)}
  # pod netns files under the runtime's state dir, not /var/run/netns: the CNI plugin must not
  # depend on seeing them by path (it gets the namespace as a descriptor), and the datapath pods see
  # them only where the chart's cni.netnsDir mounts them
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # without CAP_SYS_RESOURCE runc cannot lower oom_score_adj for the pause container
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${q(join(o.runDir, 'runc'))}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
`;
    const f = join(o.root, 'containerd.toml');
    writeFileSync(f, toml);
    return f;
  }

  private writeKubeletConfig(): string {
    const { o } = this;
    const cfg = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: `/${o.name}`,
      cgroupsPerQOS: true,
      failSwapOn: false,
      address: o.address,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 10248,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: o.cp.pki.caCert },
      },
      authorization: { mode: 'Webhook' },
      clusterDomain: 'cluster.local',
      resolvConf: '/etc/resolv.conf',
      serializeImagePulls: false,
      // images are imported, never pulled: they must never be garbage-collected
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: {
        'memory.available': '100Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      rotateCertificates: false,
      registerNode: true,
      maxPods: 60,
      // the default -999 needs CAP_SYS_RESOURCE
      oomScoreAdj: 0,
      // status and pod lifecycle reacts in seconds, as tests wait on it
      nodeStatusUpdateFrequency: '4s',
      syncFrequency: '10s',
      fileCheckFrequency: '5s',
      podLogsDir: '/var/log/pods',
    };
    const f = join(o.root, 'kubelet.json');
    writeFileSync(f, JSON.stringify(cfg, null, 2));
    return f;
  }

  private writeProxyConfig(kubeconfig: string): string {
    const { o } = this;
    const cfg = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig },
      mode: 'iptables',
      clusterCIDR: o.clusterCIDR,
      hostnameOverride: o.name,
      bindAddress: '0.0.0.0',
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      // the conntrack table is the machine's, not the node's: leave its sysctls alone
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    };
    const f = join(o.root, 'kube-proxy.json');
    writeFileSync(f, JSON.stringify(cfg, null, 2));
    return f;
  }
}

const q = (s: string) => JSON.stringify(s);

async function killAndWait(p: ChildProcess, signal: NodeJS.Signals, ms = 10_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill(signal);
  });
}

/** rmdir, deepest first: a cgroup directory holds only kernel files, which rmdir takes with it. */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still busy (a process that outlived SIGKILL): left for the leak check to report
  }
}
