// The pump addon refuses an argument it cannot take whole, before it touches anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadPump } from './native.js';

describe('pump addon arguments', () => {
  it('refuses a TAP name that does not fit an interface name, rather than cutting it', () => {
    const pump = loadPump();
    // cut, l2tpeth123456789 (16 bytes) would open or create l2tpeth12345678
    assert.throws(() => pump.openTap('l2tpeth123456789', false), TypeError);
    assert.throws(() => pump.openTap('', false), TypeError);
  });
});
