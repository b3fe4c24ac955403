// Leader election with a coordination.k8s.io/v1 Lease, like client-go's leaderelection: expiry is
// judged by the local clock from when this candidate last saw the record change (no clock sync
// needed between replicas).
import type { Logger } from '../lib/log.js';
import { isConflict, isNotFound, type KubeClient } from '../lib/kube/client.js';
import { sleep } from '../lib/kube/informer.js';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const microTime = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private observed: { record: string; at: number } | undefined;
  private stopped = false;
  leader = false;

  constructor(
    private readonly client: Pick<KubeClient, 'get' | 'create' | 'replace'>,
    private readonly cfg: LeaderElectionConfig,
    private readonly log: Logger,
  ) {}

  private get path() {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.cfg.namespace}/leases`;
  }

  /** One acquire-or-renew attempt; true when we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = microTime();
    const spec = {
      holderIdentity: this.cfg.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.cfg.leaseDurationMs / 1000)),
      renewTime: now,
    };
    let cur: Lease;
    try {
      cur = await this.client.get<Lease>(`${this.path}/${this.cfg.name}`);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      try {
        await this.client.create(this.path, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.cfg.name, namespace: this.cfg.namespace },
          spec: { ...spec, acquireTime: now, leaseTransitions: 0 },
        });
        return true;
      } catch (e2) {
        if (isConflict(e2)) return false;
        throw e2;
      }
    }
    const record = JSON.stringify([cur.spec.holderIdentity, cur.spec.renewTime]);
    if (!this.observed || this.observed.record !== record) this.observed = { record, at: Date.now() };
    const holder = cur.spec.holderIdentity;
    const duration = (cur.spec.leaseDurationSeconds ?? 15) * 1000;
    const mine = holder === this.cfg.identity;
    if (!mine && holder && this.observed.at + duration > Date.now()) return false;
    const next: Lease = {
      ...cur,
      spec: {
        ...cur.spec,
        ...spec,
        acquireTime: mine ? (cur.spec.acquireTime ?? now) : now,
        leaseTransitions: (cur.spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      await this.client.replace(`${this.path}/${this.cfg.name}`, next);
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  /**
   * Campaign until stopped: calls onStarted when leadership is acquired and onStopped when it is
   * lost (renewals failing for renewDeadline) or on stop().
   */
  async run(onStarted: () => Promise<void> | void, onStopped: () => Promise<void> | void): Promise<void> {
    while (!this.stopped) {
      const ok = await this.tryAcquireOrRenew().catch((e: unknown) => {
        this.log.warn({ err: e }, 'leader election: lease request failed');
        return false;
      });
      if (ok && !this.leader) {
        this.leader = true;
        this.log.info({ identity: this.cfg.identity, lease: this.cfg.name }, 'became leader');
        // the lease is renewed while onStarted runs, as client-go does: a start that outlasts the
        // lease (a large cluster's caches to list) would otherwise let a second leader in
        let failed: { error: unknown } | undefined;
        void Promise.resolve()
          .then(onStarted)
          .catch((error: unknown) => (failed = { error }));
        let lastRenew = Date.now();
        while (!this.stopped && !failed) {
          await sleep(this.cfg.retryPeriodMs);
          if (this.stopped || failed) break;
          const renewed = await this.tryAcquireOrRenew().catch((e: unknown) => {
            this.log.warn({ err: e }, 'leader election: renew failed');
            return false;
          });
          if (renewed) lastRenew = Date.now();
          else if (Date.now() - lastRenew > this.cfg.renewDeadlineMs) break;
        }
        this.leader = false;
        this.log.warn({ identity: this.cfg.identity }, 'leadership lost or released');
        await onStopped();
        if (failed) throw failed.error;
        continue;
      }
      await sleep(this.cfg.retryPeriodMs);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** Give the lease up on graceful shutdown so a standby takes over without waiting for expiry. */
  async release(): Promise<void> {
    try {
      const cur = await this.client.get<Lease>(`${this.path}/${this.cfg.name}`);
      if (cur.spec.holderIdentity !== this.cfg.identity) return;
      await this.client.replace(`${this.path}/${this.cfg.name}`, {
        ...cur,
        spec: { ...cur.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() },
      });
    } catch (e) {
      this.log.warn({ err: e }, 'leader election: release failed');
    }
  }
}
