// Pseudowire cookies: a literal value, or a key of a Secret in the pseudowire's own namespace (never
// another). Secrets are read on demand, not watched (the operator may read only the ones referenced).
// One read per Secret serves every pseudowire that refers to it: a found Secret is kept for a minute,
// a missing or unreadable one for a few seconds (so a node render over many pseudowires naming a
// missing Secret costs one GET, not one each), and concurrent lookups share the request in flight.
import type { Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, type KubeApi } from '../../lib/kube/client.js';

const CACHE_MS = 60_000;
const MISS_CACHE_MS = 5_000;

type SecretData = Record<string, string> | undefined;

export type Cookies = { cookie?: string; peerCookie?: string };

export class CookieResolver {
  private readonly cache = new Map<string, { read: Promise<SecretData>; at: number; ok?: boolean }>();

  constructor(
    private readonly client: Pick<KubeApi, 'get'>,
    private readonly now: () => number = Date.now,
  ) {}

  private secret(ns: string, name: string): Promise<SecretData> {
    const k = `${ns}/${name}`;
    const hit = this.cache.get(k);
    // in flight (ok undefined), or settled and not yet stale
    if (hit && (hit.ok === undefined || this.now() - hit.at < (hit.ok ? CACHE_MS : MISS_CACHE_MS)))
      return hit.read;
    const entry: { read: Promise<SecretData>; at: number; ok?: boolean } = {
      read: this.client
        .get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${ns}/secrets/${name}`)
        .then(
          (s) => {
            Object.assign(entry, { ok: true, at: this.now() });
            return s.data;
          },
          (e: unknown) => {
            Object.assign(entry, { ok: false, at: this.now() });
            throw e;
          },
        ),
      at: this.now(),
    };
    entry.read.catch(() => undefined); // a failed read is reported to whoever awaits it
    this.cache.set(k, entry);
    return entry.read;
  }

  private async resolve(ns: string, src: NonNullable<Pseudowire['spec']['cookie']>): Promise<string> {
    if (src.value !== undefined) return src.value.toLowerCase();
    const ref = src.secretRef!;
    const b64 = (await this.secret(ns, ref.name))?.[ref.key];
    if (b64 === undefined) throw new Error(`Secret ${ns}/${ref.name} has no key ${ref.key}`);
    const v = Buffer.from(b64, 'base64')
      .toString()
      .trim()
      .replace(/^0x/i, '')
      .replaceAll(':', '')
      .toLowerCase();
    if (!/^([0-9a-f]{8}|[0-9a-f]{16})$/.test(v))
      throw new Error(`Secret ${ns}/${ref.name} key ${ref.key} is not a 4- or 8-byte hex cookie`);
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
