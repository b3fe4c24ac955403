import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WriteSpacing } from './spacing.js';

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
