// A real Kubernetes control plane for tests: etcd + kube-apiserver built from Go modules
// (scripts/build-go-tools.sh), started on 127.0.0.1 with throwaway certificates, RBAC on.
// Every identity gets its own client certificate and kubeconfig, so RBAC is exercised for real.
// stop() kills both processes and removes the data dir; call it in a finally / after hook.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync, createWriteStream } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../lib/exec.js';

export interface Identity {
  /** User name, e.g. "system:serviceaccount:kube-l2tp:kube-l2tp-operator". */
  user: string;
  groups?: string[];
}

export interface ControlPlane {
  url: string;
  dir: string;
  binDir: string;
  adminKubeconfig: string;
  /** Kubeconfig for an identity authenticated by a client certificate (created on first use). */
  kubeconfigFor(id: Identity): Promise<string>;
  /** Run the matching kubectl with the admin kubeconfig (or another one). */
  kubectl(args: string[], opts?: { kubeconfig?: string; input?: string }): Promise<string>;
  /** Kill one component (SIGKILL: a crash), keep it down for downMs, start it again and wait for /readyz. */
  restart(component: 'etcd' | 'kube-apiserver', downMs?: number): Promise<void>;
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

const openssl = (args: string[]) => run('openssl', args);

async function clientCert(pki: string, name: string, id: Identity): Promise<{ cert: string; key: string }> {
  const key = join(pki, `${name}.key`);
  const csr = join(pki, `${name}.csr`);
  const cert = join(pki, `${name}.crt`);
  const esc = (s: string) => s.replace(/[/=+,]/g, (c) => `\\${c}`);
  const subj = `/${(id.groups ?? []).map((g) => `O=${esc(g)}/`).join('')}CN=${esc(id.user)}`;
  await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', subj]);
  await openssl([
    'x509', '-req', '-in', csr, '-CA', join(pki, 'ca.crt'), '-CAkey', join(pki, 'ca.key'),
    '-CAcreateserial', '-out', cert, '-days', '2',
  ]); // prettier-ignore
  return { cert, key };
}

function kubeconfigYaml(url: string, caFile: string, cert: string, key: string, user: string): string {
  const q = JSON.stringify;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: test\n  cluster:\n    server: ${q(url)}\n    certificate-authority: ${q(caFile)}`,
    'users:',
    `- name: ${q(user)}\n  user:\n    client-certificate: ${q(cert)}\n    client-key: ${q(key)}`,
    'contexts:',
    `- name: test\n  context:\n    cluster: test\n    user: ${q(user)}`,
    'current-context: test',
    '',
  ].join('\n');
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
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const binDir = toolsBinDir();
  for (const b of ['etcd', 'kube-apiserver', 'kubectl']) {
    if (!existsSync(join(binDir, b))) {
      throw new Error(`${b} not found in ${binDir}: run scripts/build-go-tools.sh (or set KUBE_L2TP_BIN)`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'kube-l2tp-cp-'));
  const pki = join(dir, 'pki');
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
    await run('mkdir', ['-p', pki]);
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(pki, 'ca.key'),
      '-out', join(pki, 'ca.crt'), '-days', '2', '-subj', '/CN=kube-l2tp-test-ca']); // prettier-ignore
    // serving cert for 127.0.0.1 signed by the CA
    const ext = join(pki, 'serving.ext');
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(pki, 'apiserver.key'),
      '-out', join(pki, 'apiserver.csr'), '-subj', '/CN=kube-apiserver']); // prettier-ignore
    await openssl(['x509', '-req', '-in', join(pki, 'apiserver.csr'), '-CA', join(pki, 'ca.crt'),
      '-CAkey', join(pki, 'ca.key'), '-CAcreateserial', '-out', join(pki, 'apiserver.crt'), '-days', '2',
      '-extfile', ext]); // prettier-ignore
    await openssl(['genrsa', '-out', join(pki, 'sa.key'), '2048']);
    const admin = await clientCert(pki, 'admin', { user: 'admin', groups: ['system:masters'] });

    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const logDir = opts.logDir ?? dir;
    const started = new Map<string, { proc: ChildProcess; file: string; args: string[] }>();
    const spawnLogged = (name: string, file: string, args: string[]) => {
      const out = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
      const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
    const url = `https://127.0.0.1:${apiPort}`;
    spawnLogged('kube-apiserver', join(binDir, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${join(pki, 'sa.key')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--max-requests-inflight=2000',
      '--max-mutating-requests-inflight=1000',
      ...(opts.apiserverArgs ?? []),
    ]);
    const ca = readFileSync(join(pki, 'ca.crt'));
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
    const restart = async (component: 'etcd' | 'kube-apiserver', downMs = 0) => {
      const cur = started.get(component);
      if (!cur) throw new Error(`no ${component} in this control plane`);
      cur.proc.kill('SIGKILL');
      await waitExit(cur.proc, 5000);
      procs.splice(procs.indexOf(cur.proc), 1);
      await new Promise((res) => setTimeout(res, downMs));
      spawnLogged(component, cur.file, cur.args);
      await waitReady();
    };
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfig, kubeconfigYaml(url, join(pki, 'ca.crt'), admin.cert, admin.key, 'admin'));
    let n = 0;
    const kubeconfigFor = async (id: Identity) => {
      const name = `id${++n}`;
      const c = await clientCert(pki, name, id);
      const path = join(dir, `${name}.kubeconfig`);
      writeFileSync(path, kubeconfigYaml(url, join(pki, 'ca.crt'), c.cert, c.key, id.user));
      return path;
    };
    const kubectl = (args: string[], o: { kubeconfig?: string; input?: string } = {}) =>
      run(join(binDir, 'kubectl'), ['--kubeconfig', o.kubeconfig ?? adminKubeconfig, ...args], {
        ...(o.input !== undefined ? { input: o.input } : {}),
      });
    return { url, dir, binDir, adminKubeconfig, kubeconfigFor, kubectl, restart, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
