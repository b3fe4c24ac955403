import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { probeKernelL2tp } from './kernel/index.js';
import { selectBackend } from './select.js';
import { markerFor, parseMarker } from './userspace/tap.js';

describe('backend selection', () => {
  it('auto picks the kernel exactly when the l2tp family resolves, then ebpf, then userspace, and says why', async () => {
    const probe = await probeKernelL2tp();
    const { backend, reason } = await selectBackend('auto', { logger: silentLogger() });
    assert.equal(backend.kind === 'kernel', probe.available);
    assert.match(reason, /^auto: /);
    if (!probe.available) assert.ok(reason.includes(probe.reason), reason);
    if (backend.kind === 'userspace') assert.match(reason, /eBPF unavailable \(.+\)/);
    if (backend.kind === 'ebpf') assert.match(reason, /eBPF programs loaded/);
    await backend.close({ keepDevices: true });
  });

  it('kernel without the family is an error naming the cause; userspace is always possible', async () => {
    const probe = await probeKernelL2tp();
    if (!probe.available) {
      await assert.rejects(selectBackend('kernel', { logger: silentLogger() }), /kernel backend unavailable/);
    }
    const { backend } = await selectBackend('userspace', { logger: silentLogger() });
    assert.equal(backend.kind, 'userspace');
    await backend.close({ keepDevices: true });
  });
});

describe('TAP ownership marker', () => {
  it('round-trips and rejects foreign aliases', () => {
    assert.deepEqual(parseMarker(markerFor(42, 4294967295)), { tunnelId: 42, sessionId: 4294967295 });
    assert.equal(parseMarker('kube-l2tp'), undefined);
    assert.equal(parseMarker('uplink to router'), undefined);
    assert.equal(parseMarker(undefined), undefined);
  });
});
