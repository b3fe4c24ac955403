#!/usr/bin/env node
// kube-l2tp-operator: the controller manager (default), or `mirror` to print the other cluster's side.
//   kube-l2tp-operator [--kubeconfig F] [--namespace NS] [--image IMG] [--metrics-addr 0.0.0.0:8080]
//                      [--leader-elect=false] [--workers N]
//   kube-l2tp-operator mirror -f tunnel.yaml --node NODE [--local-address IP]
//   kube-l2tp-operator uninstall [...]   what the chart's pre-delete hook runs (uninstall.ts)
// Environment: POD_NAMESPACE, LOG_LEVEL, KUBECONFIG, and the datapath settings the Helm chart sets
// (DATAPATH_*, CNI_*_DIR, AGENT_SOCKET_DIR, MULTUS_ENABLED, MTU_*: see env-config.ts).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger } from '../lib/log.js';
import { controllerConfigFromEnv, podConfigFromEnv } from './env-config.js';
import { mirrorManifest } from './mirror.js';
import { startOperator } from './operator.js';
import { uninstallCommand } from './uninstall.js';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'mirror') {
    const { values } = parseArgs({
      args: argv.slice(1),
      options: {
        file: { type: 'string', short: 'f' },
        node: { type: 'string' },
        'local-address': { type: 'string' },
      },
    });
    if (!values.file || !values.node) {
      console.error(
        'usage: kube-l2tp-operator mirror -f tunnel.yaml --node NODE_IN_OTHER_CLUSTER [--local-address IP]',
      );
      return 2;
    }
    const text = values.file === '-' ? readFileSync(0, 'utf8') : readFileSync(values.file, 'utf8');
    process.stdout.write(
      mirrorManifest(text, {
        node: values.node,
        ...(values['local-address'] ? { localAddress: values['local-address'] } : {}),
      }),
    );
    return 0;
  }
  if (argv[0] === 'uninstall') return uninstallCommand(argv.slice(1), createLogger({ name: 'operator' }));
  const { values } = parseArgs({
    args: argv[0] === 'run' ? argv.slice(1) : argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      image: { type: 'string' },
      'metrics-addr': { type: 'string', default: '0.0.0.0:8080' },
      'leader-elect': { type: 'string', default: 'true' },
      'lease-duration-ms': { type: 'string' },
      'retry-period-ms': { type: 'string' },
      'pod-delete-grace-seconds': { type: 'string' },
      workers: { type: 'string' },
    },
  });
  const logger = createLogger({ name: 'operator' });
  const [host, port] = values['metrics-addr'].split(/:(?=\d+$)/);
  const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
  const leaseMs = num(values['lease-duration-ms']);
  const retryMs = num(values['retry-period-ms']);
  const grace = num(values['pod-delete-grace-seconds']);
  const workers = num(values.workers);
  let pod, controllerEnv;
  try {
    pod = { ...podConfigFromEnv(process.env), ...(values.image ? { image: values.image } : {}) };
    controllerEnv = controllerConfigFromEnv(process.env);
  } catch (e) {
    logger.error({ err: (e as Error).message }, 'bad configuration in the environment');
    console.error((e as Error).message);
    return 2;
  }
  const op = await startOperator({
    logger,
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    namespace: values.namespace ?? process.env.POD_NAMESPACE ?? 'kube-l2tp',
    pod,
    controller: {
      ...controllerEnv,
      ...(grace !== undefined ? { podDeleteGraceSeconds: grace } : {}),
      ...(workers ? { workers } : {}),
    },
    leaderElection: {
      enabled: values['leader-elect'] !== 'false',
      ...(leaseMs ? { leaseDurationMs: leaseMs, renewDeadlineMs: Math.round(leaseMs * 0.66) } : {}),
      ...(retryMs ? { retryPeriodMs: retryMs } : {}),
    },
    http: { host: host || '0.0.0.0', port: Number(port ?? 8080) },
    defaultMetrics: true,
  });
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  logger.info('shutting down');
  await op.stop();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
