// A work queue like client-go's: a key is queued at most once, processed by at most one worker at a
// time (a key added while in flight is re-queued when that run ends), with per-key exponential
// backoff for failures and delayed adds.
export type Reconcile = (key: string) => Promise<void | { requeueAfterMs?: number }>;

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private waiters: (() => void)[] = [];
  private shutdown = false;

  constructor(
    private readonly baseDelayMs = 100,
    private readonly maxDelayMs = 30_000,
  ) {}

  get depth(): number {
    return this.queue.length;
  }
  get inFlight(): number {
    return this.processing.size;
  }

  add(key: string): void {
    if (this.shutdown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.waiters.shift()?.();
  }

  /** Adds the key after `ms`; of several delays pending for one key, the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.shutdown) return;
    if (ms <= 0) return this.add(key);
    if (this.queued.has(key)) return;
    const due = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending) {
      if (pending.due <= due) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref?.();
    this.timers.set(key, { timer, due });
  }

  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  private async next(): Promise<string | undefined> {
    while (!this.shutdown) {
      const k = this.queue.shift();
      if (k !== undefined) {
        this.queued.delete(k);
        return k;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return undefined;
  }

  /** Run `workers` loops until stop(); each failure is passed to onError and the key backs off. */
  async run(workers: number, fn: Reconcile, onError: (key: string, e: unknown) => void): Promise<void> {
    const loop = async () => {
      for (;;) {
        const key = await this.next();
        if (key === undefined) return;
        this.processing.add(key);
        try {
          const r = await fn(key);
          this.forget(key);
          if (r && r.requeueAfterMs !== undefined) this.addAfter(key, r.requeueAfterMs);
        } catch (e) {
          onError(key, e);
          this.processing.delete(key);
          this.addRateLimited(key);
        } finally {
          this.processing.delete(key);
          if (this.dirty.delete(key)) this.add(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, loop));
  }

  stop(): void {
    this.shutdown = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w();
  }
}
