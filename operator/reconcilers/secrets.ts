// Pseudowire cookies: a literal value, or a key of a Secret in the pseudowire's own namespace (never
// another). Secrets are read on demand, not watched (the operator may read only the ones referenced).
// One read per Secret serves every pseudowire that refers to it: a found Secret is kept for a minute,
// a missing or unreadable one for a few seconds, twice as long after each miss in a row up to that
// minute (so a node render over many pseudowires naming a missing Secret costs one GET, not one each),
// and concurrent lookups share the request in flight. A pseudowire naming a Secret is reconciled again
// when its read goes stale (recheckInMs): that is how a Secret created late, rotated or deleted is seen.
// The Pseudowire's author may not be able to read its namespace's Secrets: whatever is wrong with a
// reference (no such Secret, no access, no such key, not a cookie) the status says the same thing, so
// a Pseudowire cannot probe Secrets; the particular reason goes to the operator's log only.
import type { Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, type KubeApi } from '../../lib/kube/client.js';

export const CACHE_MS = 60_000;
const MISS_CACHE_MS = 5_000;

type SecretData = Record<string, string> | undefined;

export type Cookies = { cookie?: string; peerCookie?: string };

interface Entry {
  read: Promise<SecretData>;
  at: number;
  /** undefined while in flight */
  ok?: boolean;
  /** Misses in a row, this one included. */
  misses: number;
}

export class CookieResolver {
  private readonly cache = new Map<string, Entry>();

  /** `keepMs`: how long a found Secret is trusted, and the longest a missing one is. */
  constructor(
    private readonly client: Pick<KubeApi, 'get'>,
    private readonly now: () => number = Date.now,
    private readonly keepMs = CACHE_MS,
  ) {}

  private ttl(e: Entry): number {
    return e.ok ? this.keepMs : Math.min(MISS_CACHE_MS * 2 ** (e.misses - 1), this.keepMs);
  }

  private secret(ns: string, name: string): Promise<SecretData> {
    const k = `${ns}/${name}`;
    const hit = this.cache.get(k);
    // in flight (ok undefined), or settled and not yet stale
    if (hit && (hit.ok === undefined || this.now() - hit.at < this.ttl(hit))) return hit.read;
    const entry: Entry = {
      read: this.client
        .get<{ data?: Record<string, string> }>(
          `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets/${encodeURIComponent(name)}`,
        )
        .then(
          (s) => {
            Object.assign(entry, { ok: true, at: this.now(), misses: 0 });
            return s.data;
          },
          (e: unknown) => {
            Object.assign(entry, { ok: false, at: this.now(), misses: (hit?.misses ?? 0) + 1 });
            throw e;
          },
        ),
      at: this.now(),
      misses: hit?.misses ?? 0,
    };
    entry.read.catch(() => undefined); // a failed read is reported to whoever awaits it
    this.cache.set(k, entry);
    return entry.read;
  }

  /**
   * In how many ms a Secret `p` names is read again (its read goes stale); undefined when it names
   * none. Not read yet, or in flight: `keepMs`.
   */
  recheckInMs(p: Pseudowire): number | undefined {
    let soonest: number | undefined;
    for (const src of [p.spec.cookie, p.spec.peerCookie]) {
      const ref = src?.secretRef;
      if (!ref) continue;
      const e = this.cache.get(`${p.metadata.namespace ?? 'default'}/${ref.name}`);
      const left = e?.ok === undefined ? this.keepMs : this.ttl(e) - (this.now() - e.at);
      soonest = Math.min(soonest ?? Infinity, Math.max(1, left));
    }
    return soonest;
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
