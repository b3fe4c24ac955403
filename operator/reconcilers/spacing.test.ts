import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WriteDebounce, WriteSpacing } from './spacing.js';

describe('WriteSpacing', () => {
  it('lets the first write through and spaces the next ones per key', () => {
    let t = 1000;
    const s = new WriteSpacing(3000, () => t);
    assert.equal(s.wait('node/a'), 0);
    s.wrote('node/a');
    t += 1000;
    assert.equal(s.wait('node/a'), 2000);
    assert.equal(s.wait('node/b'), 0, 'other keys are not held');
    t += 2500;
    assert.equal(s.wait('node/a'), 0);
    s.forget('node/b');
    s.forget('node/a');
    assert.equal(s.wait('node/a'), 0);
  });
});

describe('WriteDebounce', () => {
  it('writes a value once it has stayed the same for the quiet time, or at the latest after the maximum', () => {
    let t = 0;
    const d = new WriteDebounce(2000, 10_000, () => t);
    assert.equal(d.wait('tun/a', 'one'), 2000, 'a new value waits for quiet');
    t += 1500;
    assert.equal(d.wait('tun/a', 'one'), 500, 'the same value: the quiet time runs on');
    assert.equal(d.wait('tun/b', 'x'), 2000, 'other keys are apart');
    t += 1000;
    assert.equal(d.wait('tun/a', 'two'), 2000, 'a change restarts the quiet time');
    t += 2000;
    assert.equal(d.wait('tun/a', 'two'), 0);
    d.forget('tun/a');
    // a value that keeps changing is written at the latest maxMs after it first differed
    for (let i = 0; i < 9; i++) {
      assert.ok(d.wait('tun/a', `v${i}`) > 0);
      t += 1000;
    }
    assert.equal(d.wait('tun/a', 'v9'), 1000);
    t += 1000;
    assert.equal(d.wait('tun/a', 'v10'), 0);
  });

  it('holds a value while the caller is busy, however quiet, until the busy maximum', () => {
    let t = 0;
    const d = new WriteDebounce(1000, 5000, () => t);
    assert.equal(d.wait('node/a', 'one', 20_000), 20_000);
    t += 6000;
    assert.equal(d.wait('node/a', 'one', 20_000), 14_000, 'past quiet and maximum: still held');
    assert.equal(d.wait('node/a', 'one'), 0, 'no longer busy: settled');
    t += 1000;
    assert.equal(d.wait('node/a', 'two', 20_000), 13_000, 'a change does not restart the busy maximum');
    t += 13_000;
    assert.equal(d.wait('node/a', 'three', 20_000), 0);
  });
});
