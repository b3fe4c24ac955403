// The e2e suite's last file (files run in name order): no cluster of any e2e file left a network
// namespace, process, mount, cgroup, link or /run directory behind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { leftovers } from '../harness/cluster/leaks.js';
import { requireRoot } from '../harness/netns.js';

/** Every cluster prefix the e2e files use. */
const PREFIXES = ['qa', 'qw', 'qe', 'qd', 'rc', 'ku', 'kv', 'tn'];

describe('after the e2e suite', () => {
  it('nothing of any cluster is left on the machine', async () => {
    requireRoot();
    const left = (await Promise.all(PREFIXES.map((p) => leftovers(p)))).flat();
    assert.deepEqual(left, [], `left behind: ${left.join(', ')}`);
  });
});
