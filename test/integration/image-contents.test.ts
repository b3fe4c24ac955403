// The product image's file list: no package manager and no build tool (image/runtime-contents.ts),
// while what runs is there. Reads the archive the e2e run built (KUBE_L2TP_IMAGES), else builds it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { runCapture } from '../../lib/exec.js';
import { forbiddenInRuntime, imagePaths } from '../../image/runtime-contents.js';

const repo = process.cwd();
let tmp: string | undefined;
after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

async function productArchive(): Promise<string> {
  const list = process.env.KUBE_L2TP_IMAGES;
  if (list) {
    const line = readFileSync(list, 'utf8')
      .split('\n')
      .find((l) => l.includes('/kube-l2tp:'));
    if (line) return line.split(' ')[1]!;
  }
  tmp = mkdtempSync(join(tmpdir(), 'kl-image-contents-'));
  const r = await runCapture(
    process.execPath,
    [join(repo, 'dist/image/main.js'), 'build', 'kube-l2tp', '--out', tmp],
    {
      timeoutMs: 900_000,
    },
  );
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  return r.stdout.trim().split('\n').pop()!.split(' ')[2]!;
}

it('the product image holds no npm, no package manager and no build tool, and does hold what runs', async () => {
  const paths = imagePaths(await productArchive());
  console.log(`${paths.length} paths in the product image`);
  for (const p of [
    'usr/local/bin/node',
    'bin/ip',
    'app/dist/datapath/main.js',
    'app/cmd/cni/shim/build/kube-l2tp',
  ])
    assert.ok(paths.includes(p), `${p} is in the image`);
  assert.deepEqual(forbiddenInRuntime(paths), []);
});
