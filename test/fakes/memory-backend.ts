// A backend that keeps its tunnels and sessions in maps: the agent and reconcile unit tests drive the
// real reconcile against it and read back what a device would have been given.
import type {
  Backend,
  ObservedSession,
  ObservedTunnel,
  SessionSpec,
  TunnelSpec,
} from '../../datapath/backend/types.js';

export class MemoryBackend implements Backend {
  readonly kind = 'userspace' as const;
  tunnels = new Map<number, ObservedTunnel>();
  sessions = new Map<string, ObservedSession>();
  /** The last spec each tunnel was ensured with, by tunnel ID. */
  tunnelSpecs = new Map<number, TunnelSpec>();
  /** The last spec each session was ensured with, by "tunnel/session". */
  specs = new Map<string, SessionSpec>();
  /** Creations and deletions, in order; re-ensuring what exists is not a call. */
  calls: string[] = [];
  /** Session ids whose ensureSession fails. */
  failSession = new Set<number>();
  closed: { keepDevices: boolean }[] = [];

  async listTunnels() {
    return [...this.tunnels.values()];
  }
  async listSessions() {
    return [...this.sessions.values()];
  }
  async ensureTunnel(t: TunnelSpec) {
    if (!this.tunnels.has(t.tunnelId)) this.calls.push(`create tunnel ${t.tunnelId}`);
    this.tunnels.set(t.tunnelId, { tunnelId: t.tunnelId, owned: true });
    this.tunnelSpecs.set(t.tunnelId, t);
  }
  async deleteTunnel(id: number) {
    this.calls.push(`delete tunnel ${id}`);
    this.tunnels.delete(id);
    this.tunnelSpecs.delete(id);
  }
  async ensureSession(s: SessionSpec) {
    if (this.failSession.has(s.sessionId)) throw new Error(`EEXIST session ${s.sessionId}`);
    const k = `${s.tunnelId}/${s.sessionId}`;
    if (!this.sessions.has(k)) this.calls.push(`create session ${k}`);
    this.specs.set(k, s);
    this.sessions.set(k, {
      tunnelId: s.tunnelId,
      sessionId: s.sessionId,
      ifname: s.ifname,
      up: true,
      mtu: s.mtu,
      owned: true,
    });
  }
  async deleteSession(t: number, s: number) {
    this.calls.push(`delete session ${t}/${s}`);
    this.sessions.delete(`${t}/${s}`);
    this.specs.delete(`${t}/${s}`);
  }
  async counters() {
    return undefined;
  }
  async allCounters() {
    return new Map();
  }
  async close(o: { keepDevices: boolean }) {
    this.closed.push(o);
    if (!o.keepDevices) {
      this.sessions.clear();
      this.tunnels.clear();
      this.tunnelSpecs.clear();
      this.specs.clear();
    }
  }
}
