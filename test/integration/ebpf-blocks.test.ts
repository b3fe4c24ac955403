// The ebpf backend's session devices bind shared tc blocks of the node's network namespace. Block
// indexes are an administrator's choice: where another tool already uses one of ours, the backend
// refuses to start (naming the device and the block) instead of running its programs on that tool's
// devices, and `auto` falls back to the userspace backend with that reason; the other tool's qdisc
// and filter stay as they were.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { BLOCK } from '../../datapath/backend/ebpf/tc.js';
import { Lab, inNs, inNsCapture, ipIn, requireRoot } from '../harness/netns.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import { pairConfigs, startDatapath, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

describe('ebpf shared tc blocks', () => {
  it("another tool's device on one of the blocks: ebpf refuses, auto takes userspace, the tool's setup stays", async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'ebk', 132);
      const bpffs = await privateBpffs(lab);
      const [c1] = pairConfigs(h, { encap: 'udp' });
      // another tool's pair, its egress on block 492251 with a filter of its own
      await ipIn(h.h1, 'link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other1');
      const tc = (cmd: string) => inNs(h.h1, 'tc', ...cmd.split(' '));
      await tc(`qdisc add dev other0 egress_block ${BLOCK.txEgress} clsact`);
      await tc(`filter add block ${BLOCK.txEgress} pref 10 protocol all u32 match u32 0 0 flowid 1:1`);

      const d = await startEbpfDatapath(lab, h.h1, c1, bpffs, false);
      assert.notEqual(await d.exited, 0, 'the ebpf backend refused');
      const text = JSON.stringify(d.lines);
      assert.match(text, /in use by another tool/, text.slice(-800));
      assert.match(text, /device other0 binds block 492251/);
      assert.match(text, /block 492251 has a u32 filter at preference 10/);

      const a = await startDatapath(lab, h.h1, c1, true, [
        '--backend',
        'auto',
        '--bpffs',
        `${bpffs}/${h.h1}`,
      ]);
      const selected = a.lines.find((l) => l.msg === 'backend selected');
      assert.notEqual(selected?.backend, 'ebpf');
      assert.match(String(selected?.reason), /in use by another tool/);
      await a.stop();

      // nothing of the tool's was touched, and nothing of ours was added to its block
      const q = await inNsCapture(h.h1, 'tc', 'qdisc', 'show', 'dev', 'other0');
      assert.match(q.stdout, /egress_block 492251/);
      const f = await inNsCapture(h.h1, 'tc', 'filter', 'show', 'block', String(BLOCK.txEgress));
      assert.match(f.stdout, /pref 10 u32/);
      assert.doesNotMatch(f.stdout, /l2tp_tx/);
    } finally {
      await lab.cleanup();
    }
  });
});
