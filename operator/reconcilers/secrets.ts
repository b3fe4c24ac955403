// Pseudowire cookies: a literal value, or a key of a Secret in the pseudowire's own namespace (never
// another). Secrets are read on demand, not watched (the operator may read only the ones referenced).
// One read per Secret serves every pseudowire that refers to it: a found Secret is kept for a minute,
// a missing or unreadable one for a few seconds (so a node render over many pseudowires naming a
// missing Secret costs one GET, not one each), and concurrent lookups share the request in flight.
// The Pseudowire's author may not be able to read its namespace's Secrets: whatever is wrong with a
// reference (no such Secret, no access, no such key, not a cookie) the status says the same thing, so
// a Pseudowire cannot probe Secrets; the particular reason goes to the operator's log only.
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
        .get<{ data?: Record<string, string> }>(
          `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets/${encodeURIComponent(name)}`,
        )
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

  /**
   * Both cookies of a pseudowire, or why not: `error` (for status and events) is one message whatever
   * went wrong, `detail` (for the operator's log) says what.
   */
  async of(p: Pseudowire): Promise<Cookies | { error: string; detail: string }> {
    const ns = p.metadata.namespace ?? 'default';
    const out: Cookies = {};
    for (const which of ['cookie', 'peerCookie'] as const) {
      const src = p.spec[which];
      if (!src) continue;
      try {
        out[which] = await this.resolve(ns, src);
      } catch (e) {
        const ref = src.secretRef!;
        return {
          error:
            `spec.${which}.secretRef: Secret ${ref.name}, key ${ref.key} cannot be used: it must be a Secret ` +
            `of namespace ${ns} that the operator can read, holding the cookie as 8 or 16 hex digits under that key`,
          detail: e instanceof ApiError ? `HTTP ${e.status}: ${e.message}` : (e as Error).message,
        };
      }
    }
    return out;
  }
}
