// The hostile-input fuzz targets of test/fuzz at bench scale:
//   node dist/bench/fuzz.js [--cases 1000000] [--target NAME] [--seed N] [--path P] [--json]
// Prints per target: cases run, cases/s, outcomes (accepted / rejections by reason), and any
// failure with the seed and path that replay it. Exits 1 when a target failed.
import { ALL_TARGETS } from '../test/fuzz/targets.js';
import { formatResult, runTarget, type RunResult } from '../test/fuzz/framework.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const cases = Number(arg('cases') ?? 1_000_000);
const only = arg('target');
const seedArg = arg('seed');
const path = arg('path');
const targets = ALL_TARGETS.filter((t) => only === undefined || t.name === only);
if (!Number.isInteger(cases) || cases <= 0 || targets.length === 0) {
  console.error(
    `usage: node dist/bench/fuzz.js [--cases N] [--target ${ALL_TARGETS.map((t) => t.name).join('|')}] [--seed N] [--path P] [--json]`,
  );
  process.exit(2);
}

const results: RunResult[] = [];
for (const t of targets) {
  const seed = seedArg !== undefined ? Number(seedArg) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  console.log(`# ${t.name}: ${t.summary}\n#   ${cases} cases, seed ${seed}`);
  const r = await runTarget(t, { runs: cases, seed, path });
  results.push(r);
  console.log(formatResult(r));
}
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(results.map(({ failure, ...r }) => ({ ...r, failed: failure !== undefined }))));
}
const failed = results.filter((r) => r.failure !== undefined);
console.log(`\n${results.length - failed.length}/${results.length} targets passed`);
process.exit(failed.length > 0 ? 1 : 0);
