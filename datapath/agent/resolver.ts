// Answers the CNI plugin's questions from the agent's last reconcile: which local device carries a
// pseudowire on this node, and whether the agent has synced at all.
import type { PseudowireDevice, PseudowireRef, PseudowireResolver } from '../../lib/agent-protocol.js';
import type { ReconcileReport } from './reconcile.js';

export class ReportResolver implements PseudowireResolver {
  private report: ReconcileReport | undefined;

  update(report: ReconcileReport): void {
    this.report = report;
  }

  ready(): boolean {
    return this.report !== undefined;
  }

  async lookup(ref: PseudowireRef): Promise<PseudowireDevice | undefined> {
    const s = this.report?.sessions.find(
      (x) => x.pseudowire?.namespace === ref.namespace && x.pseudowire.name === ref.name,
    );
    if (!s) return undefined;
    return {
      ifname: s.ifname,
      mtu: s.mtu,
      tunnelId: s.tunnelId,
      sessionId: s.sessionId,
      up: s.state === 'Up',
      mode: s.attach?.mode ?? 'bridge',
      ...(s.attach?.allowedNamespaces ? { allowedNamespaces: s.attach.allowedNamespaces } : {}),
      // beyond the protocol's fields: the CNI plugin names why a pseudowire is not usable
      state: s.state,
      ...(s.error !== undefined ? { error: s.error } : {}),
    } as PseudowireDevice;
  }
}
