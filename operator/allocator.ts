// ID allocation. The kernel needs tunnel IDs, session IDs (L2TPv3 sessions are global per netns) and
// UDP source ports unique per node; 0 is never used. Every ID has an owner ("tun/NAME",
// "pw/NS/NAME"); asking again for the same owner returns the same ID, so allocation is idempotent.
// The operator seeds the allocator from what is recorded (object status, node state spec and
// status) before it allocates anything, which keeps IDs stable across restarts and never hands out
// an ID a node still reports in use.
export type IdKind = 'tunnel' | 'session' | 'port';

export interface Ranges {
  tunnel: [number, number];
  session: [number, number];
  port: [number, number];
}

export const DEFAULT_RANGES: Ranges = {
  tunnel: [1, 0xffffffff],
  session: [1, 0xffffffff],
  port: [17000, 17999],
};

export class Allocator {
  /** kind -> node -> id -> owner */
  private readonly used: Record<IdKind, Map<string, Map<number, string>>> = {
    tunnel: new Map(),
    session: new Map(),
    port: new Map(),
  };

  /**
   * owner -> "kind node" -> the IDs it holds there, the latest claimed last: what an owner holds,
   * without scanning every node's table. An owner may hold more than one (an ID a node still reports
   * after the spec changed it stays taken until released).
   */
  private readonly held = new Map<string, Map<string, number[]>>();

  /**
   * holder -> the owners refused an ID it holds. Nothing else announces that an ID became free: when
   * the holder releases its IDs, they are handed to `onFreed` (the controller requeues them).
   */
  private readonly waiting = new Map<string, Set<string>>();

  constructor(
    private readonly ranges: Ranges = DEFAULT_RANGES,
    private readonly onFreed?: (waiter: string) => void,
  ) {}

  private table(kind: IdKind, node: string): Map<number, string> {
    let t = this.used[kind].get(node);
    if (!t) this.used[kind].set(node, (t = new Map()));
    return t;
  }

  private set(kind: IdKind, node: string, t: Map<number, string>, id: number, owner: string): void {
    t.set(id, owner);
    let h = this.held.get(owner);
    if (!h) this.held.set(owner, (h = new Map()));
    const k = `${kind} ${node}`;
    h.set(k, [...(h.get(k) ?? []).filter((x) => x !== id), id]);
  }

  /** The ID `owner` claimed or was given last on `node`, if it holds any. */
  idOf(kind: IdKind, node: string, owner: string): number | undefined {
    return this.held.get(owner)?.get(`${kind} ${node}`)?.at(-1);
  }

  ownerOf(kind: IdKind, node: string, id: number): string | undefined {
    return this.used[kind].get(node)?.get(id);
  }

  /** Record that `owner` uses `id` on `node`. Returns the other owner on a conflict (and records nothing). */
  claim(kind: IdKind, node: string, id: number, owner: string): string | undefined {
    if (id === 0) throw new Error('ID 0 is reserved');
    const t = this.table(kind, node);
    const cur = t.get(id);
    if (cur !== undefined && cur !== owner) return cur;
    this.set(kind, node, t, id, owner);
    return undefined;
  }

  /** The lowest ID free on every node in `nodes` (or already held there by `owner`), claimed for owner. */
  allocate(kind: IdKind, nodes: string[], owner: string): number {
    const id = this.tryAllocate(kind, nodes, owner);
    if (id !== undefined) return id;
    const [min, max] = this.ranges[kind];
    throw new Error(`no free ${kind} ID left in ${min}-${max} on ${nodes.join(', ')}`);
  }

  /** allocate, or undefined when no ID is free on every node. */
  private tryAllocate(kind: IdKind, nodes: string[], owner: string): number | undefined {
    const [min, max] = this.ranges[kind];
    const tables = nodes.map((n) => this.table(kind, n));
    for (let id = Math.max(1, min); id <= max; id++) {
      if (tables.every((t) => (t.get(id) ?? owner) === owner)) {
        tables.forEach((t, i) => this.set(kind, nodes[i]!, t, id, owner));
        return id;
      }
    }
    return undefined;
  }

