// Prometheus metrics (one registry per operator instance) and the /metrics, /healthz, /readyz server.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  reconciles: Counter<'controller' | 'result'>;
  duration: Histogram<'controller'>;
  queueDepth: Gauge;
  errors: Counter<'controller'>;
  apiRequests: Counter<'verb' | 'resource' | 'code'>;
  leader: Gauge;
}

export function createMetrics(defaults = true): Metrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'kube_l2tp_operator_' });
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({
      name: 'kube_l2tp_reconcile_total',
      help: 'Reconciles by controller and result',
      labelNames: ['controller', 'result'],
      registers,
    }),
    duration: new Histogram({
      name: 'kube_l2tp_reconcile_duration_seconds',
      help: 'Reconcile duration',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'kube_l2tp_workqueue_depth',
      help: 'Keys waiting in the work queue',
      registers,
    }),
    errors: new Counter({
      name: 'kube_l2tp_reconcile_errors_total',
      help: 'Failed reconciles',
      labelNames: ['controller'],
      registers,
    }),
    apiRequests: new Counter({
      name: 'kube_l2tp_api_requests_total',
      help: 'Kubernetes API requests',
      labelNames: ['verb', 'resource', 'code'],
      registers,
    }),
    leader: new Gauge({
      name: 'kube_l2tp_leader',
      help: '1 while this replica holds the leader lease',
      registers,
    }),
  };
}

export interface HealthSource {
  healthy(): boolean;
  ready(): boolean;
}

export function startHttpServer(
  host: string,
  port: number,
  metrics: Metrics,
  health: HealthSource,
): Promise<Server> {
  const srv = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        })
        .catch((e: unknown) => {
          res.writeHead(500);
          res.end(String(e));
        });
      return;
    }
    if (url === '/healthz' || url === '/readyz') {
      const ok = url === '/healthz' ? health.healthy() : health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok' : 'not ready');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });
}
