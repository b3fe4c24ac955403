// startOperator(): the controller manager, usable in-process (tests, local lab) or from main.ts.
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../lib/log.js';
import { DEFAULT_NAMESPACE } from '../lib/api/rbac.js';
import { Controller, DEFAULT_CONTROLLER, type ControllerConfig } from './controller.js';
import { KubeClient } from '../lib/kube/client.js';
import { LeaderElector } from './leader.js';
import { createMetrics, startHttpServer, type Metrics } from './metrics.js';
import { DEFAULT_POD_CONFIG, type PodConfig } from './render.js';

export interface OperatorOptions {
  /** Path of a kubeconfig, or a loaded KubeConfig; default: in-cluster / $KUBECONFIG. */
  kubeconfig?: string | KubeConfig;
  logger: Logger;
  namespace?: string;
  pod?: Partial<PodConfig>;
  controller?: Partial<Omit<ControllerConfig, 'pod'>>;
  leaderElection?: {
    enabled?: boolean;
    leaseName?: string;
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** host:port for /metrics, /healthz, /readyz; false: no server. Default 0.0.0.0:8080 in main. */
  http?: { host: string; port: number } | false;
  defaultMetrics?: boolean;
}

export interface RunningOperator {
  readonly metrics: Metrics;
  readonly client: KubeClient;
  isLeader(): boolean;
  controller(): Controller | undefined;
  httpPort(): number | undefined;
  stop(): Promise<void>;
}

export function loadKubeConfig(k: string | KubeConfig | undefined): KubeConfig {
  if (k instanceof KubeConfig) return k;
  const kc = new KubeConfig();
  if (k) kc.loadFromFile(k);
  else kc.loadFromDefault();
  return kc;
}

export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const log = opts.logger;
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  const client = new KubeClient(loadKubeConfig(opts.kubeconfig));
  const metrics = createMetrics(opts.defaultMetrics ?? false);
  client.onRequest = (r) =>
    metrics.apiRequests.inc({ verb: r.verb, resource: r.resource, code: String(r.code) });
  const cfg: ControllerConfig = {
    ...DEFAULT_CONTROLLER,
    ...opts.controller,
    pod: { ...DEFAULT_POD_CONFIG, namespace, ...opts.pod },
  };
  let ctrl: Controller | undefined;
  let stopping = false;
  const startController = async () => {
    if (stopping) return;
    ctrl = new Controller(client, cfg, log.child({ component: 'controller' }), metrics);
    await ctrl.start();
    log.info('controllers started');
  };
  const stopController = async () => {
    const c = ctrl;
    ctrl = undefined;
    if (c) await c.stop();
  };
  const le = opts.leaderElection ?? {};
  let elector: LeaderElector | undefined;
  let campaign: Promise<void> | undefined;
  if (le.enabled ?? true) {
    elector = new LeaderElector(
      client,
      {
        namespace,
        name: le.leaseName ?? 'kube-l2tp-operator',
        identity: le.identity ?? `${hostname()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`,
        leaseDurationMs: le.leaseDurationMs ?? 15_000,
        renewDeadlineMs: le.renewDeadlineMs ?? 10_000,
        retryPeriodMs: le.retryPeriodMs ?? 2_000,
      },
      log.child({ component: 'leader-election' }),
    );
    campaign = elector.run(
      async () => {
        metrics.leader.set(1);
        await startController();
      },
      async () => {
        metrics.leader.set(0);
        await stopController();
      },
    );
  } else {
    metrics.leader.set(1);
    await startController();
  }
  let server: Server | undefined;
  if (opts.http) {
    server = await startHttpServer(opts.http.host, opts.http.port, metrics, {
      healthy: () => !stopping,
      // a standby is ready (it serves metrics and waits); a leader once its caches are synced
      ready: () =>
        !stopping &&
        (elector ? !elector.leader || (ctrl?.hasSynced() ?? false) : (ctrl?.hasSynced() ?? false)),
    });
  }
  return {
    metrics,
    client,
    isLeader: () => (elector ? elector.leader && ctrl !== undefined : true),
    controller: () => ctrl,
    httpPort: () => {
      const a = server?.address();
      return typeof a === 'object' && a ? a.port : undefined;
    },
    async stop() {
      stopping = true;
      elector?.stop();
      await stopController();
      if (elector?.leader === false || elector) await elector?.release();
      await campaign;
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      client.close();
      log.info('operator stopped');
    },
  };
}
