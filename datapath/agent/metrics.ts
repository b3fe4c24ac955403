// Prometheus metrics of the agent. Per-session values come from the backend as cumulative totals,
// so they are exposed by collect() callbacks reading the last snapshot instead of being incremented.
import { Counter, Gauge, Registry } from 'prom-client';
import type { SessionCounters, TunnelCounters } from '../backend/types.js';
import type { SessionOutcome, TunnelOutcome } from './reconcile.js';

export interface AgentMetrics {
  registry: Registry;
  reconciles: Counter<'result'>;
  /** Reads of the node's L2TPNodeState: from the API (a GET) or from the watch's last event. */
  nodeStateReads: Counter<'from'>;
  /** Replace the per-session snapshot the collectors read. */
  setSessions(sessions: SessionOutcome[], counters: Map<string, SessionCounters>): void;
  /** Replace the per-tunnel snapshot (drops before a session is known), by tunnel ID. */
  setTunnels(tunnels: TunnelOutcome[], counters: Map<number, TunnelCounters>): void;
}

const LABELS = ['tunnel', 'session', 'namespace', 'pseudowire', 'ifname'] as const;
type Label = (typeof LABELS)[number];

export function createAgentMetrics(backend: string, backendReason: string): AgentMetrics {
  const registry = new Registry();
  let snapshot: { s: SessionOutcome; c: SessionCounters | undefined }[] = [];
  let tunnelSnapshot: { t: TunnelOutcome; c: TunnelCounters }[] = [];
  const tunnelLabels = (t: TunnelOutcome) => ({ tunnel: String(t.tunnelId), name: t.name ?? '' });
  const labels = (s: SessionOutcome): Record<Label, string> => ({
    tunnel: String(s.tunnelId),
    session: String(s.sessionId),
    namespace: s.pseudowire?.namespace ?? '',
    pseudowire: s.pseudowire?.name ?? '',
    ifname: s.ifname,
  });
  const totals = (name: string, help: string, pick: (c: SessionCounters) => number) =>
    new Counter({
      name,
      help,
      labelNames: LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const { s, c } of snapshot) if (c) this.inc(labels(s), pick(c));
      },
    });
  totals('kube_l2tp_session_rx_packets_total', 'Packets received on the session', (c) => c.rxPackets);
  totals('kube_l2tp_session_rx_bytes_total', 'Bytes received on the session', (c) => c.rxBytes);
  totals('kube_l2tp_session_tx_packets_total', 'Packets sent on the session', (c) => c.txPackets);
  totals('kube_l2tp_session_tx_bytes_total', 'Bytes sent on the session', (c) => c.txBytes);
  new Counter({
    name: 'kube_l2tp_session_drops_total',
    help: 'Received packets dropped, by reason',
    labelNames: [...LABELS, 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { s, c } of snapshot)
        for (const [reason, n] of Object.entries(c?.drops ?? {})) this.inc({ ...labels(s), reason }, n ?? 0);
    },
  });
  new Counter({
    name: 'kube_l2tp_tunnel_rx_packets_total',
    help: "Packets received for the tunnel's addresses and ports, before its session is looked up",
    labelNames: ['tunnel', 'name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { t, c } of tunnelSnapshot) this.inc(tunnelLabels(t), c.rxPackets);
    },
  });
  new Counter({
    name: 'kube_l2tp_tunnel_drops_total',
    help: 'Received packets of the tunnel dropped before a session took them (unknown session, truncated...), by reason',
    labelNames: ['tunnel', 'name', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { t, c } of tunnelSnapshot)
        for (const [reason, n] of Object.entries(c.drops)) this.inc({ ...tunnelLabels(t), reason }, n ?? 0);
    },
  });
  new Gauge({
    name: 'kube_l2tp_session_up',
    help: '1 when the session is up on this node',
    labelNames: LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const { s } of snapshot) this.set(labels(s), s.state === 'Up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'kube_l2tp_datapath_backend_info',
    help: 'The datapath backend in use and why it was chosen',
    labelNames: ['backend', 'reason'],
    registers: [registry],
  }).set({ backend, reason: backendReason }, 1);
  const reconciles = new Counter({
    name: 'kube_l2tp_agent_reconciles_total',
    help: 'Agent reconcile passes by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const nodeStateReads = new Counter({
    name: 'kube_l2tp_agent_nodestate_reads_total',
    help: "Reads of the node's L2TPNodeState by source (api: a GET; watch: the watch's last event)",
    labelNames: ['from'] as const,
    registers: [registry],
  });
  return {
    registry,
    reconciles,
    nodeStateReads,
    setSessions(sessions, counters) {
      snapshot = sessions.map((s) => ({ s, c: counters.get(`${s.tunnelId}/${s.sessionId}`) }));
    },
    setTunnels(tunnels, counters) {
      tunnelSnapshot = tunnels.flatMap((t) => {
        const c = counters.get(t.tunnelId);
        return c ? [{ t, c }] : [];
      });
    },
  };
}
