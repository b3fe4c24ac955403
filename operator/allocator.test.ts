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

  it('asked again without a recorded ID, gives the owner the ID it holds, not the lowest free one', () => {
    const a = new Allocator();
    a.allocatePair('tunnel', 'tunnel ID', 'tun/x', { local: 'n1', peer: 'n2' }, {});
    const pair = a.allocatePair('tunnel', 'tunnel ID', 'tun/y', { local: 'n1', peer: 'n2' }, {});
    assert.deepEqual(pair, { local: 2, peer: 2, conflicts: [], exhausted: [] });
    a.release('tun/x');
    assert.deepEqual(a.allocatePair('tunnel', 'tunnel ID', 'tun/y', { local: 'n1', peer: 'n2' }, {}), pair);
    // held on one side only (a restart seeded from one node's state): kept there, the other allocated
    const b = new Allocator();
    b.claim('tunnel', 'n1', 9, 'tun/z');
    assert.deepEqual(b.allocatePair('tunnel', 'tunnel ID', 'tun/z', { local: 'n1', peer: 'n2' }, {}), {
      local: 9,
      peer: 1,
      conflicts: [],
      exhausted: [],
    });
  });

  it('allocates UDP ports from the configured range', () => {
    const a = new Allocator({ tunnel: [1, 10], session: [1, 10], port: [5000, 5001] });
    assert.equal(a.allocate('port', ['n1'], 'tun/a'), 5000);
    assert.equal(a.allocate('port', ['n1'], 'tun/b'), 5001);
    assert.throws(() => a.allocate('port', ['n1'], 'tun/c'), /no free port/);
  });

  it('gives each side its own ID when no one ID is free on both nodes, and says when a node has none left', () => {
    const a = new Allocator({ tunnel: [1, 10], session: [1, 10], port: [5000, 5001] });
    // n1 and n2 each have one port left, not the same one
    a.allocatePair('port', 'UDP port', 'tun/a', { local: 'n1', peer: 'n3' }, {});
    a.claim('port', 'n2', 5001, 'tun/b');
    assert.deepEqual(a.allocatePair('port', 'UDP port', 'tun/c', { local: 'n1', peer: 'n2' }, {}), {
      local: 5001,
      peer: 5000,
      conflicts: [],
      exhausted: [],
    });
    // n1 is full now: what can be allocated is, and the side that cannot be is named
    assert.deepEqual(a.allocatePair('port', 'UDP port', 'tun/d', { local: 'n1', peer: 'n4' }, {}), {
      peer: 5000,
      conflicts: [],
      exhausted: ['no UDP port is free on node n1 (5000-5001 are all in use)'],
    });
  });

  it('knows the ID an owner holds per node, the latest first, and frees them all on release', () => {
    const a = new Allocator();
    assert.equal(a.idOf('session', 'n1', 'pw/a'), undefined);
    a.allocatePair('session', 'session ID', 'pw/a', { local: 'n1', peer: 'n2' }, {});
    assert.equal(a.idOf('session', 'n1', 'pw/a'), 1);
    assert.equal(a.idOf('session', 'n2', 'pw/a'), 1);
    // a node still reports the old ID while the spec moved to 7: both stay taken, 7 is current
    a.claim('session', 'n1', 7, 'pw/a');
    assert.equal(a.idOf('session', 'n1', 'pw/a'), 7);
    assert.equal(a.claim('session', 'n1', 1, 'pw/b'), 'pw/a');
    a.releaseOn('session', 'n1', 'pw/a');
    assert.equal(a.idOf('session', 'n1', 'pw/a'), undefined);
    assert.equal(a.claim('session', 'n1', 1, 'pw/b'), undefined);
    assert.equal(a.count('session', 'n2'), 1);
    a.release('pw/a');
    assert.equal(a.count('session', 'n2'), 0);
    assert.equal(a.idOf('session', 'n2', 'pw/a'), undefined);
  });
  it('names the holder of a clashing ID, and hands those it refused back once the holder releases', () => {
    const freed: string[] = [];
    const a = new Allocator(undefined, (w) => freed.push(w));
    a.claim('tunnel', 'n1', 7, 'tun/first');
    const r = a.allocatePair('tunnel', 'tunnel ID', 'tun/second', { local: 'n1', peer: 'n2' }, { local: 7 });
    assert.deepEqual(r.conflicts, ['tunnel ID 7 on node n1 is already used by L2TPTunnel first']);
    a.claim('session', 'n1', 3, 'pw/lab/red');
    const p = a.allocatePair('session', 'session ID', 'pw/lab/blue', { local: 'n1' }, { local: 3 });
    assert.deepEqual(p.conflicts, ['session ID 3 on node n1 is already used by Pseudowire lab/red']);
    assert.deepEqual(freed, []);
    a.release('tun/first');
    assert.deepEqual(freed, ['tun/second']);
    a.release('tun/first');
    assert.deepEqual(freed, ['tun/second'], 'handed back once');
    assert.equal(a.claim('tunnel', 'n1', 7, 'tun/second'), undefined);
  });

  it('lets go of the IDs an edit replaced as the caller says, and hands back those refused them', () => {
    const freed: string[] = [];
    const a = new Allocator(undefined, (w) => freed.push(w));
    a.claim('session', 'n1', 1, 'pw/lab/red');
    a.claim('session', 'n2', 1, 'pw/lab/red');
    // edited from 1 to 9 on n1; blue asks for 1 there and is refused
    a.claim('session', 'n1', 9, 'pw/lab/red');
    assert.equal(a.claim('session', 'n1', 1, 'pw/lab/blue'), 'pw/lab/red');
    a.allocatePair('session', 'session ID', 'pw/lab/blue', { local: 'n1' }, { local: 1 });
    const asked: string[] = [];
    // a node still runs 1: nothing goes, nobody is handed back
    a.releaseUnless('pw/lab/red', (kind, node, id, latest) => {
      asked.push(`${kind} ${node} ${id} ${latest}`);
      return latest || id === 1;
    });
    assert.deepEqual(asked, ['session n1 1 false', 'session n1 9 true', 'session n2 1 true']);
    assert.deepEqual(freed, []);
    assert.equal(a.ownerOf('session', 'n1', 1), 'pw/lab/red');
    // nothing runs 1 any more: it goes, the latest stays, and blue asks again
    a.releaseUnless('pw/lab/red', (_k, _n, _id, latest) => latest);
    assert.deepEqual(freed, ['pw/lab/blue']);
    assert.equal(a.ownerOf('session', 'n1', 1), undefined);
    assert.equal(a.idOf('session', 'n1', 'pw/lab/red'), 9);
    assert.equal(a.idOf('session', 'n2', 'pw/lab/red'), 1, 'the other node keeps its own');
    // a node it no longer uses at all (its tunnel's peer moved): everything there goes
    a.releaseUnless('pw/lab/red', (_k, node) => node === 'n1');
    assert.equal(a.idOf('session', 'n2', 'pw/lab/red'), undefined);
    assert.equal(a.count('session', 'n2'), 0);
    assert.deepEqual(freed, ['pw/lab/blue'], 'handed back once, until refused again');
  });
});
