// Pseudowire cookies: a literal value, or a key of a Secret in the pseudowire's own namespace (never
// another). Secrets are read on demand, not watched (the operator may read only the ones referenced).
// One read per Secret serves every pseudowire that refers to it: a found Secret is kept for a minute,
// a missing or unreadable one for a few seconds, twice as long after each miss in a row up to that
// minute (so a node render over many pseudowires naming a missing Secret costs one GET, not one each),
// and concurrent lookups share the request in flight. Each Secret a pseudowire names is read again when
// its read goes stale (reconcileSecret: one read per Secret, however many pseudowires name it), and only
// when what it holds changed (created late, rotated, deleted) are the pseudowires naming it reconciled
// again (onChange); at rest they are not.
// The Pseudowire's author may not be able to read its namespace's Secrets: whatever is wrong with a
// reference (no such Secret, no access, no such key, not a cookie) the status says the same thing, so
// a Pseudowire cannot probe Secrets; the particular reason goes to the operator's log only.
import type { Pseudowire } from '../../lib/api/schemas.js';
import { deepEqual } from '../../lib/deep-equal.js';
import { ApiError, type KubeApi } from '../../lib/kube/client.js';
import type { ReconcileContext, ReconcileResult } from './context.js';

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
  /** What the Secret held, once read. */
  data?: SecretData;
}

/** The Secrets ("namespace/name") a pseudowire names: always of its own namespace. */
export function secretKeysOf(p: Pseudowire): string[] {
  const ns = p.metadata.namespace ?? 'default';
  return [p.spec.cookie?.secretRef, p.spec.peerCookie?.secretRef].flatMap((r) =>
    r ? [`${ns}/${r.name}`] : [],
  );
}

export class CookieResolver {
  private readonly cache = new Map<string, Entry>();

  /**
   * `keepMs`: how long a found Secret is trusted, and the longest a missing one is. `onChange`: a
   * Secret read again holds something else than before (or was found, or is gone).
   */
  constructor(
    private readonly client: Pick<KubeApi, 'get'>,
    private readonly now: () => number = Date.now,
    private readonly keepMs = CACHE_MS,
    private readonly onChange?: (namespace: string, name: string) => void,
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
        // resourceVersion=0: served from the apiserver's watch cache (a moment behind at most), not
        // a quorum read of etcd each time; a read a minute needs nothing fresher
        .get<{ data?: Record<string, string> }>(
          `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets/${encodeURIComponent(name)}?resourceVersion=0`,
        )
        .then(
          (s) => {
            Object.assign(entry, { ok: true, at: this.now(), misses: 0, data: s.data });
            if (hit && (!hit.ok || !deepEqual(hit.data, s.data))) this.onChange?.(ns, name);
            return s.data;
          },
          (e: unknown) => {
            Object.assign(entry, { ok: false, at: this.now(), misses: (hit?.misses ?? 0) + 1 });
            if (hit?.ok) this.onChange?.(ns, name);
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
   * In how many ms the read of Secret `key` ("namespace/name") goes stale: 0 when it has not been
   * read, or is stale; while in flight, `keepMs`.
   */
  staleInMs(key: string): number {
    const e = this.cache.get(key);
    if (!e) return 0;
    if (e.ok === undefined) return this.keepMs;
    return Math.max(0, this.ttl(e) - (this.now() - e.at));
  }

  /** Reads Secret `key` again (onChange says whether it changed); a failed read is a miss. */
  async refresh(key: string): Promise<void> {
    const i = key.indexOf('/');
    await this.secret(key.slice(0, i), key.slice(i + 1)).catch(() => undefined);
  }

  /** Drops what is known of Secret `key` (no pseudowire names it any more). */
  forget(key: string): void {
    this.cache.delete(key);
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

/**
 * A Secret that pseudowires name ("namespace/name"): read again each time its read goes stale, which
 * requeues the pseudowires naming it when it changed (the resolver's onChange). Secrets are not
 * watched: the operator may only get them, and only those of a pseudowire's own namespace.
 */
export async function reconcileSecret(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  if (ctx.caches.pwsBySecret.count(key) === 0) {
    ctx.cookies.forget(key);
    return;
  }
  const left = ctx.cookies.staleInMs(key);
  if (left > 0) return { requeueAfterMs: left };
  await ctx.cookies.refresh(key);
  return { requeueAfterMs: Math.max(1, ctx.cookies.staleInMs(key)) };
}
