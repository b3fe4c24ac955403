// L2TPNodeState pieces shared by the agent's integration test and its bench.
import type { NodeSessionSpec } from '../../lib/api/schemas.js';

/** Session `id` of pseudowire default/wire-<id>: 8-byte cookies both ways, default sublayer, bridge mode. */
export const cookieSession = (id: number, peerSessionId: number): NodeSessionSpec => ({
  pseudowire: { namespace: 'default', name: `wire-${id}` },
  sessionId: id,
  peerSessionId,
  ifname: `l2tpeth${id}`,
  cookie: '0102030405060708',
  peerCookie: '1112131415161718',
  l2specType: 'default',
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mode: 'bridge',
});
