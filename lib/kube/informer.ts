// List + watch into an in-memory store: resourceVersion bookkeeping, bookmarks, 410 Gone -> re-list,
// exponential backoff on errors. Handlers get (type, obj, old) after the store is updated. The
// operator watches every kind through it and the agent its own node state.
// Not @kubernetes/client-node's ListWatch: its 1.x list is one unpaginated request (thousands of
// pseudowires in one response) and it stops on a watch error until restarted by hand, and 2.x, which
// would be the one to adopt, does not load on Node 20 (its undici 8 needs Node 22), the runtime of
// the image and of the project's supported range.
import type { Logger } from '../log.js';
import { isGone, type KubeClient, type WatchEvent } from './client.js';
import type { KObject } from '../api/schemas.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type Handler<T> = (type: EventType, obj: T, old: T | undefined) => void;

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export const objectKey = (o: KObject) =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

interface List<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface InformerOptions {
  /** Collection path, e.g. /apis/l2tp.kube-l2tp.io/v1alpha1/pseudowires */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** apiVersion/kind to stamp on list items (lists omit them). */
  apiVersion: string;
  kind: string;
  pageSize?: number;
  watchTimeoutSeconds?: number;
  /**
   * Keeps only what the reader uses of each object (e.g. a Node's addresses, not its images): the
   * store holds what this returns, and handlers compare those.
   */
  transform?: (o: KObject) => KObject;
}

/** What the controller reads an informer through: a synced cache of one kind, and its events. */
export interface InformerCache<T> {
  on(h: Handler<T>): void;
  hasSynced(): boolean;
  waitForSync(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
  get(key: string): T | undefined;
  list(): T[];
}

export class Informer<T extends KObject> implements InformerCache<T> {
  readonly store = new Map<string, T>();
  private handlers: Handler<T>[] = [];
  private rv = '';
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private abort = new AbortController();
  private stopped = false;
  private loop: Promise<void> | undefined;
  private live = false;
  relists = 0;

  constructor(
    private readonly client: Pick<KubeClient, 'get' | 'watch'>,
    private readonly opts: InformerOptions,
    private readonly log: Logger,
  ) {}

  on(h: Handler<T>): void {
    this.handlers.push(h);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /**
   * True while the store is known to follow the server: from a list or a watch event (bookmarks
   * included) until the next list or watch error. A reader that must not act on a stale copy
   * asks the API itself while this is false.
   */
  isLive(): boolean {
    return this.live;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  private emit(type: EventType, obj: T, old: T | undefined): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (e) {
        this.log.error({ err: e }, 'informer handler failed');
      }
    }
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams(extra);
    if (this.opts.labelSelector) q.set('labelSelector', this.opts.labelSelector);
    if (this.opts.fieldSelector) q.set('fieldSelector', this.opts.fieldSelector);
    return `${this.opts.path}?${q.toString()}`;
  }

  /**
   * Lists omit apiVersion and kind: put them back. managedFields and kubectl's last applied
   * configuration go: nothing here reads them, they are often larger than the rest of the object,
   * and an update or merge patch that omits them keeps them.
   */
  private stamp(o: T): T {
    o.apiVersion ??= this.opts.apiVersion;
    o.kind ??= this.opts.kind;
    delete (o.metadata as { managedFields?: unknown }).managedFields;
    const ann = o.metadata.annotations;
    if (ann && LAST_APPLIED in ann) {
      delete ann[LAST_APPLIED];
      if (Object.keys(ann).length === 0) delete o.metadata.annotations;
    }
    return this.opts.transform ? (this.opts.transform(o) as T) : o;
  }

  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let cont = '';
    let rv = '';
    do {
      const q: Record<string, string> = { limit: String(this.opts.pageSize ?? 500) };
      if (cont) q.continue = cont;
      const page = await this.client.get<List<T>>(this.query(q));
      for (const item of page.items) fresh.set(objectKey(item), this.stamp(item));
      cont = page.metadata.continue ?? '';
      rv = page.metadata.resourceVersion;
    } while (cont);
    this.relists++;
    const old = new Map(this.store);
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    for (const [k, v] of fresh) {
      const prev = old.get(k);
      if (!prev) this.emit('ADDED', v, undefined);
      else if (prev.metadata.resourceVersion !== v.metadata.resourceVersion) this.emit('MODIFIED', v, prev);
    }
    for (const [k, v] of old) if (!fresh.has(k)) this.emit('DELETED', v, v);
    this.rv = rv;
    this.live = true;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private onEvent(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string };
      if (status.code === 410) this.rv = '';
      throw Object.assign(new Error(`watch error: ${status.message ?? ''}`), { code: status.code });
    }
    this.live = true;
    const obj = this.stamp(e.object);
    const rv = obj.metadata.resourceVersion;
    if (e.type === 'BOOKMARK') {
      if (rv) this.rv = rv;
      return;
    }
    const key = objectKey(obj);
    const prev = this.store.get(key);
    if (e.type === 'DELETED') {
      this.store.delete(key);
      this.emit('DELETED', obj, prev);
    } else {
      this.store.set(key, obj);
      this.emit(prev ? 'MODIFIED' : 'ADDED', obj, prev);
    }
    if (rv) this.rv = rv;
  }

  private async run(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      try {
        if (!this.rv) await this.relist();
        backoff = 250;
        const path = this.query({
          watch: '1',
          resourceVersion: this.rv,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(this.opts.watchTimeoutSeconds ?? 300),
        });
        let watchErr: unknown;
        await this.client.watch<T>(
          path,
          (e) => {
            if (watchErr) return;
            try {
              this.onEvent(e);
            } catch (err) {
              watchErr = err;
              this.abort.abort();
            }
          },
          this.abort.signal,
        );
        if (watchErr) {
          this.abort = new AbortController();
          throw watchErr;
        }
      } catch (e) {
        this.live = false;
        if (this.stopped) break;
        if (isGone(e) || (e as { code?: number }).code === 410) {
          this.log.info({ path: this.opts.path }, 'watch expired (410 Gone): re-listing');
          this.rv = '';
          continue;
        }
        this.log.warn({ err: e, path: this.opts.path, backoffMs: backoff }, 'list/watch failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());
