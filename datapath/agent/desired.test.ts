import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeStateSpec } from '../../lib/api/schemas.js';
import { desiredFromSpec } from './desired.js';

const spec = (sessionMtu?: number, encap: 'udp' | 'ip' = 'udp'): NodeStateSpec => ({
  nodeName: 'n1',
  tunnels: [
    {
      name: 'red',
      tunnelId: 1,
      peerTunnelId: 2,
      encap,
      local: '10.0.0.1',
      remote: '10.0.0.2',
      ...(encap === 'udp' ? { udpSourcePort: 5000, udpDestinationPort: 5001 } : {}),
      udpChecksum: false,
      sessions: [
        {
          pseudowire: { namespace: 'default', name: 'red-wire' },
          sessionId: 10,
          peerSessionId: 20,
          ifname: 'l2tpeth10',
          cookie: '0102030405060708',
          peerCookie: '11121314',
          l2specType: 'default',
          sendSequence: false,
          requireSequence: false,
          reorderTimeoutMs: 0,
          mode: 'bridge',
          ...(sessionMtu !== undefined ? { mtu: sessionMtu } : {}),
        },
      ],
    },
  ],
});

test('node state spec becomes backend specs, with the MTU derived like the kernel', () => {
  const d = desiredFromSpec(spec(), { underlayMtu: 1500 });
  const t = d.tunnels[0]!;
  assert.equal(t.name, 'red');
  assert.equal(t.spec.udpSourcePort, 5000);
  const s = t.sessions[0]!;
  assert.equal(s.mtu, 1438, 'UDP/IPv4, our 8-byte cookie, default sublayer');
  assert.equal(s.tunnelId, 1);
  assert.deepEqual(s.pseudowire, { namespace: 'default', name: 'red-wire' });
  assert.equal(s.cookie, '0102030405060708');
  assert.equal(
    desiredFromSpec(spec(undefined, 'ip'), { underlayMtu: 9000 }).tunnels[0]!.sessions[0]!.mtu,
    9000 - 50,
  );
});

test('an explicit MTU wins over the fixed policy, which wins over derivation', () => {
  assert.equal(
    desiredFromSpec(spec(1300), { underlayMtu: 1500, fixedMtu: 1400 }).tunnels[0]!.sessions[0]!.mtu,
    1300,
  );
  assert.equal(
    desiredFromSpec(spec(), { underlayMtu: 1500, fixedMtu: 1400 }).tunnels[0]!.sessions[0]!.mtu,
    1400,
  );
});

test('an explicit MTU above what the underlay carries is refused with what to change', () => {
  // UDP/IPv4, 8-byte cookie, default sublayer: 1500 - 62 = 1438 at most
  const ok = desiredFromSpec(spec(1438), { underlayMtu: 1500 }).tunnels[0]!.sessions[0]!;
  assert.equal(ok.refused, undefined);
  const s = desiredFromSpec(spec(1439), { underlayMtu: 1500 }).tunnels[0]!.sessions[0]!;
  assert.equal(
    s.refused,
    'spec.mtu 1439 is more than the underlay carries: at most 1438 over an underlay MTU of 1500; lower ' +
      "spec.mtu, or raise the agent's underlay MTU (Helm mtu.underlayMTU) if the node network carries larger packets",
  );
  assert.equal(
    desiredFromSpec(spec(9000), { underlayMtu: 9100 }).tunnels[0]!.sessions[0]!.refused,
    undefined,
  );
});
