// The fuzz runner shared by test/fuzz/*.test.ts (fixed CI budget) and bench/fuzz.ts (1e6+ cases):
// a target opens a fast-check property (plus whatever it needs: a server, a child process), the
// runner checks it with a seed and reports cases, rate, outcomes by reason and any failure with the
// seed and path that replay it.
import fc from 'fast-check';

/** Outcome counters of one run: "accepted", or the rejection reason the target reported. */
export class Stats {
  readonly outcomes = new Map<string, number>();
  count(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
  sorted(): [string, number][] {
    return [...this.outcomes].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  }
}

// fast-check's property types are generic over the generated tuple; the runner only checks them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProperty = fc.IRawProperty<any, boolean>;

export interface OpenTarget {
  property: AnyProperty;
  close(): Promise<void>;
}

export interface FuzzTarget {
  name: string;
  /** One line: what is fed to what. */
  summary: string;
  /** Cases per run in the unit suite (the whole fuzz suite stays well under 30 s). */
  ciRuns: number;
  open(stats: Stats): Promise<OpenTarget>;
}

export interface RunOptions {
  runs: number;
  seed: number;
  /** fast-check replay path of a failure (with the seed it was found with). */
  path?: string | undefined;
}

export interface RunResult {
  target: string;
  seed: number;
  cases: number;
  ms: number;
  outcomes: [string, number][];
  failure?: string;
}

/** A stable default seed per target, so CI runs are deterministic and a failure replays as is. */
export function defaultSeed(name: string): number {
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return h | 0;
}

function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${e.stack ?? ''}`;
  return String(e);
}

export async function runTarget(target: FuzzTarget, opts: RunOptions): Promise<RunResult> {
  const stats = new Stats();
  const open = await target.open(stats);
  const t0 = performance.now();
  let details: fc.RunDetails<unknown>;
  try {
    const params: fc.Parameters<unknown> = { numRuns: opts.runs, seed: opts.seed };
    if (opts.path !== undefined) params.path = opts.path;
    details = await fc.check(open.property, params);
  } finally {
    await open.close();
  }
  const ms = performance.now() - t0;
  const out: RunResult = {
    target: target.name,
    seed: opts.seed,
    cases: details.numRuns,
    ms,
    outcomes: stats.sorted(),
  };
  if (details.failed) {
    const lines = [
      `target ${target.name} failed after ${details.numRuns} cases (${details.numShrinks} shrinks)`,
      `replay: seed ${details.seed}, path "${details.counterexamplePath ?? ''}"`,
      `  unit suite: FUZZ_SEED=${details.seed} FUZZ_PATH="${details.counterexamplePath ?? ''}" FUZZ_TARGET=${target.name} node --test dist/test/fuzz/`,
      `  bench:      node dist/bench/fuzz.js --target ${target.name} --seed ${details.seed} --path "${details.counterexamplePath ?? ''}"`,
      `counterexample: ${fc.stringify(details.counterexample)}`,
      `error: ${describeError(details.errorInstance)}`,
    ];
    out.failure = lines.join('\n');
  }
  return out;
}

export function formatResult(r: RunResult): string {
  const rate = r.ms > 0 ? Math.round((r.cases * 1000) / r.ms) : 0;
  const lines = [
    `${r.target}: ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s (${rate} cases/s), seed ${r.seed}`,
  ];
  for (const [k, n] of r.outcomes) lines.push(`  ${k.padEnd(44)} ${n}`);
  if (r.failure !== undefined) lines.push(`  FAILED\n${r.failure.replace(/^/gm, '    ')}`);
  return lines.join('\n');
}

/** Asserts that `e` is one of the expected error classes; returns it typed, or rethrows it. */
export function expectError<T extends Error>(
  e: unknown,
  cls: abstract new (...args: never[]) => T,
  what: string,
): T {
  if (e instanceof cls) return e;
  const err = new Error(`${what}: foreign exception ${describeError(e)}`);
  throw err;
}

export function assertThat(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** No stack trace leaks into a message shown to a user or a runtime. */
export function noStack(msg: string): boolean {
  return !/\n\s+at\s/.test(msg) && !/\bat .*\.js:\d+:\d+/.test(msg);
}