  /**
   * The IDs of one object's two sides (local node, and the peer node of an in-cluster pair): a
   * recorded ID is claimed, a missing one is the one the owner holds there or a new one, and a pair
   * with neither gets one ID free on both nodes when there is one, else one free on each. A recorded
   * ID another owner holds comes back undefined, with a message naming that owner (`conflicts`); so
   * does a side whose node has no ID free (`exhausted`).
   */
  allocatePair(
    kind: IdKind,
    label: string,
    owner: string,
    nodes: { local: string; peer?: string | undefined },
    ids: { local?: number | undefined; peer?: number | undefined },
  ): { local?: number; peer?: number; conflicts: string[]; exhausted: string[] } {
    const { local: L, peer: P } = nodes;
    // what the owner holds already (recorded only in a node state, say) stays its ID: the lowest
    // free one may have changed since
    const held = (node: string) => this.idOf(kind, node, owner);
    if (P && ids.local === undefined && ids.peer === undefined && !held(L) && !held(P)) {
      const id = this.tryAllocate(kind, [L, P], owner);
      if (id !== undefined) return { local: id, peer: id, conflicts: [], exhausted: [] };
    }
    const conflicts: string[] = [];
    const exhausted: string[] = [];
    const side = (node: string, id: number | undefined): number | undefined => {
      if (id === undefined) {
        const got = held(node) ?? this.tryAllocate(kind, [node], owner);
        if (got === undefined) {
          const [min, max] = this.ranges[kind];
          exhausted.push(`no ${label} is free on node ${node} (${min}-${max} are all in use)`);
        }
        return got;
      }
      const other = this.claim(kind, node, id, owner);
      if (!other) return id;
      let w = this.waiting.get(other);
      if (!w) this.waiting.set(other, (w = new Set()));
      w.add(owner);
      conflicts.push(`${label} ${id} on node ${node} is already used by ${ownerName(other)}`);
      return undefined;
    };
    const local = side(L, ids.local);
    const peer = P ? side(P, ids.peer) : undefined;
    return {
      ...(local !== undefined ? { local } : {}),
      ...(peer !== undefined ? { peer } : {}),
      conflicts,
      exhausted,
    };
  }

  /** Drop everything `owner` holds (after its sessions are gone from every node). */
  release(owner: string): void {
    for (const k of [...(this.held.get(owner)?.keys() ?? [])]) {
      const [kind, node] = k.split(' ') as [IdKind, string];
      this.releaseOn(kind, node, owner);
    }
    this.handBack(owner);
  }

  /**
   * Drop the IDs `owner` holds that `keep` lets go: those an edit replaced, once the caller knows
   * nothing runs with them any more. `latest` says the ID is the one it claimed last on that node
   * (what renders). When anything went, those refused an ID it held ask again; those still refused
   * are refused again, and wait anew.
   */
  releaseUnless(
    owner: string,
    keep: (kind: IdKind, node: string, id: number, latest: boolean) => boolean,
  ): void {
    const h = this.held.get(owner);
    if (!h) return;
    let dropped = false;
    for (const [k, ids] of [...h]) {
      const [kind, node] = k.split(' ') as [IdKind, string];
      const kept = ids.filter((id, i) => keep(kind, node, id, i === ids.length - 1));
      if (kept.length === ids.length) continue;
      const t = this.used[kind].get(node);
      for (const id of ids) if (!kept.includes(id) && t?.get(id) === owner) t.delete(id);
      if (kept.length) h.set(k, kept);
      else h.delete(k);
      dropped = true;
    }
    if (h.size === 0) this.held.delete(owner);
    if (dropped) this.handBack(owner);
  }

  private handBack(owner: string): void {
    const waiters = this.waiting.get(owner);
    this.waiting.delete(owner);
    for (const w of waiters ?? []) this.onFreed?.(w);
  }

  /** Drop what `owner` holds on one node. */
  releaseOn(kind: IdKind, node: string, owner: string): void {
    const h = this.held.get(owner);
    const k = `${kind} ${node}`;
    const ids = h?.get(k);
    if (!ids) return;
    const t = this.used[kind].get(node);
    for (const id of ids) if (t?.get(id) === owner) t.delete(id);
    h!.delete(k);
    if (h!.size === 0) this.held.delete(owner);
  }

  count(kind: IdKind, node: string): number {
    return this.used[kind].get(node)?.size ?? 0;
  }
}

/** An owner as a person reads it: "tun/NAME" is L2TPTunnel NAME, "pw/NS/NAME" Pseudowire NS/NAME. */
export function ownerName(owner: string): string {
  const [kind, ...rest] = owner.split('/');
  const name = rest.join('/');
  return kind === 'tun' ? `L2TPTunnel ${name}` : kind === 'pw' ? `Pseudowire ${name}` : owner;
}
