import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import { selectBackend, type BackendProbes } from './select.js';
import type { Backend } from './types.js';

/** A node whose kernel and ebpf availability the test decides; each backend is tagged by name. */
function node(kernel: string | true, ebpf: string | true) {
  const made: string[] = [];
  const tagged = (name: string): Backend => {
    made.push(name);
    return Object.assign(new MemoryBackend(), { tag: name });
  };
  const probes: BackendProbes = {
    probeKernel: async () =>
      kernel === true
        ? { available: true, reason: 'generic netlink family l2tp resolved' }
        : { available: false, reason: kernel },
    createKernel: () => tagged('kernel'),
    openEbpf: async () => (ebpf === true ? tagged('ebpf') : ebpf),
    createUserspace: () => tagged('userspace'),
  };
  return { probes, made };
}
const opts = { logger: silentLogger() };

describe('backend selection', () => {
  it('auto takes the kernel when the l2tp family resolves, without trying ebpf', async () => {
    const n = node(true, true);
    const r = await selectBackend('auto', opts, n.probes);
    assert.deepEqual(n.made, ['kernel']);
    assert.equal(r.reason, 'auto: generic netlink family l2tp resolved');
  });

  it('auto falls back to ebpf, naming why the kernel was passed over', async () => {
    const n = node('family l2tp not found', true);
    const r = await selectBackend('auto', opts, n.probes);
    assert.deepEqual(n.made, ['ebpf']);
    assert.equal(r.reason, 'auto: kernel L2TP unavailable (family l2tp not found); eBPF programs loaded');
  });

  it('auto ends at userspace, naming both reasons', async () => {
    const n = node('family l2tp not found', 'no bpffs at /sys/fs/bpf');
    const r = await selectBackend('auto', opts, n.probes);
    assert.deepEqual(n.made, ['userspace']);
    assert.equal(
      r.reason,
      'auto: kernel L2TP unavailable (family l2tp not found); eBPF unavailable (no bpffs at /sys/fs/bpf)',
    );
  });

  it('an explicit choice that cannot run is an error naming the cause, never a fallback', async () => {
    const n = node('family l2tp not found', 'BPF not permitted');
    await assert.rejects(selectBackend('kernel', opts, n.probes), {
      message: 'kernel backend unavailable: family l2tp not found',
    });
    await assert.rejects(selectBackend('ebpf', opts, n.probes), {
      message: 'ebpf backend unavailable: BPF not permitted',
    });
    assert.deepEqual(n.made, []);
  });

  it('an explicit choice that can run is taken as requested', async () => {
    for (const choice of ['kernel', 'ebpf', 'userspace'] as const) {
      const n = node(true, true);
      const r = await selectBackend(choice, opts, n.probes);
      assert.deepEqual(n.made, [choice]);
      assert.equal(r.reason, 'requested');
    }
  });

  it('userspace is always possible on this node', async () => {
    const { backend } = await selectBackend('userspace', opts);
    assert.equal(backend.kind, 'userspace');
    await backend.close({ keepDevices: true });
  });
});
