// A real Kubernetes control plane for tests: etcd + kube-apiserver built from Go modules
// (scripts/build-go-tools.sh), started on 127.0.0.1 with throwaway certificates, RBAC on.
// Every identity gets its own client certificate and kubeconfig, so RBAC is exercised for real.
// stop() kills both processes and removes the data dir; call it in a finally / after hook.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { connect, createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../lib/exec.js';
import { Pki, tokenKubeconfigYaml, type Identity } from './pki.js';

export type { Identity } from './pki.js';

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

export interface ControlPlane {
  /** The apiserver as this process reaches it (127.0.0.1). */
  url: string;
  /** The apiserver as nodes and pods reach it (the same as url unless it runs in a netns). */
  internalUrl: string;
  dir: string;
  binDir: string;
  pki: Pki;
  adminKubeconfig: string;
  /** Kubeconfig for an identity authenticated by a client certificate (created on first use). */
  kubeconfigFor(id: Identity, server?: string): Promise<string>;
  /**
   * Kubeconfig for a ServiceAccount, with a token from the TokenRequest API; bound to a Pod when
   * given, as the kubelet's projected token is (the chart's node-bound write policy reads the binding).
   */
  serviceAccountKubeconfig(
    namespace: string,
    serviceAccount: string,
    opts?: { boundPod?: { name: string; uid?: string }; server?: string; duration?: string },
  ): Promise<string>;
  /** Run the matching kubectl with the admin kubeconfig (or another one). */
  kubectl(
    args: string[],
    opts?: { kubeconfig?: string; input?: string; timeoutMs?: number },
  ): Promise<string>;
  /** Kill one component (SIGKILL: a crash), keep it down for downMs, start it again and wait for /readyz. */
  restart(component: Component, downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export function toolsBinDir(): string {
  const fromEnv = process.env.KUBE_L2TP_BIN;
  if (fromEnv) return fromEnv;
  const cache =
    process.env.KUBE_L2TP_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kube-l2tp');
  return join(cache, 'bin');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function httpsGet(
  url: string,
  ca: Buffer,
  cert: Buffer,
  key: Buffer,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, cert, key, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function waitExit(p: ChildProcess, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      p.kill('SIGKILL');
    }, ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export interface StartOptions {
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /** Keep logs here instead of the data dir (which is removed on stop). */
  logDir?: string;
  /**
   * The control plane of a cluster with real nodes: Node,RBAC authorization, the ServiceAccount and
   * NodeRestriction admission plugins, kube-controller-manager and kube-scheduler, all inside this
   * network namespace (which must exist), the apiserver listening on address:6443 there. This process
   * reaches it through a relay on 127.0.0.1 (nothing is added to the root namespace's routes).
   */
  cluster?: { netns: string; address: string; serviceCIDR: string; clusterCIDR: string };
}

/** Where the apiserver listens inside a cluster's control-plane namespace. */
export const APISERVER_PORT = 6443;

/** The first address of a service CIDR: the ClusterIP of the "kubernetes" Service. */
function firstServiceIP(cidr: string): string {
  const [base] = cidr.split('/');
  const o = base!.split('.').map(Number);
  o[3] = o[3]! + 1;
  return o.join('.');
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const binDir = toolsBinDir();
  const cl = opts.cluster;
  const need = [
    'etcd',
    'kube-apiserver',
    'kubectl',
    ...(cl ? ['kube-controller-manager', 'kube-scheduler'] : []),
  ];
  for (const b of need) {
    if (!existsSync(join(binDir, b))) {
      throw new Error(`${b} not found in ${binDir}: run scripts/build-go-tools.sh (or set KUBE_L2TP_BIN)`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'kube-l2tp-cp-'));
  const pkiDir = join(dir, 'pki');
  const procs: ChildProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of procs.reverse()) {
      p.kill('SIGTERM');
      await waitExit(p, 5000);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync(pkiDir, { recursive: true });
    const pki = await Pki.create(pkiDir);
    const ips = ['127.0.0.1', ...(cl ? [cl.address, firstServiceIP(cl.serviceCIDR)] : [])];
    const dns = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local']; // prettier-ignore
    const serving = await pki.serving('apiserver', 'kube-apiserver', { ips, dns });
    const saKey = join(pkiDir, 'sa.key');
    await run('openssl', ['genrsa', '-out', saKey, '2048']);
    const admin = await pki.client('admin', { user: 'admin', groups: ['system:masters'] });

    // In a netns every component has the namespace's ports to itself; on the host they are picked free.
    const [etcdPort, peerPort, apiPort] = cl
      ? [2379, 2380, APISERVER_PORT]
      : [await freePort(), await freePort(), await freePort()];
    const logDir = opts.logDir ?? dir;
    const started = new Map<string, { proc: ChildProcess; file: string; args: string[] }>();
    const inNetns = (file: string, args: string[]): [string, string[]] =>
      cl ? ['nsenter', [`--net=/run/netns/${cl.netns}`, '--', file, ...args]] : [file, args];
    const spawnLogged = (name: string, file: string, args: string[]) => {
      const out = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
      const [f, a] = inNetns(file, args);
      const p = spawn(f, a, { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout?.pipe(out);
      p.stderr?.pipe(out);
      procs.push(p);
      started.set(name, { proc: p, file, args });
      return p;
    };
    spawnLogged('etcd', join(binDir, 'etcd'), [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const internalUrl = cl ? `https://${cl.address}:${apiPort}` : `https://127.0.0.1:${apiPort}`;
    let kubeletClient: { cert: string; key: string } | undefined;
    if (cl) {
      kubeletClient = await pki.client('apiserver-kubelet-client', {
        user: 'kube-apiserver-kubelet-client',
        groups: ['system:masters'],
      });
    }
    spawnLogged('kube-apiserver', join(binDir, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--bind-address=${cl ? '0.0.0.0' : '127.0.0.1'}`,
      `--advertise-address=${cl ? cl.address : '127.0.0.1'}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${pkiDir}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-account-issuer=${internalUrl}`,
      `--service-account-key-file=${saKey}`,
      `--service-account-signing-key-file=${saKey}`,
      `--service-cluster-ip-range=${cl ? cl.serviceCIDR : '10.0.0.0/24'}`,
      '--allow-privileged=true',
      '--max-requests-inflight=2000',
      '--max-mutating-requests-inflight=1000',
      ...(cl
        ? [
            '--authorization-mode=Node,RBAC',
            '--enable-admission-plugins=NodeRestriction',
            '--kubelet-preferred-address-types=InternalIP',
            `--kubelet-client-certificate=${kubeletClient!.cert}`,
            `--kubelet-client-key=${kubeletClient!.key}`,
          ]
        : ['--authorization-mode=RBAC', '--disable-admission-plugins=ServiceAccount']),
      ...(opts.apiserverArgs ?? []),
    ]);
    // This process reaches an apiserver inside a netns through a relay on its own loopback.
    const url = cl ? `https://127.0.0.1:${await relayFromNetns(cl.netns, apiPort, dir, procs)}` : internalUrl;
    const ca = readFileSync(pki.caCert);
    const cert = readFileSync(admin.cert);
    const key = readFileSync(admin.key);
    const waitReady = async () => {
      const deadline = Date.now() + 90_000;
      for (;;) {
        const api = started.get('kube-apiserver')!.proc;
        if (api.exitCode !== null) {
          const log = readFileSync(join(logDir, 'kube-apiserver.log'), 'utf8').slice(-3000);
          throw new Error(`kube-apiserver exited ${api.exitCode}:\n${log}`);
        }
        const r = await httpsGet(`${url}/readyz`, ca, cert, key).catch(() => ({ status: 0, body: '' }));
        if (r.status === 200) return;
        if (Date.now() > deadline)
          throw new Error(`kube-apiserver not ready after 90 s: ${r.status} ${r.body}`);
        await new Promise((res) => setTimeout(res, 300));
      }
    };
    await waitReady();
    const restart = async (component: Component, downMs = 0) => {
      const cur = started.get(component);
      if (!cur) throw new Error(`no ${component} in this control plane`);
      cur.proc.kill('SIGKILL');
      await waitExit(cur.proc, 5000);
      procs.splice(procs.indexOf(cur.proc), 1);
      await new Promise((res) => setTimeout(res, downMs));
      spawnLogged(component, cur.file, cur.args);
      await waitReady();
    };
    const adminKubeconfig = pki.kubeconfig(join(dir, 'admin.kubeconfig'), url, admin, 'admin');
    let n = 0;
    const kubeconfigFor = async (id: Identity, server = url) => {
      const name = `id${++n}`;
      const c = await pki.client(name, id);
      return pki.kubeconfig(join(dir, `${name}.kubeconfig`), server, c, id.user);
    };
    if (cl) {
      // as kubeadm runs them: own identities, service-account credentials per controller
      const cm = await kubeconfigFor({ user: 'system:kube-controller-manager' }, internalUrl);
      const sched = await kubeconfigFor({ user: 'system:kube-scheduler' }, internalUrl);
      spawnLogged('kube-controller-manager', join(binDir, 'kube-controller-manager'), [
        `--kubeconfig=${cm}`,
        `--authentication-kubeconfig=${cm}`,
        `--authorization-kubeconfig=${cm}`,
        '--bind-address=127.0.0.1',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${pki.caCert}`,
        `--cluster-signing-cert-file=${pki.caCert}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        `--cluster-cidr=${cl.clusterCIDR}`,
        `--service-cluster-ip-range=${cl.serviceCIDR}`,
        '--leader-elect=false',
        '--controllers=*,bootstrapsigner,tokencleaner',
        // a node that stops reporting is noticed in seconds, not the default 40 s (fault tests)
        '--node-monitor-grace-period=20s',
      ]);
      spawnLogged('kube-scheduler', join(binDir, 'kube-scheduler'), [
        `--kubeconfig=${sched}`,
        `--authentication-kubeconfig=${sched}`,
        `--authorization-kubeconfig=${sched}`,
        '--bind-address=127.0.0.1',
        '--leader-elect=false',
      ]);
    }
    const kubectl = (args: string[], o: { kubeconfig?: string; input?: string; timeoutMs?: number } = {}) =>
      run(join(binDir, 'kubectl'), ['--kubeconfig', o.kubeconfig ?? adminKubeconfig, ...args], {
        ...(o.input !== undefined ? { input: o.input } : {}),
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      });
    const serviceAccountKubeconfig: ControlPlane['serviceAccountKubeconfig'] = async (
      namespace,
      serviceAccount,
      o = {},
    ) => {
      const bound = o.boundPod
        ? [
            '--bound-object-kind=Pod',
            `--bound-object-name=${o.boundPod.name}`,
            ...(o.boundPod.uid ? [`--bound-object-uid=${o.boundPod.uid}`] : []),
          ]
        : [];
      const duration = `--duration=${o.duration ?? '1h'}`;
      const token = (
        await kubectl(['-n', namespace, 'create', 'token', serviceAccount, duration, ...bound])
      ).trim();
      const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
      const file = join(dir, `sa${++n}.kubeconfig`);
      writeFileSync(
        file,
        tokenKubeconfigYaml(o.server ?? url, readFileSync(pki.caCert, 'utf8'), token, user),
      );
      return file;
    };
    return {
      url,
      internalUrl,
      dir,
      binDir,
      pki,
      adminKubeconfig,
      kubeconfigFor,
      serviceAccountKubeconfig,
      kubectl,
      restart,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Makes a TCP port listening inside a netns reachable on this namespace's 127.0.0.1 (a free port,
 * returned), through a unix socket between two socat relays: nothing is routed off the machine.
 */
async function relayFromNetns(
  netns: string,
  port: number,
  dir: string,
  procs: ChildProcess[],
): Promise<number> {
  const sock = join(dir, `relay-${netns}-${port}.sock`);
  const inside = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'socat',
    `UNIX-LISTEN:${sock},fork,unlink-early`, `TCP:127.0.0.1:${port}`], { stdio: 'ignore' }); // prettier-ignore
  procs.push(inside);
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  const local = await freePort();
  const outside = spawn(
    'socat',
    [`TCP-LISTEN:${local},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sock}`],
    {
      stdio: 'ignore',
    },
  );
  procs.push(outside);
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((res) => {
      const c = connect(local, '127.0.0.1', () => {
        c.destroy();
        res(true);
      });
      c.on('error', () => res(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return local;
}
