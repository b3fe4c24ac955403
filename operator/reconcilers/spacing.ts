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
