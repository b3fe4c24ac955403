import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { memoryUse, ownMemoryCgroup } from './cgroup-memory.js';

const V1_SELF = '5:devices:/\n4:memory:/kubepods/pod1/c1\n0::/\n';
const V2_SELF = '0::/\n';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'kl2-cg-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), text);
  }
  return root;
}

describe('the memory cgroup of this process', () => {
  it('v1 on a host: the path /proc/self/cgroup gives, under the memory hierarchy', () => {
    const root = tree({ 'memory/kubepods/pod1/c1/memory.limit_in_bytes': '1' });
    assert.deepEqual(ownMemoryCgroup(root, V1_SELF), {
      dir: join(root, 'memory/kubepods/pod1/c1'),
      version: 1,
    });
  });

  it("v1 in a container: the hierarchy's root is the container's own cgroup", () => {
    const root = tree({ 'memory/memory.limit_in_bytes': '1' });
    assert.deepEqual(ownMemoryCgroup(root, V1_SELF), { dir: join(root, 'memory'), version: 1 });
  });

  it('v2 with a cgroup namespace, and none mounted', () => {
    const root = tree({ 'memory.max': 'max' });
    assert.deepEqual(ownMemoryCgroup(root, V2_SELF), { dir: root, version: 2 });
    assert.equal(ownMemoryCgroup(tree({}), V2_SELF), undefined);
  });

  it('the working set is the charge less inactive file pages; no limit or no files: nothing', () => {
    const v2 = tree({
      'memory.max': '1000',
      'memory.current': '700',
      'memory.stat': 'anon 500\ninactive_file 200\n',
    });
    assert.deepEqual(memoryUse({ dir: v2, version: 2 }), { workingSetBytes: 500, limitBytes: 1000 });
    const v1 = tree({
      'memory.limit_in_bytes': '1000',
      'memory.usage_in_bytes': '900',
      'memory.stat': 'inactive_file 1\ntotal_inactive_file 300\n',
    });
    assert.deepEqual(memoryUse({ dir: v1, version: 1 }), { workingSetBytes: 600, limitBytes: 1000 });
    const unlimitedV1 = tree({
      'memory.limit_in_bytes': '9223372036854771712',
      'memory.usage_in_bytes': '1',
      'memory.stat': '',
    });
    assert.equal(memoryUse({ dir: unlimitedV1, version: 1 }), undefined);
    assert.equal(memoryUse({ dir: tree({ 'memory.max': 'max' }), version: 2 }), undefined);
    assert.equal(memoryUse({ dir: tree({ 'memory.max': '1000' }), version: 2 }), undefined, 'unreadable');
    assert.equal(memoryUse(undefined), undefined);
  });
});
