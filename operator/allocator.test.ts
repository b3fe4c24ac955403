import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Allocator } from './allocator.js';

describe('Allocator', () => {
  it('never hands out 0, is idempotent per owner, and keeps IDs unique per node', () => {
    const a = new Allocator();
    const x = a.allocate('session', ['n1', 'n2'], 'pw/a');
    assert.equal(x, 1);
    assert.equal(a.allocate('session', ['n1', 'n2'], 'pw/a'), 1);
    assert.equal(a.allocate('session', ['n1', 'n2'], 'pw/b'), 2);
    // on another node pair the lowest free ID is reused: session IDs are per node
    assert.equal(a.allocate('session', ['n3', 'n4'], 'pw/c'), 1);
    assert.equal(a.allocate('session', ['n2', 'n3'], 'pw/d'), 3);
    assert.throws(() => a.claim('session', 'n1', 0, 'pw/x'), /reserved/);
  });

  it('reports conflicts for explicit IDs and frees IDs only on release', () => {
    const a = new Allocator();
    assert.equal(a.claim('tunnel', 'n1', 42, 'tun/x'), undefined);
    assert.equal(a.claim('tunnel', 'n1', 42, 'tun/y'), 'tun/x');
    assert.equal(a.claim('tunnel', 'n2', 42, 'tun/y'), undefined);
    a.release('tun/x');
    assert.equal(a.claim('tunnel', 'n1', 42, 'tun/y'), undefined);
  });

  it('allocates UDP ports from the configured range', () => {
    const a = new Allocator({ tunnel: [1, 10], session: [1, 10], port: [5000, 5001] });
    assert.equal(a.allocate('port', ['n1'], 'tun/a'), 5000);
    assert.equal(a.allocate('port', ['n1'], 'tun/b'), 5001);
    assert.throws(() => a.allocate('port', ['n1'], 'tun/c'), /no free port/);
  });
});
