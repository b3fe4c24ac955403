// Pseudowire cookies: a literal value, or a key of a Secret in the pseudowire's own namespace (never
// another). Secrets are read on demand, not watched (the operator may read only the ones referenced),
// and kept for a minute so a busy reconcile loop does not re-read them.
import type { Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, type KubeApi } from '../kube.js';

const CACHE_MS = 60_000;

export type Cookies = { cookie?: string; peerCookie?: string };

export class CookieResolver {
  private readonly cache = new Map<string, { value: string; at: number }>();

  constructor(private readonly client: Pick<KubeApi, 'get'>) {}

  private async resolve(ns: string, src: NonNullable<Pseudowire['spec']['cookie']>): Promise<string> {
    if (src.value !== undefined) return src.value.toLowerCase();
    const ref = src.secretRef!;
    const ck = `${ns}/${ref.name}/${ref.key}`;
    const hit = this.cache.get(ck);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.value;
    const secret = await this.client.get<{ data?: Record<string, string> }>(
      `/api/v1/namespaces/${ns}/secrets/${ref.name}`,
    );
    const b64 = secret.data?.[ref.key];
    if (b64 === undefined) throw new Error(`Secret ${ns}/${ref.name} has no key ${ref.key}`);
    const v = Buffer.from(b64, 'base64')
      .toString()
      .trim()
      .replace(/^0x/i, '')
      .replaceAll(':', '')
      .toLowerCase();
    if (!/^([0-9a-f]{8}|[0-9a-f]{16})$/.test(v))
      throw new Error(`Secret ${ns}/${ref.name} key ${ref.key} is not a 4- or 8-byte hex cookie`);
    this.cache.set(ck, { value: v, at: Date.now() });
    return v;
  }

  /** Both cookies of a pseudowire, or the reason they cannot be resolved. */
  async of(p: Pseudowire): Promise<Cookies | { error: string }> {
    const ns = p.metadata.namespace ?? 'default';
    try {
      const out: Cookies = {};
      if (p.spec.cookie) out.cookie = await this.resolve(ns, p.spec.cookie);
      if (p.spec.peerCookie) out.peerCookie = await this.resolve(ns, p.spec.peerCookie);
      return out;
    } catch (e) {
      return {
        error:
          e instanceof ApiError && e.status === 404
            ? `cookie Secret not found: ${e.message}`
            : (e as Error).message,
      };
    }
  }
}
