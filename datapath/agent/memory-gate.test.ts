import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { memoryGate, memoryRefusal, NEW_SESSION_MEMORY_SHARE } from './memory-gate.js';

const MiB = 2 ** 20;

describe('memory gate of new sessions', () => {
  it('refuses from the share of the limit on, naming the use, the limit and the setting to raise', () => {
    const limitBytes = 1024 * MiB;
    assert.equal(memoryRefusal(undefined), undefined, 'no limit: no refusal');
    assert.equal(
      memoryRefusal({ workingSetBytes: NEW_SESSION_MEMORY_SHARE * limitBytes - 1, limitBytes }),
      undefined,
    );
    assert.equal(
      memoryRefusal({ workingSetBytes: NEW_SESSION_MEMORY_SHARE * limitBytes, limitBytes }),
      'not made: the datapath pod has reached 90% of its 1024 MiB memory limit, where new sessions stop so that ' +
        'the sessions up keep running (raise datapath.resources.limits.memory)',
    );
  });

  it('reads the cgroup at each call', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl2-gate-'));
    writeFileSync(join(dir, 'memory.max'), `${100 * MiB}\n`);
    writeFileSync(join(dir, 'memory.stat'), `anon 1\ninactive_file ${5 * MiB}\n`);
    writeFileSync(join(dir, 'memory.current'), `${80 * MiB}\n`);
    const gate = memoryGate({ dir, version: 2 });
    assert.equal(gate.limitBytes, 100 * MiB);
    assert.equal(gate.refuseNewSession(), undefined);
    writeFileSync(join(dir, 'memory.current'), `${96 * MiB}\n`); // 91 MiB without the inactive file pages
    const refusal = gate.refuseNewSession();
    assert.match(refusal ?? '', /has reached 90% of its 100 MiB/);
    writeFileSync(join(dir, 'memory.current'), `${99 * MiB}\n`);
    assert.equal(gate.refuseNewSession(), refusal, 'the same text whatever the exact use');
    assert.equal(memoryGate(undefined).refuseNewSession(), undefined, 'no cgroup: no gate');
  });
});
