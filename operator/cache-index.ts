// A secondary index over one informer's objects, kept up to date from its events: the objects that
// carry a value (pseudowires by tunnel, tunnels by node). A reconcile then reads the few objects it
// needs instead of scanning every object of the kind, which at thousands of pseudowires made each
// node render cost as much as the whole cluster.
import type { KObject } from '../lib/api/schemas.js';
import { objectKey, type InformerCache } from '../lib/kube/informer.js';

export class CacheIndex<T extends KObject> {
  private readonly byValue = new Map<string, Map<string, T>>();
  private readonly valuesOf = new Map<string, string[]>();

  /** Register before any other handler of `inf`, so those handlers already see the index updated. */
  constructor(
    inf: InformerCache<T>,
    private readonly values: (o: T) => string[],
  ) {
    inf.on((type, obj) => this.update(type === 'DELETED', obj));
  }

  private update(deleted: boolean, obj: T): void {
    const key = objectKey(obj);
    for (const v of this.valuesOf.get(key) ?? []) {
      const m = this.byValue.get(v);
      m?.delete(key);
      if (m?.size === 0) this.byValue.delete(v);
    }
    if (deleted) {
      this.valuesOf.delete(key);
      return;
    }
    const vs = [...new Set(this.values(obj))];
    this.valuesOf.set(key, vs);
    for (const v of vs) {
      let m = this.byValue.get(v);
      if (!m) this.byValue.set(v, (m = new Map()));
      m.set(key, obj);
    }
  }

  get(value: string): T[] {
    const m = this.byValue.get(value);
    return m ? [...m.values()] : [];
  }

  count(value: string): number {
    return this.byValue.get(value)?.size ?? 0;
  }
}
