import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deepEqual } from './deep-equal.js';

describe('deepEqual', () => {
  it('compares JSON values structurally, key order aside', () => {
    assert.equal(deepEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }), true);
    assert.equal(deepEqual({ a: 1 }, { a: 2 }), false);
    assert.equal(deepEqual([1, 2], [2, 1]), false);
    assert.equal(deepEqual([], {}), false);
    assert.equal(deepEqual(null, {}), false);
    assert.equal(deepEqual('1', 1), false);
  });

  it('a key set to undefined is absent; a key with a value is not', () => {
    assert.equal(deepEqual({ a: 1, b: undefined }, { a: 1 }), true);
    assert.equal(deepEqual({ a: 1 }, { a: 1, b: 0 }), false);
    assert.equal(deepEqual({ a: undefined }, { b: undefined }), true);
  });
});
