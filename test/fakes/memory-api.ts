// An in-memory API server for the operator's unit tests: create, merge-patch (with the status
// subresource), replace and delete on paths, each change handed to the informer of that kind as a
// watch event would be. Enough of the API's behaviour for the controllers' glue, nothing more.
import type { KObject } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';
import type { EventType, Handler, InformerCache, InformerOptions } from '../../lib/kube/informer.js';
import { objectKey } from '../../lib/kube/informer.js';
import { ApiError, type KubeApi } from '../../lib/kube/client.js';

/** A synced informer cache the memory API feeds; handlers run as the real informer runs them. */
export class FakeInformer<T extends KObject> implements InformerCache<T> {
  readonly store = new Map<string, T>();
  private handlers: Handler<T>[] = [];
  constructor(readonly opts: InformerOptions) {}
  on(h: Handler<T>) {
    this.handlers.push(h);
  }
  hasSynced() {
    return true;
  }
  async waitForSync() {}
  start() {}
  async stop() {}
  get(key: string) {
    return this.store.get(key);
  }
  list() {
    return [...this.store.values()];
  }
  put(type: EventType, obj: T) {
    const key = objectKey(obj);
    const old = this.store.get(key);
    if (type === 'DELETED') this.store.delete(key);
    else this.store.set(key, obj);
    for (const h of this.handlers) h(type, obj, old);
  }
}

interface Parsed {
  plural: string;
  namespace?: string;
  name?: string;
  sub?: string;
}

function parse(path: string): Parsed {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  let i = parts[0] === 'api' ? 2 : 3;
  let namespace: string | undefined;
  if (parts[i] === 'namespaces' && parts.length > i + 2) {
    namespace = parts[i + 1];
    i += 2;
  }
  return {
    plural: parts[i]!,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(parts[i + 1] !== undefined ? { name: parts[i + 1] } : {}),
    ...(parts[i + 2] !== undefined ? { sub: parts[i + 2] } : {}),
  };
}

/** RFC 7386: null removes a key, objects merge, everything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class MemoryApi implements KubeApi {
  /** Informers by plural, made through `informers` (the controller's factory). */
  readonly byPlural = new Map<string, FakeInformer<KObject>>();
  /** Every write, as "VERB plural[/ns]/name[/sub]". */
  readonly writes: string[] = [];
  /** Objects written to kinds no informer watches (events, ...). */
  readonly other: { plural: string; obj: KObject }[] = [];
  private rv = 0;
  private uid = 0;

  readonly informers = <T extends KObject>(o: InformerOptions, _log: Logger): InformerCache<T> => {
    const inf = new FakeInformer<T>(o);
    this.byPlural.set(parse(o.path).plural, inf as unknown as FakeInformer<KObject>);
    return inf;
  };

  /** Seeds an object as if a user had created it, with the metadata the API server sets. */
  add<T extends KObject>(plural: string, obj: T): T {
    const o = structuredClone(obj);
    o.metadata.uid ??= `uid-${++this.uid}`;
    o.metadata.generation ??= 1;
    o.metadata.resourceVersion = String(++this.rv);
    this.inf(plural).put('ADDED', o);
    return o;
  }

  object<T extends KObject>(plural: string, key: string): T | undefined {
    return this.byPlural.get(plural)?.get(key) as T | undefined;
  }

  private inf(plural: string): FakeInformer<KObject> {
    const i = this.byPlural.get(plural);
    if (!i) throw new Error(`no informer for ${plural}`);
    return i;
  }

  private key(p: Parsed, name = p.name): string {
    return p.namespace !== undefined ? `${p.namespace}/${name}` : name!;
  }

  private record(verb: string, p: Parsed, name = p.name) {
    this.writes.push(`${verb} ${p.plural}/${this.key(p, name)}${p.sub ? `/${p.sub}` : ''}`);
  }

  async get<T>(path: string): Promise<T> {
    const p = parse(path);
    const o = p.name !== undefined ? this.byPlural.get(p.plural)?.get(this.key(p)) : undefined;
    if (!o) throw new ApiError(404, 'NotFound', `${path} not found`);
    return structuredClone(o) as T;
  }

  async create<T>(path: string, obj: unknown): Promise<T> {
    const p = parse(path);
    const o = structuredClone(obj) as KObject;
    o.metadata.name ??= `${(o.metadata as { generateName?: string }).generateName ?? ''}${++this.uid}`;
    if (p.namespace !== undefined) o.metadata.namespace = p.namespace;
    this.record('create', p, o.metadata.name);
    if (!this.byPlural.has(p.plural)) {
      this.other.push({ plural: p.plural, obj: o });
      return o as T;
    }
    if (this.inf(p.plural).get(this.key(p, o.metadata.name)))
      throw new ApiError(409, 'AlreadyExists', `${o.metadata.name} exists`);
    return this.add(p.plural, o) as T;
  }

  async replace<T>(path: string, obj: unknown): Promise<T> {
    const p = parse(path);
    this.record('replace', p);
    const o = structuredClone(obj) as KObject;
    o.metadata.resourceVersion = String(++this.rv);
    this.inf(p.plural).put('MODIFIED', o);
    return o as T;
  }

  async patch<T>(path: string, patch: unknown): Promise<T> {
    const p = parse(path);
    this.record('patch', p);
    const cur = this.inf(p.plural).get(this.key(p));
    if (!cur) throw new ApiError(404, 'NotFound', `${path} not found`);
    const body = structuredClone(patch) as Record<string, unknown>;
    // a status patch changes only the status; a main-resource patch never the status
    if (p.sub === 'status') for (const k of Object.keys(body)) if (k !== 'status') delete body[k];
    if (p.sub === undefined) delete body.status;
    const meta = body.metadata as { resourceVersion?: string } | undefined;
    if (meta?.resourceVersion !== undefined && meta.resourceVersion !== cur.metadata.resourceVersion)
      throw new ApiError(409, 'Conflict', 'the object has been modified');
    const next = mergePatch(cur, body) as KObject;
    next.metadata.resourceVersion = String(++this.rv);
    if (p.sub === undefined && body.spec !== undefined)
      next.metadata.generation = (cur.metadata.generation ?? 0) + 1;
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      this.inf(p.plural).put('DELETED', next);
      return next as T;
    }
    this.inf(p.plural).put('MODIFIED', next);
    return next as T;
  }

  async delete(path: string): Promise<unknown> {
    const p = parse(path);
    this.record('delete', p);
    const inf = this.inf(p.plural);
    const cur = inf.get(this.key(p));
    if (!cur) throw new ApiError(404, 'NotFound', `${path} not found`);
    if (cur.metadata.finalizers?.length) {
      inf.put('MODIFIED', {
        ...cur,
        metadata: { ...cur.metadata, deletionTimestamp: new Date().toISOString() },
      });
    } else inf.put('DELETED', cur);
    return {};
  }

  async watch(): Promise<void> {
    throw new Error('the memory API feeds its informers directly');
  }
}
