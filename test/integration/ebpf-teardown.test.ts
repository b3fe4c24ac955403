// Teardown of many sessions on the ebpf backend against the real kernel: a reconcile pass that drops
// most of a tunnel's sessions deletes their veth pairs in one rtnetlink request and their entries
// from the maps, close() does the same for the rest, and a veth pair kube-l2tp did not make stays.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { inNs, Lab, requireRoot } from '../harness/netns.js';
import { privateBpffs } from './datapath-ebpf-lab.js';

before(() => requireRoot());

describe('ebpf backend teardown', () => {
  it('200 sessions: 190 pairs removed in one request, the other 10 by close(), the foreign pair stays', async () => {
    const lab = new Lab();
    try {
      const node = await lab.netns('ebtdnode');
      await lab.netns('ebtdpeer');
      await lab.veth(
        { ns: 'ebtdnode', name: 'ebtd0', addr: '10.239.0.1/24' },
        { ns: 'ebtdpeer', name: 'ebtd1', addr: '10.239.0.2/24' },
      );
      const bpffs = await privateBpffs(lab);
      const child = fileURLToPath(new URL('./ebpf-teardown-child.js', import.meta.url));
      const out = JSON.parse(
        await inNs(node, process.execPath, child, '200', '10', bpffs, '10.239.0.1', '10.239.0.2'),
      ) as {
        created: number;
        removed: number;
        afterRemove: string[];
        mapsAfterRemove: number[];
        afterClose: string[];
        deletes: [number, boolean][];
      };
      const pair = (id: number) => [`l2tpeth${id}`, `l2tpx${id.toString(16)}`];
      const kept = Array.from({ length: 10 }, (_, i) => i + 1);
      assert.equal(out.created, 402, '200 session pairs and the foreign pair');
      assert.equal(out.removed, 190);
      assert.deepEqual(out.afterRemove, [...kept.flatMap(pair), 'ebtdforeign0', 'ebtdforeign1'].sort());
      assert.deepEqual(out.mapsAfterRemove, kept, 'the maps hold the kept sessions only');
      assert.deepEqual(out.afterClose, ['ebtdforeign0', 'ebtdforeign1']);
      assert.deepEqual(out.deletes, [
        [190, true],
        [10, true],
      ]);
    } finally {
      await lab.cleanup();
    }
  });
});
