// Interop with an independent L2TPv3 implementation: QEMU's -netdev l2tpv3 on host2, our userspace
// datapath on host1, pods on both sides; every encap x cookie x sublayer combination, both directions.
import { before, describe, it } from 'node:test';
import { Lab, requireRoot } from '../harness/netns.js';
import { startDatapath } from './datapath-lab.js';
import { qemuCaseName, qemuInterop, qemuMatrix } from './qemu-interop.js';

before(() => requireRoot());

describe('interop with QEMU -netdev l2tpv3', () => {
  qemuMatrix().forEach((m, idx) => {
    it(qemuCaseName(m), async () => {
      const lab = new Lab();
      try {
        await qemuInterop(lab, m, {
          prefix: `kdq${idx}`,
          n: 40 + idx,
          podNet: '10.201.202',
          bridge: 'kdbr',
          tap: 'kdqtap',
          start: (l, h, config) => startDatapath(l, h.h1, config),
        });
      } finally {
        await lab.cleanup();
      }
    });
  });
});
