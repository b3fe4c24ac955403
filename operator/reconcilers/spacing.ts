// Spacing for writes of objects that many changes funnel into (a node's state, a tunnel's status):
// the first write goes out at once, later ones at most every interval, so a burst of pseudowire
// changes on one node becomes one write per interval instead of one per change. The reconciler asks
// how long to wait, requeues itself for that long, and the queue folds the changes in between.
export class WriteSpacing {
  private readonly last = new Map<string, number>();

  constructor(
    readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `key` may be written again (0: now). */
  wait(key: string): number {
    const at = this.last.get(key);
    return at === undefined ? 0 : Math.max(0, at + this.intervalMs - this.now());
  }

  wrote(key: string): void {
    this.last.set(key, this.now());
  }

  forget(key: string): void {
    this.last.delete(key);
  }
}

/**
 * For roll-ups that many changes funnel into and nothing waits on (a tunnel's pseudowire count,
 * endpoints and conditions): a new value is written once it has stayed the same for `quietMs`, or
 * `maxMs` after it first differed from what is written if it keeps changing, so a burst of
 * pseudowires on a tunnel becomes one write at its end instead of one per spacing interval.
 */
export class WriteDebounce {
  private readonly pending = new Map<string, { since: number; changed: number; value: string }>();

  constructor(
    readonly quietMs: number,
    readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Milliseconds until `value` may be written for `key` (0: now); forget(key) once written. With
   * `busyMaxMs`, the caller knows more changes are on their way (its own backlog): the value is not
   * settled however long it stays the same, and goes out `busyMaxMs` after it first differed.
   */
  wait(key: string, value: string, busyMaxMs?: number): number {
    const now = this.now();
    const p = this.pending.get(key);
    if (!p) this.pending.set(key, { since: now, changed: now, value });
    else if (p.value !== value) Object.assign(p, { value, changed: now });
    const { since, changed } = this.pending.get(key)!;
    const at =
      busyMaxMs === undefined ? Math.min(changed + this.quietMs, since + this.maxMs) : since + busyMaxMs;
    return Math.max(0, at - now);
  }

  /** Whether a value for `key` is waiting. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  forget(key: string): void {
    this.pending.delete(key);
  }
}
