// The CNI bench still runs: every rule the plugin gains (a required CNI_ARGS key, a refused ipam key)
// must reach the bench too, or its numbers silently stop existing. Two rounds, no timing asserted.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { join } from 'node:path';
import { runCapture } from '../../lib/exec.js';
import { requireRoot } from '../harness/netns.js';

before(() => requireRoot());

describe('bench/cni', () => {
  it('runs its three plugins through ADD and DEL and prints their row each', async () => {
    const r = await runCapture(
      process.execPath,
      [join(import.meta.dirname, '..', '..', 'bench', 'cni.js'), '--n', '2'],
      { timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.split('\n');
    for (const row of ['reference Go bridge', 'kube-l2tp shim + agent', 'kube-l2tp in-process'])
      assert.ok(
        lines.some((l) => l.startsWith(row) && /\d+\.\d+x \d+\.\d+x \d+\.\d+x$/.test(l)),
        `a row for ${row}:\n${r.stdout}`,
      );
  });
});
