// Registers one node:test test per target with its fixed CI budget and a fixed seed per target.
// Replay or widen a run from the environment:
//   FUZZ_TARGET=name  only that target        FUZZ_SEED=n  seed (default: derived from the name)
//   FUZZ_PATH=p       fast-check replay path  FUZZ_RUNS=n  cases instead of the CI budget
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultSeed, formatResult, runTarget, type FuzzTarget } from './framework.js';

export function registerFuzzTests(targets: readonly FuzzTarget[]): void {
  const only = process.env.FUZZ_TARGET;
  for (const t of targets) {
    if (only !== undefined && only !== '' && only !== t.name) continue;
    test(`fuzz ${t.name}: ${t.summary}`, { timeout: 120_000 }, async () => {
      const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : defaultSeed(t.name);
      const runs = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : t.ciRuns;
      const r = await runTarget(t, { runs, seed, path: process.env.FUZZ_PATH || undefined });
      if (r.failure !== undefined) assert.fail(formatResult(r));
      assert.equal(r.cases, runs, 'every case ran');
    });
  }
}
