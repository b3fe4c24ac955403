// The CI budget of the coverage-guided fuzzing (scripts/fuzz.sh: libFuzzer, ASan + UBSan) of the C
// that reads untrusted bytes: every target builds and runs a few seconds without a crash, and a
// planted overflow shows that a crash fails the run and leaves its reproducer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const TARGETS = ['wire-rx', 'offload-tx', 'netlink-reply', 'cni-shim'];
const SECONDS = Number(process.env.FUZZ_SECONDS ?? '3');

interface Row {
  target: string;
  executions: number;
  edges: number;
  crashes: number;
  result: string;
}

function fuzz(...args: string[]): { code: number | null; rows: Row[]; stderr: string } {
  const r = spawnSync('bash', ['scripts/fuzz.sh', ...args], { cwd: root, encoding: 'utf8' });
  const rows = r.stdout
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => {
      const [target, executions, edges, , , crashes, ...result] = l.trim().split(/\s+/);
      return {
        target: target!,
        executions: Number(executions),
        edges: Number(edges),
        crashes: Number(crashes),
        result: result.join(' '),
      };
    });
  return { code: r.status, rows, stderr: r.stderr };
}

describe('libFuzzer targets (ASan + UBSan)', () => {
  it(`each target runs ${SECONDS} s with no crash, leak or failed check`, () => {
    const r = fuzz('--seconds', String(SECONDS));
    for (const row of r.rows) console.log(JSON.stringify(row));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.rows.map((x) => x.target),
      TARGETS,
    );
    for (const row of r.rows) {
      assert.equal(row.result, 'ok');
      assert.equal(row.crashes, 0);
      assert.ok(row.executions > 100 && row.edges > 10, `${row.target} ran: ${JSON.stringify(row)}`);
    }
  });

  it('a crash fails the run and its reproducer is kept', () => {
    rmSync(`${root}build/fuzz/artifacts/planted`, { recursive: true, force: true });
    const r = fuzz('--seconds', '2', '--target', 'planted');
    assert.equal(r.code, 1);
    assert.equal(r.rows[0]?.crashes, 1);
    assert.match(r.stderr, /AddressSanitizer: heap-buffer-overflow/);
    const repro = /reproducer: build\/fuzz\/planted (\S+)/.exec(r.stderr)?.[1];
    assert.ok(repro && existsSync(`${root}${repro}`), r.stderr);
    const replay = spawnSync(`${root}build/fuzz/planted`, [`${root}${repro}`], { encoding: 'utf8' });
    assert.notEqual(replay.status, 0, 'the reproducer crashes again');
    rmSync(`${root}build/fuzz/artifacts/planted`, { recursive: true, force: true });
  });
});
