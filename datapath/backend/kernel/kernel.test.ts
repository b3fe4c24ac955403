import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { L2tpSessionInfo, L2tpTunnelInfo } from '../../../lib/netlink/l2tp.js';
import type { SessionSpec } from '../types.js';
import { sessionDiff, tunnelDiff } from './index.js';

const want = {
  tunnelId: 100,
  peerTunnelId: 200,
  encap: 'udp' as const,
  local: '10.203.0.2',
  remote: '10.203.0.1',
  udpSourcePort: 17001,
  udpDestinationPort: 17002,
  udpChecksum: false,
};
const tunnel: L2tpTunnelInfo = { ...want, protoVersion: 3 };

describe('kernel backend: adoption decisions', () => {
  it('keeps a tunnel whose dump matches, names every difference otherwise', () => {
    assert.deepEqual(tunnelDiff(tunnel, want), []);
    assert.deepEqual(tunnelDiff({ ...tunnel, udpDestinationPort: 1701, peerTunnelId: 7 }, want), [
      'peerTunnelId 7 != 200',
      'udpDestinationPort 1701 != 17002',
    ]);
    assert.deepEqual(tunnelDiff({ ...tunnel, encap: 'ip' }, want), ['encap ip != udp']);
  });

  it('compares IPv6 addresses by value, not by spelling', () => {
    const t6 = { ...tunnel, local: 'fd00:203::2', remote: 'fd00:203::1' };
    assert.deepEqual(
      tunnelDiff(t6, { ...want, local: 'fd00:203:0:0::2', remote: 'FD00:203::1'.toLowerCase() }),
      [],
    );
  });

  const session: L2tpSessionInfo = {
    tunnelId: 100,
    sessionId: 1001,
    peerSessionId: 2001,
    pwType: 5,
    cookie: Buffer.from('0102030405060708', 'hex'),
  };
  const spec: SessionSpec = {
    tunnelId: 100,
    sessionId: 1001,
    peerSessionId: 2001,
    ifname: 'l2tpeth0',
    mtu: 1438,
    cookie: '0102030405060708',
    l2specType: 'default',
    sendSequence: false,
    requireSequence: false,
    reorderTimeoutMs: 0,
  };

  it('recreates a session only for what the kernel cannot change in place', () => {
    assert.deepEqual(sessionDiff(session, spec), []);
    assert.deepEqual(sessionDiff({ ...session, peerSessionId: 9 }, spec), ['peerSessionId 9 != 2001']);
    assert.deepEqual(sessionDiff(session, { ...spec, cookie: '0102030405060709' }), ['cookie differs']);
    assert.deepEqual(sessionDiff(session, { ...spec, peerCookie: 'a1b2c3d4' }), ['peerCookie differs']);
    assert.deepEqual(sessionDiff({ ...session, pwType: 7 }, spec), ['pseudowire type 7 is not ETH']);
    assert.deepEqual(sessionDiff({ ...session, l2specType: 'none' }, spec), ['l2specType none != default']);
    // sequencing is changed with SESSION_MODIFY, not by recreation
    assert.deepEqual(sessionDiff(session, { ...spec, sendSequence: true }), []);
  });
});
