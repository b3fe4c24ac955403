// Throwaway certificates for test clusters (openssl): one CA, serving certificates with their SANs,
// client certificates whose CN/O are the Kubernetes user and groups, and kubeconfigs around them.
// Both the plain control plane and the real-node cluster use this one place.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/exec.js';

export interface Identity {
  /** User name, e.g. "system:serviceaccount:kube-l2tp:kube-l2tp-operator". */
  user: string;
  groups?: string[];
}

export interface CertPair {
  cert: string;
  key: string;
}

const openssl = (args: string[]) => run('openssl', args);

export class Pki {
  readonly caCert: string;
  readonly caKey: string;

  private constructor(readonly dir: string) {
    this.caCert = join(dir, 'ca.crt');
    this.caKey = join(dir, 'ca.key');
  }

  /** A new CA in dir (which must exist). */
  static async create(dir: string, cn = 'kube-l2tp-test-ca'): Promise<Pki> {
    const p = new Pki(dir);
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p.caKey, '-out', p.caCert,
      '-days', '2', '-subj', `/CN=${cn}`]); // prettier-ignore
    return p;
  }

  private async sign(name: string, subj: string, ext: string): Promise<CertPair> {
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.crt`);
    const extFile = join(this.dir, `${name}.ext`);
    writeFileSync(extFile, ext);
    await openssl([
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      subj,
    ]);
    // A random serial per certificate: nodes join in parallel, and openssl's shared serial file
    // (-CAcreateserial) is read and rewritten without a lock, so concurrent signs corrupt it.
    const serial = `0x${randomBytes(16).toString('hex').replace(/^./, '1')}`;
    await openssl(['x509', '-req', '-in', csr, '-CA', this.caCert, '-CAkey', this.caKey, '-set_serial', serial,
      '-out', cert, '-days', '2', '-extfile', extFile]); // prettier-ignore
    return { cert, key };
  }

  /** A serving certificate for these IP addresses and DNS names. */
  serving(name: string, cn: string, sans: { ips?: string[]; dns?: string[] }): Promise<CertPair> {
    const alt = [...(sans.ips ?? []).map((i) => `IP:${i}`), ...(sans.dns ?? []).map((d) => `DNS:${d}`)];
    return this.sign(name, `/CN=${cn}`, `subjectAltName=${alt.join(',')}\nextendedKeyUsage=serverAuth\n`);
  }

  /** A client certificate: CN is the user, every O a group (how the apiserver reads x509 identities). */
  client(name: string, id: Identity): Promise<CertPair> {
    const esc = (s: string) => s.replace(/[/=+,]/g, (c) => `\\${c}`);
    const subj = `/${(id.groups ?? []).map((g) => `O=${esc(g)}/`).join('')}CN=${esc(id.user)}`;
    return this.sign(name, subj, 'extendedKeyUsage=clientAuth\n');
  }

  /** A kubeconfig file for server, authenticated by a client certificate; returns its path. */
  kubeconfig(path: string, server: string, c: CertPair, user: string): string {
    writeFileSync(path, kubeconfigYaml(server, this.caCert, c.cert, c.key, user));
    return path;
  }
}

/**
 * A kubeconfig around a bearer token (a ServiceAccount's, from the TokenRequest API). The CA goes in
 * inline: the file is also read where the harness's paths do not exist (inside a VM guest).
 */
export function tokenKubeconfigYaml(url: string, caPem: string, token: string, user: string): string {
  const q = JSON.stringify;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: test\n  cluster:\n    server: ${q(url)}\n    certificate-authority-data: ${q(Buffer.from(caPem).toString('base64'))}`,
    'users:',
    `- name: ${q(user)}\n  user:\n    token: ${q(token)}`,
    'contexts:',
    `- name: test\n  context:\n    cluster: test\n    user: ${q(user)}`,
    'current-context: test',
    '',
  ].join('\n');
}

export function kubeconfigYaml(url: string, caFile: string, cert: string, key: string, user: string): string {
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
