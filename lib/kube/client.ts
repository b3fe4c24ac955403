// The project's one Kubernetes client, used by the operator and the node agent: a small REST client
// on node:https with the auth of a KubeConfig (@kubernetes/client-node loads kubeconfigs and
// in-cluster credentials). It counts every request by verb and resource (for metrics and the bench)
// and streams watches. Its informer is informer.ts, which says why it is not client-node's.
import { Agent, request, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown) => e instanceof ApiError && e.status === 409;
export const isGone = (e: unknown) => e instanceof ApiError && e.status === 410;

export interface RequestRecord {
  verb: string;
  resource: string;
  code: number;
}

export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export function resourcePath(r: ResourceRef): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespace !== undefined ? `/namespaces/${encodeURIComponent(r.namespace)}` : '';
  const name = r.name !== undefined ? `/${encodeURIComponent(r.name)}` : '';
  const sub = r.subresource !== undefined ? `/${r.subresource}` : '';
  return `${base}${ns}/${r.plural}${name}${sub}`;
}

function resourceOf(path: string): string {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  // /api/v1/[namespaces/x/]plural[/name[/sub]]  or  /apis/g/v/...
  let i = parts[0] === 'api' ? 2 : 3;
  if (parts[i] === 'namespaces' && parts.length > i + 2) i += 2;
  const plural = parts[i] ?? '';
  const sub = parts[i + 2];
  return sub ? `${plural}/${sub}` : plural;
}

export type PatchType = 'merge' | 'json' | 'strategic';
const PATCH_CT: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** The verbs the controllers and the leader elector use (a test passes an in-memory API). */
export type KubeApi = Pick<KubeClient, 'get' | 'create' | 'replace' | 'patch' | 'delete' | 'watch'>;

/**
 * How long the kubeconfig's credentials are used before they are applied again: a pod's projected
 * ServiceAccount token is rotated by the kubelet and the old one expires, and an exec plugin's
 * credential expires too (client-go reads the token file again as often).
 */
const CREDENTIALS_MS = 60_000;

export class KubeClient {
  private readonly server: URL;
  private readonly agent: Agent;
  private opts: RequestOptions = {};
  private optsAt: number | undefined;
  private applying: Promise<void> | undefined;
  /** Called once per completed request. */
  onRequest: ((r: RequestRecord) => void) | undefined;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.agent = new Agent({ keepAlive: true, maxSockets: 32 });
  }

  /** TLS and auth options from the kubeconfig, applied again once they are a minute old. */
  private async options(): Promise<RequestOptions> {
    if (this.optsAt === undefined || Date.now() - this.optsAt >= CREDENTIALS_MS) {
      this.applying ??= (async () => {
        const o: RequestOptions = {};
        await this.kc.applyToHTTPSOptions(o);
        this.opts = o;
        this.optsAt = Date.now();
      })().finally(() => (this.applying = undefined));
      await this.applying;
    }
    return this.opts;
  }

  static fromFile(path: string): KubeClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc);
  }

  close(): void {
    this.agent.destroy();
  }

  private async raw(
    method: string,
    path: string,
    body: unknown,
    contentType: string,
    onData?: (res: import('node:http').IncomingMessage) => void,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    const opts = await this.options();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      accept: 'application/json',
      ...(opts.headers as object),
    };
    if (payload) {
      headers['content-type'] = contentType;
      headers['content-length'] = payload.length;
    }
    const fn = this.server.protocol === 'http:' ? httpRequest : request;
    return new Promise((resolve, reject) => {
      const req = fn(
        {
          ...opts,
          agent: this.server.protocol === 'http:' ? undefined : this.agent,
          protocol: this.server.protocol,
          hostname: this.server.hostname,
          port: this.server.port,
          method,
          path: (this.server.pathname.replace(/\/$/, '') || '') + path,
          headers,
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const verb = method === 'GET' && onData ? 'WATCH' : method;
          this.onRequest?.({ verb, resource: resourceOf(path), code: res.statusCode ?? 0 });
          if (onData && res.statusCode === 200) {
            onData(res);
            res.on('end', () => resolve({ status: 200, text: '' }));
            res.on('error', reject);
            res.on('close', () => resolve({ status: 200, text: '' }));
            return;
          }
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const r = await this.raw(method, path, body, contentType);
    if (r.status >= 200 && r.status < 300) return (r.text ? JSON.parse(r.text) : undefined) as T;
    let reason = '';
    let message = r.text;
    try {
      const s = JSON.parse(r.text) as { reason?: string; message?: string };
      reason = s.reason ?? '';
      message = s.message ?? r.text;
    } catch {
      /* not a Status */
    }
    throw new ApiError(r.status, reason, `${method} ${path.split('?')[0]}: ${r.status} ${message}`);
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  create<T>(path: string, obj: unknown): Promise<T> {
    return this.request<T>('POST', path, obj);
  }
  replace<T>(path: string, obj: unknown): Promise<T> {
    return this.request<T>('PUT', path, obj);
  }
  patch<T>(path: string, patch: unknown, type: PatchType = 'merge'): Promise<T> {
    return this.request<T>('PATCH', path, patch, PATCH_CT[type]);
  }
  delete(path: string, opts?: { gracePeriodSeconds?: number; uid?: string }): Promise<unknown> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts?.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts?.uid !== undefined) body.preconditions = { uid: opts.uid };
    return this.request('DELETE', path, body);
  }

  /** Stream a watch; resolves when the server closes it or the signal aborts; throws ApiError on a non-200. */
  async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    let buf = '';
    let failure: { status: number; text: string } | undefined;
    const r = await this.raw(
      'GET',
      path,
      undefined,
      '',
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) onEvent(JSON.parse(line) as WatchEvent<T>);
          }
        });
      },
      signal,
    ).catch((e: unknown) => {
      if (signal.aborted) return { status: 200, text: '' };
      throw e;
    });
    if (r.status !== 200) failure = r;
    if (failure) {
      let reason = '';
      try {
        reason = (JSON.parse(failure.text) as { reason?: string }).reason ?? '';
      } catch {
        /* ignore */
      }
      throw new ApiError(failure.status, reason, `watch ${path}: ${failure.status} ${failure.text}`);
    }
  }
}
