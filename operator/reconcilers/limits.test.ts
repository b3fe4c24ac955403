import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeSessionSpec, NodeStateSpec, NodeTunnelSpec } from '../../lib/api/schemas.js';
import { admit } from './limits.js';

const session = (name: string, id: number): NodeSessionSpec => ({
  pseudowire: { namespace: 'ns', name },
  sessionId: id,
  peerSessionId: id,
  ifname: `l2tpeth${id}`,
  l2specType: 'default',
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mode: 'bridge',
});
const tunnel = (name: string, sessions: NodeSessionSpec[]): NodeTunnelSpec => ({
  name,
  tunnelId: 1,
  peerTunnelId: 1,
  encap: 'udp',
  local: '10.0.0.1',
  remote: '10.0.0.2',
  udpChecksum: false,
  sessions,
});
// pw-N was created at second N: the lower, the older
const order = (p: { name: string }) => p.name.replace(/\d+/, (d) => d.padStart(6, '0'));
const names = (s: NodeStateSpec) => s.tunnels.map((t) => t.sessions.map((x) => x.pseudowire.name));

describe('node state admission', () => {
  it('takes everything within the limits and returns the same spec', () => {
    const spec = { nodeName: 'n1', tunnels: [tunnel('a', [session('pw-1', 1)])] };
    const r = admit(spec, order, { sessionsPerTunnel: 2, nodeStateItems: 10, nodeStateSpecBytes: 1e6 });
    assert.equal(r.spec, spec);
    assert.equal(r.refused.size, 0);
  });

  it('refuses the newest beyond a tunnel limit, whatever their order in the spec', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-3', 3), session('pw-10', 10), session('pw-1', 1)])],
    };
    const r = admit(spec, order, { sessionsPerTunnel: 2, nodeStateItems: 10, nodeStateSpecBytes: 1e6 });
    assert.deepEqual(names(r.spec), [['pw-3', 'pw-1']]);
    assert.deepEqual([...r.refused.keys()], ['ns/pw-10']);
    assert.equal(r.refused.get('ns/pw-10')?.reason, 'TunnelFull');
    assert.match(r.refused.get('ns/pw-10')!.message, /L2TPTunnel a already carries 2 sessions/);
  });

  it('counts tunnels and sessions of the whole node, and its bytes', () => {
    const spec = {
      nodeName: 'n1',
      tunnels: [tunnel('a', [session('pw-1', 1), session('pw-4', 4)]), tunnel('b', [session('pw-2', 2)])],
    };
    // two tunnels + two sessions fit in four items: pw-4, the newest, is left out
    const r = admit(spec, order, { sessionsPerTunnel: 10, nodeStateItems: 4, nodeStateSpecBytes: 1e6 });
    assert.deepEqual(names(r.spec), [['pw-1'], ['pw-2']]);
    assert.equal(r.refused.get('ns/pw-4')?.reason, 'NodeStateFull');
    assert.match(r.refused.get('ns/pw-4')!.message, /node n1 already holds 4 tunnels and sessions/);
    const base = JSON.stringify({ ...spec, tunnels: spec.tunnels.map((t) => ({ ...t, sessions: [] })) });
    const one = JSON.stringify(session('pw-1', 1)).length + 1;
    const bySize = admit(spec, order, {
      sessionsPerTunnel: 10,
      nodeStateItems: 100,
      nodeStateSpecBytes: base.length + 2 * one,
    });
    assert.deepEqual(names(bySize.spec), [['pw-1'], ['pw-2']]);
    assert.equal(bySize.refused.get('ns/pw-4')?.reason, 'NodeStateFull');
  });
});
