// L2TPNodeState pieces shared by the agent's integration tests and its bench, and a backend's desired
// state of many sessions for the teardown tests.
import { Writable } from 'node:stream';
import pino from 'pino';
import type { DesiredState } from '../../datapath/agent/reconcile.js';
import type { NodeSessionSpec, NodeStateSpec } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';

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

/**
 * A node state with one UDP tunnel "red": IDs 42/45, ports 5000/5001, underlay subnet.1 -> subnet.2,
 * no UDP checksums. staticPeerOf is its far side.
 */
export const nodeStateWith = (
  nodeName: string,
  subnet: string,
  sessions: NodeSessionSpec[],
): NodeStateSpec => ({
  nodeName,
  tunnels: [
    {
      name: 'red',
      tunnelId: 42,
      peerTunnelId: 45,
      encap: 'udp',
      local: `${subnet}.1`,
      remote: `${subnet}.2`,
      udpSourcePort: 5000,
      udpDestinationPort: 5001,
      udpChecksum: false,
      sessions,
    },
  ],
});

/**
 * n sessions (ids 1..n, cookieSession with peer 100,000 + id) over UDP tunnels of perTunnel each from
 * local to remote, without checksums: tunnel t is `${namePrefix}t${t}`, IDs 100 + t and 200 + t,
 * ports 6000 + t. The benches' node of many sessions.
 */
export function manySessionsSpec(o: {
  nodeName: string;
  n: number;
  perTunnel: number;
  local: string;
  remote: string;
  namePrefix: string;
}): NodeStateSpec {
  const tunnels: NodeStateSpec['tunnels'] = [];
  for (let t = 0; t * o.perTunnel < o.n; t++) {
    const ids = Array.from(
      { length: Math.min(o.perTunnel, o.n - t * o.perTunnel) },
      (_, i) => t * o.perTunnel + i + 1,
    );
    tunnels.push({
      name: `${o.namePrefix}t${t}`,
      tunnelId: 100 + t,
      peerTunnelId: 200 + t,
      encap: 'udp',
      local: o.local,
      remote: o.remote,
      udpSourcePort: 6000 + t,
      udpDestinationPort: 6000 + t,
      udpChecksum: false,
      sessions: ids.map((id) => cookieSession(id, 100_000 + id)),
    });
  }
  return { nodeName: o.nodeName, tunnels };
}

/** A node state's tunnels and sessions as a static-mode config (`kube-l2tp-datapath static --config`). */
export function staticConfigOf(spec: NodeStateSpec) {
  return {
    tunnels: spec.tunnels.map((t) => ({
      tunnelId: t.tunnelId,
      peerTunnelId: t.peerTunnelId,
      encap: t.encap,
      local: t.local,
      remote: t.remote,
      udpSourcePort: t.udpSourcePort,
      udpDestinationPort: t.udpDestinationPort,
      udpChecksum: t.udpChecksum,
      sessions: t.sessions.map((s) => ({
        sessionId: s.sessionId,
        peerSessionId: s.peerSessionId,
        name: s.ifname,
        cookie: s.cookie,
        peerCookie: s.peerCookie,
        l2specType: s.l2specType,
      })),
    })),
  };
}

/**
 * The far side of nodeStateWith's tunnel (UDP ports 5000/5001, underlay subnet.1 -> subnet.2) as a
 * static-mode config: the peer of cookieSession(sessionId, peerSessionId), device `ifname`.
 */
export function staticPeerOf(subnet: string, sessionId: number, peerSessionId: number, ifname: string) {
  const near = cookieSession(sessionId, peerSessionId);
  return {
    tunnels: [
      {
        tunnelId: 45,
        peerTunnelId: 42,
        encap: 'udp',
        local: `${subnet}.2`,
        remote: `${subnet}.1`,
        udpSourcePort: 5001,
        udpDestinationPort: 5000,
        sessions: [
          {
            sessionId: peerSessionId,
            peerSessionId: sessionId,
            name: ifname,
            cookie: near.peerCookie,
            peerCookie: near.cookie,
            l2specType: 'default',
          },
        ],
      },
    ],
  };
}

/** One UDP tunnel (ID 1, ports 5901/5902) of n sessions 1..n named l2tpeth1..n, as the agent's reconcile takes it. */
export const manySessions = (n: number, local: string, remote: string): DesiredState => ({
  tunnels: [
    {
      spec: {
        tunnelId: 1,
        peerTunnelId: 2,
        encap: 'udp',
        local,
        remote,
        udpSourcePort: 5901,
        udpDestinationPort: 5902,
        udpChecksum: false,
      },
      sessions: Array.from({ length: n }, (_, i) => ({
        tunnelId: 1,
        sessionId: i + 1,
        peerSessionId: i + 1,
        ifname: `l2tpeth${i + 1}`,
        mtu: 1446,
        l2specType: 'default' as const,
        sendSequence: false,
        requireSequence: false,
        reorderTimeoutMs: 0,
      })),
    },
  ],
});

/** A logger whose records are kept in lines, parsed. */
export function capturingLogger<T>(): { log: Logger; lines: T[] } {
  const lines: T[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(JSON.parse(chunk.toString()) as T);
        cb();
      },
    }),
  );
  return { log, lines };
}
