// L2TPNodeState.spec (operator vocabulary) -> what the backend must hold. Pure.
import type { NodeStateSpec, NodeTunnelSpec } from '../../lib/api/schemas.js';
import { sessionMtu } from '../../lib/wire/session.js';
import type { DesiredState } from './reconcile.js';

export interface DesiredOptions {
  /** Underlay MTU used when a session has no explicit MTU (the kernel derives it the same way). */
  underlayMtu: number;
  /** A tunnel's own underlay MTU where it is known (static mode: from the route to the peer). */
  tunnelUnderlayMtu?: (t: NodeTunnelSpec) => number | undefined;
  /** When set, replaces the derived MTU of sessions without an explicit one. */
  fixedMtu?: number;
  /**
   * What a refused MTU's message names: the session's MTU setting and where the underlay MTU comes
   * from (the agent's is a setting; static mode reads the route to the peer).
   */
  mtuWords?: { field: string; underlay: string };
}

/** The agent's words: the Pseudowire's field and the chart's setting. */
const AGENT_MTU_WORDS = {
  field: 'spec.mtu',
  underlay: "the agent's underlay MTU (Helm mtu.underlayMTU)",
};

const cookieLength = (hex: string | undefined): 0 | 4 | 8 =>
  hex === undefined ? 0 : hex.length === 8 ? 4 : 8;

/**
 * An explicit MTU above what the underlay carries in one packet would leave every large frame to IP
 * fragmentation (l2tp_eth sets ignore_df) or to silent loss: refused with what to change instead.
 */
function mtuProblem(
  mtu: number | undefined,
  most: number,
  underlayMtu: number,
  words: { field: string; underlay: string },
): string | undefined {
  if (mtu === undefined || mtu <= most) return undefined;
  return (
    `${words.field} ${mtu} is more than the underlay carries: at most ${most} over an underlay MTU of ` +
    `${underlayMtu}; lower ${words.field}, or raise ${words.underlay} if the node network carries ` +
    `larger packets`
  );
}

export function desiredFromSpec(spec: NodeStateSpec, opts: DesiredOptions): DesiredState {
  return {
    tunnels: spec.tunnels.map((t) => ({
      name: t.name,
      spec: {
        tunnelId: t.tunnelId,
        peerTunnelId: t.peerTunnelId,
        encap: t.encap,
        local: t.local,
        remote: t.remote,
        udpChecksum: t.udpChecksum,
        ...(t.udpSourcePort !== undefined ? { udpSourcePort: t.udpSourcePort } : {}),
        ...(t.udpDestinationPort !== undefined ? { udpDestinationPort: t.udpDestinationPort } : {}),
      },
      sessions: t.sessions.map((s) => {
        const underlay = opts.tunnelUnderlayMtu?.(t) ?? opts.underlayMtu;
        const most = sessionMtu(
          {
            encap: t.encap,
            ipv6: t.local.includes(':'),
            cookieLength: cookieLength(s.cookie),
            l2specType: s.l2specType,
          },
          underlay,
        );
        const refused = mtuProblem(s.mtu, most, underlay, opts.mtuWords ?? AGENT_MTU_WORDS);
        return {
          tunnelId: t.tunnelId,
          sessionId: s.sessionId,
          peerSessionId: s.peerSessionId,
          ifname: s.ifname,
          name: s.ifname,
          l2specType: s.l2specType,
          sendSequence: s.sendSequence,
          requireSequence: s.requireSequence,
          reorderTimeoutMs: s.reorderTimeoutMs,
          ...(s.cookie !== undefined ? { cookie: s.cookie } : {}),
          ...(s.peerCookie !== undefined ? { peerCookie: s.peerCookie } : {}),
          mtu: s.mtu ?? opts.fixedMtu ?? most,
          pseudowire: s.pseudowire,
          attach: {
            mode: s.mode,
            ...(s.allowedNamespaces ? { allowedNamespaces: s.allowedNamespaces } : {}),
          },
          ...(refused !== undefined ? { refused } : {}),
        };
      }),
    })),
  };
}
