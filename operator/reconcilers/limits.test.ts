import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeSessionSpec, NodeStateSpec } from '../../lib/api/schemas.js';
import { nodeSession, nodeTunnel } from '../../test/fakes/objects.js';
import { place, type Limits } from './limits.js';

const session = (name: string, id: number) => nodeSession(name, id);
const tunnel = (name: string, sessions: NodeSessionSpec[]) => nodeTunnel(name, sessions);
// pw-N was created at second N: the lower, the older
const order = (p: { name: string }) => p.name.replace(/\d+/, (d) => d.padStart(6, '0'));

const names = (s: NodeStateSpec | undefined) =>
  s?.tunnels.map((t) => [t.name, ...t.sessions.map((x) => x.pseudowire.name)]);
const limits = (o: Partial<Limits> = {}): Limits => ({
  sessionsPerTunnel: 10,
  nodeStateItems: 100,
  nodeStateSpecBytes: 1e6,
  nodeStateShards: 1,
  ...o,
});

describe('node state placement', () => {
  it('takes everything within the limits and returns the same spec as the one shard', () => {
    const spec = { nodeName: 'n1', tunnels: [tunnel('a', [session('pw-1', 1)])] };
    const r = place(spec, [], order, limits({ sessionsPerTunnel: 2 }));
    assert.equal(r.shards.length, 1);
    assert.equal(r.shards[0], spec);
    assert.equal(r.refused.size, 0);
  });

  it('leaves no empty entry of a tunnel in one node state while another carries its sessions', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [
        tunnel('a', [session('pw-1', 1), session('pw-2', 2), session('pw-3', 3)]),
        tunnel('b', [session('pw-4', 4), session('pw-5', 5)]),
        tunnel('c', []),
      ],
    };
    const r = place(spec, [], order, limits({ nodeStateItems: 5, nodeStateShards: 2 }));
    // b's sessions go to the second (b's entry in the first, made before them, is left out); c, with
    // none, stays in the first
    assert.deepEqual(r.shards.map(names), [
      [['a', 'pw-1', 'pw-2'], ['c']],
      [
        ['a', 'pw-3'],
        ['b', 'pw-4', 'pw-5'],
      ],
    ]);
    // placed again from there, nothing moves
    assert.deepEqual(
      place(spec, r.shards, order, limits({ nodeStateItems: 5, nodeStateShards: 2 })).shards,
      r.shards,
    );
  });

  it('refuses the newest beyond a tunnel limit, whatever their order in the spec', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-3', 3), session('pw-10', 10), session('pw-1', 1)])],
    };
    const r = place(spec, [], order, limits({ sessionsPerTunnel: 2, nodeStateShards: 4 }));
    assert.deepEqual(r.shards.map(names), [[['a', 'pw-3', 'pw-1']]]);
    assert.deepEqual([...r.refused.keys()], ['ns/pw-10']);
    assert.equal(r.refused.get('ns/pw-10')?.reason, 'TunnelFull');
    assert.match(r.refused.get('ns/pw-10')!.message, /L2TPTunnel a already carries 2 sessions/);
  });

  it('with one node state, counts tunnels and sessions of the whole node, and its bytes', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-1', 1), session('pw-4', 4)]), tunnel('b', [session('pw-2', 2)])],
    };
    // two tunnels + two sessions fit in four items: pw-4, the newest, is left out
    const r = place(spec, [], order, limits({ nodeStateItems: 4 }));
    assert.deepEqual(r.shards.map(names), [
      [
        ['a', 'pw-1'],
        ['b', 'pw-2'],
      ],
    ]);
    assert.equal(r.refused.get('ns/pw-4')?.reason, 'NodeStateFull');
    assert.match(
      r.refused.get('ns/pw-4')!.message,
      /node n1 already holds 4 tunnels and sessions, the most one node state holds/,
    );
    const base = JSON.stringify({ nodeName: 'n1', tunnels: [] }).length;
    const tun = JSON.stringify({ ...spec.tunnels[0], sessions: [] }).length + 1;
    const one = JSON.stringify(session('pw-1', 1)).length + 1;
    const bySize = place(spec, [], order, limits({ nodeStateSpecBytes: base + 2 * tun + 2 * one }));
    assert.deepEqual(bySize.shards.map(names), [
      [
        ['a', 'pw-1'],
        ['b', 'pw-2'],
      ],
    ]);
    assert.equal(bySize.refused.get('ns/pw-4')?.reason, 'NodeStateFull');
  });

  it('puts what one node state cannot hold into the next, with its tunnel', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-1', 1), session('pw-4', 4)]), tunnel('b', [session('pw-2', 2)])],
    };
    const r = place(spec, [], order, limits({ nodeStateItems: 4, nodeStateShards: 2 }));
    assert.equal(r.refused.size, 0);
    assert.deepEqual(r.shards.map(names), [
      [
        ['a', 'pw-1'],
        ['b', 'pw-2'],
      ],
      [['a', 'pw-4']],
    ]);
    // each shard's spec is complete on its own: the tunnel's parameters travel with its sessions
    assert.deepEqual({ ...r.shards[1]!.tunnels[0], sessions: [] }, { ...spec.tunnels[0], sessions: [] });
    assert.equal(r.shards[1]!.nodeName, 'n1');
  });

  it('keeps every session in the shard it is in, and fills the lowest shard with room first', () => {
    const a = tunnel('a', [session('pw-1', 1), session('pw-2', 2), session('pw-3', 3)]);
    const spec = { nodeName: 'n1', tunnels: [a] };
    // pw-3 sits in shard 1 and pw-1 in shard 0; the newcomer pw-2 goes to shard 0, which has room
    const current = [
      { nodeName: 'n1', tunnels: [{ ...a, sessions: [a.sessions[0]!] }] },
      { nodeName: 'n1', tunnels: [{ ...a, sessions: [a.sessions[2]!] }] },
    ];
    const r = place(spec, current, order, limits({ nodeStateItems: 3, nodeStateShards: 3 }));
    assert.deepEqual(r.shards.map(names), [[['a', 'pw-1', 'pw-2']], [['a', 'pw-3']]]);
  });

  it('leaves a shard that holds nothing out, and skips a shard that cannot exist', () => {
    const a = tunnel('a', [session('pw-1', 1)]);
    const current = [
      { nodeName: 'n1', tunnels: [a] },
      { nodeName: 'n1', tunnels: [{ ...a, sessions: [session('pw-9', 9)] }] },
      { nodeName: 'n1', tunnels: [{ ...a, sessions: [session('pw-8', 8)] }] },
    ];
    const gone = place({ nodeName: 'n1', tunnels: [a] }, current, order, limits({ nodeStateShards: 3 }));
    assert.deepEqual(gone.shards.map(names), [[['a', 'pw-1']]]);
    // a shard left with a tunnel but no sessions hands the tunnel to a lower shard and goes
    const b = tunnel('b', []);
    const emptied = place(
      { nodeName: 'n1', tunnels: [a, b] },
      [
        { nodeName: 'n1', tunnels: [a] },
        { nodeName: 'n1', tunnels: [b] },
      ],
      order,
      limits({ nodeStateShards: 3 }),
    );
    assert.deepEqual(emptied.shards.map(names), [[['a', 'pw-1'], ['b']]]);
    const two = { nodeName: 'n1', tunnels: [tunnel('a', [session('pw-1', 1), session('pw-2', 2)])] };
    const skipped = place(two, [], order, limits({ nodeStateItems: 2, nodeStateShards: 3 }), (k) => k !== 1);
    assert.deepEqual(skipped.shards.map(names), [[['a', 'pw-1']], undefined, [['a', 'pw-2']]]);
  });

  it('refuses the newest when every shard is full, naming the node-wide limit', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-1', 1), session('pw-2', 2), session('pw-3', 3)])],
    };
    const r = place(spec, [], order, limits({ nodeStateItems: 2, nodeStateShards: 2 }));
    assert.deepEqual(r.shards.map(names), [[['a', 'pw-1']], [['a', 'pw-2']]]);
    assert.equal(r.refused.get('ns/pw-3')?.reason, 'NodeStateFull');
    assert.match(
      r.refused.get('ns/pw-3')!.message,
      /node n1 already holds 4 tunnels and sessions in its node states, the most a node holds \(2 node states of at most 2 items/,
    );
  });
});
