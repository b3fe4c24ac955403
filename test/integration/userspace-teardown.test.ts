// Teardown of many sessions on the userspace backend against the real kernel: a reconcile pass that
// drops most of a tunnel's sessions deletes their TAPs in one rtnetlink request, close() does the
// same for the rest, and a TAP that kube-l2tp did not make stays through both.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { inNs, Lab, requireRoot } from '../harness/netns.js';

before(() => requireRoot());

describe('userspace backend teardown', () => {
  it('300 sessions: 290 removed in one request, the other 10 by close(), the foreign TAP stays', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns(`sbtd${process.pid % 10000}`);
      const child = fileURLToPath(new URL('./userspace-teardown-child.js', import.meta.url));
      const out = JSON.parse(await inNs(ns, process.execPath, child, '300', '10')) as {
        created: number;
        removed: number;
        removeMs: number;
        afterRemove: string[];
        afterClose: string[];
        deletes: [number, boolean][];
      };
      console.log(`290 sessions removed in ${out.removeMs.toFixed(0)} ms`);
      assert.equal(out.created, 301, '300 session TAPs and the foreign one');
      assert.equal(out.removed, 290);
      const kept = Array.from({ length: 10 }, (_, i) => `l2tpeth${i + 1}`);
      assert.deepEqual(out.afterRemove, [...kept, 'sbforeign0'].sort());
      assert.deepEqual(out.afterClose, ['sbforeign0']);
      assert.deepEqual(out.deletes, [
        [290, true],
        [10, true],
      ]);
    } finally {
      await lab.cleanup();
    }
  });
});
