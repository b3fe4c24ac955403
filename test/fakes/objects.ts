// The objects the operator's unit tests start from: a UDP tunnel between nodes a and b that namespace
// "lab" may use, and pseudowires of that namespace; and node-state pieces (a tunnel with sessions) for
// the tests of what reads and writes node states.
import { MAX_NODE_STATE_ITEMS } from '../../lib/api/limits.js';
import {
  API_VERSION,
  type L2TPTunnel,
  type NodeSessionSpec,
  type NodeStateSpec,
  type NodeTunnelSpec,
  type Pseudowire,
} from '../../lib/api/schemas.js';
import type { ReconcileReport } from '../../datapath/agent/reconcile.js';

/** Session `id` of pseudowire ns/`name`: no cookies, default sublayer, bridge mode. */
export const nodeSession = (name: string, id: number, namespace = 'ns'): NodeSessionSpec => ({
  pseudowire: { namespace, name },
  sessionId: id,
  peerSessionId: id,
  ifname: `l2tpeth${id}`,
  l2specType: 'default',
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mode: 'bridge',
});

/** A node state's UDP tunnel `name` (ID `tunnelId` both ways, 10.0.0.1 -> 10.0.0.2) with `sessions`. */
export const nodeTunnel = (name: string, sessions: NodeSessionSpec[], tunnelId = 1): NodeTunnelSpec => ({
  name,
  tunnelId,
  peerTunnelId: tunnelId,
  encap: 'udp',
  local: '10.0.0.1',
  remote: '10.0.0.2',
  udpChecksum: false,
  sessions,
});

/**
 * A node state as full as the operator fills one (MAX_NODE_STATE_ITEMS items: a tunnel and its
 * sessions, with 40-character namespace and pseudowire names: about 870 KB of spec), and the report of
 * an agent on which every one of those sessions failed, each with a message of its own.
 */
export function fullShardFailing(node: string): { spec: NodeStateSpec; report: ReconcileReport } {
  const namespace = `tenant-${'n'.repeat(33)}`;
  const sessions = Array.from({ length: MAX_NODE_STATE_ITEMS - 1 }, (_, k) =>
    nodeSession(`wire-${k}-`.padEnd(40, 'x'), 1000 + k, namespace),
  );
  const spec = { nodeName: node, tunnels: [nodeTunnel('t', sessions)] };
  return {
    spec,
    report: {
      tunnels: [{ name: 't', tunnelId: 1, state: 'Up' }],
      sessions: sessions.map((s) => ({
        tunnelId: 1,
        sessionId: s.sessionId,
        ifname: s.ifname,
        mtu: 1446,
        state: 'Error',
        error: `creating ${s.ifname}: RTM_NEWLINK: No buffer space available (ENOBUFS)`,
        pseudowire: s.pseudowire,
      })),
      removed: [],
      conflicts: [],
    },
  };
}

export const tunnelObject = (name: string, status?: L2TPTunnel['status']): L2TPTunnel => ({
  apiVersion: API_VERSION,
  kind: 'L2TPTunnel',
  metadata: { name },
  spec: {
    encapsulation: 'UDP',
    udpChecksum: false,
    local: { node: 'a' },
    peer: { node: 'b' },
    allowedNamespaces: ['lab'],
  },
  ...(status ? { status } : {}),
});

export const pseudowireObject = (
  name: string,
  spec: Pseudowire['spec'],
  more: Pick<Pseudowire, 'status'> & { uid?: string } = {},
): Pseudowire => ({
  apiVersion: API_VERSION,
  kind: 'Pseudowire',
  metadata: { name, namespace: 'lab', ...(more.uid ? { uid: more.uid } : {}) },
  spec,
  ...(more.status ? { status: more.status } : {}),
});
