// `kube-l2tp-datapath agent`: what runs in each datapath pod.
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startProbeServer } from '../../lib/http.js';
import type { Logger } from '../../lib/log.js';
import type { StopSignal } from '../../lib/stop-signals.js';
import {
  BACKEND_CHOICES,
  retireOtherBackends,
  selectBackend,
  type BackendChoice,
} from '../backend/select.js';
import { rejoinPseudowireBridges, releaseOrphanBridges, releasePseudowireBridge } from '../cni/links.js';
import { podMtuSync } from '../cni/pod-mtu.js';
import { startCniServer } from '../cni/server.js';
import { AttachmentStore, ProcessLocker } from '../cni/state.js';
import { UsageError } from '../static/command.js';
import { Agent, DEFAULT_RESYNC_SECONDS, type AgentOptions } from './agent.js';
import { agentCniSettings } from './cni-settings.js';
import { installCni } from './install-cni.js';
import { createAgentMetrics } from './metrics.js';
import { KubeClient } from '../../lib/kube/client.js';
import { kubeNodeStateSource } from './nodestate-source.js';
import { probeUnderlay } from './underlay.js';
import { memoryGate, NEW_SESSION_MEMORY_SHARE } from './memory-gate.js';
import { cleanNodeFiles, stopAction } from './uninstall.js';

export const AGENT_USAGE =
  'agent --node-name NODE [--backend auto|kernel|ebpf|userspace] [--bpffs DIR] [--kubeconfig FILE] [--cni-socket PATH] ' +
  '[--cni-bin-dir DIR] [--cni-conf-dir DIR] [--cni-path DIRS] [--cni-state-dir DIR] [--netns-dir DIR] [--metrics-port N] [--resync-seconds N] [--status-counter-seconds N] [--underlay-mtu N | --fixed-mtu N]';

const here = dirname(fileURLToPath(import.meta.url));
/** The shim built by scripts/build-native.sh, relative to dist/datapath/agent/. */
const DEFAULT_SHIM = resolve(here, '../../../cmd/cni/shim/build/kube-l2tp');

/** The agent's flags, each defaulting to the environment variable the datapath Pod sets. */
export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv) {
  const cniEnv = agentCniSettings(env);
  return parseArgs({
    args: argv,
    options: {
      'node-name': { type: 'string', default: env.NODE_NAME },
      backend: { type: 'string', default: env.KUBE_L2TP_BACKEND ?? 'auto' },
      bpffs: { type: 'string', default: env.KUBE_L2TP_BPFFS },
      kubeconfig: { type: 'string', default: env.KUBECONFIG },
      'cni-socket': { type: 'string', default: cniEnv.socket },
      'cni-bin-dir': { type: 'string', default: cniEnv.binDir },
      'cni-conf-dir': { type: 'string', default: cniEnv.confDir },
      'cni-path': { type: 'string', default: env.CNI_PATH ?? '/opt/cni/bin' },
      'cni-state-dir': { type: 'string', default: cniEnv.stateDir },
      'netns-dir': { type: 'string', default: cniEnv.netnsDir },
      'cni-source': { type: 'string', default: DEFAULT_SHIM },
      'install-cni': { type: 'boolean', default: true },
      'metrics-port': { type: 'string', default: env.KUBE_L2TP_HEALTH_PORT ?? '9771' },
      // loopback unless told otherwise: the pod shares the node's network, and the metrics name
      // tenants' pseudowires
      'metrics-host': { type: 'string', default: env.KUBE_L2TP_METRICS_HOST || '127.0.0.1' },
      'resync-seconds': {
        type: 'string',
        default: env.KUBE_L2TP_RESYNC_SECONDS ?? String(DEFAULT_RESYNC_SECONDS),
      },
      'status-counter-seconds': { type: 'string', default: env.KUBE_L2TP_STATUS_COUNTER_SECONDS ?? '30' },
      'underlay-mtu': { type: 'string', default: env.KUBE_L2TP_UNDERLAY_MTU ?? '1500' },
      'fixed-mtu': { type: 'string', default: env.KUBE_L2TP_FIXED_MTU },
    },
    allowNegative: true,
    strict: true,
  }).values;
}

/** The MTU policy as the Agent takes it: a fixed MTU, when set, wins over the derived one. */
export function agentMtuOptions(
  values: ReturnType<typeof parseAgentArgs>,
): Pick<AgentOptions, 'underlayMtu' | 'fixedMtu'> {
  return {
    underlayMtu: Number(values['underlay-mtu']),
    ...(values['fixed-mtu'] ? { fixedMtu: Number(values['fixed-mtu']) } : {}),
  };
}

export async function agentCommand(
  argv: string[],
  logger: Logger,
  stop: Promise<StopSignal>,
): Promise<number> {
  const values = parseAgentArgs(argv, process.env);
  const nodeName = values['node-name'];
  if (!nodeName) throw new UsageError('--node-name (or NODE_NAME) is required');
  const choice = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(choice))
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}`);
  const log = logger.child({ node: nodeName });

  const kc = new k8s.KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromCluster();

  // the attachment records: the CNI server writes them, the backend reads where exclusive
  // attachments moved session devices; one store for both
  const attachments = new AttachmentStore(values['cni-state-dir']);
  // the CNI commands' per-attachment locks, which the agent takes too when it changes an attached pod
  const locker = new ProcessLocker();
  const selectOpts = {
    logger: log.child({ component: 'backend' }),
    onFault: (f: unknown) => log.error({ fault: f }, 'datapath fault'),
    podDevice: (ifname: string) => attachments.podDevice(ifname),
    ...(values.bpffs ? { bpffs: values.bpffs } : {}),
    ...(values['netns-dir'] ? { netnsDir: values['netns-dir'] } : {}),
  };
  const { backend, reason } = await selectBackend(choice, selectOpts);
  log.info({ backend: backend.kind, reason }, 'backend selected');
  await retireOtherBackends(backend.kind, selectOpts);
  const metrics = createAgentMetrics(backend.kind, reason);
  const pkg = JSON.parse(await readFile(join(here, '../../../package.json'), 'utf8')) as { version: string };
  const memory = memoryGate();
  if (memory.limitBytes === undefined)
    log.info('no memory limit found: new sessions are made whatever the memory in use');
  else
    log.info(
      { memoryLimitMiB: Math.round(memory.limitBytes / 2 ** 20), newSessionShare: NEW_SESSION_MEMORY_SHARE },
      'memory limit found: new sessions stop short of it',
    );

  const agent = new Agent({
    nodeName,
    source: kubeNodeStateSource(new KubeClient(kc), nodeName, log.child({ component: 'nodestate' }), {
      onRead: (from) => metrics.nodeStateReads.inc({ from }),
    }),
    backend,
    backendReason: reason,
    metrics,
    logger: log.child({ component: 'reconcile' }),
    version: pkg.version,
    ...agentMtuOptions(values),
    resyncMs: Number(values['resync-seconds']) * 1000,
    counterIntervalMs: Number(values['status-counter-seconds']) * 1000,
    onPseudowireGone: releasePseudowireBridge,
    rejoinBridges: rejoinPseudowireBridges,
    releaseOrphanBridges,
    probeUnderlay,
    refuseNewSession: memory.refuseNewSession,
    syncPodMtu: podMtuSync({
      store: attachments,
      locker,
      logger: log.child({ component: 'pod-mtu' }),
      ...(values['netns-dir'] ? { netnsDir: values['netns-dir'] } : {}),
    }),
  });
  const probes = await startProbeServer({
    port: Number(values['metrics-port']),
    host: values['metrics-host'],
    registry: metrics.registry,
    ready: () => agent.resolver.ready(),
    logger: log.child({ component: 'http' }),
  });
  // The CNI socket answers "not ready" (STATUS 50) until the first reconcile has finished.
  const cni = await startCniServer({
    socketPath: values['cni-socket'],
    resolver: agent.resolver,
    logger: log.child({ component: 'cni' }),
    cniPath: values['cni-path'],
    // IPAM delegates: the node's plugins as mounted here (the runtime's CNI_PATH is a host path)
    delegateDirs: [values['cni-bin-dir']],
    store: attachments,
    locker,
    onAttachmentChange: () => void agent.kick(),
  });
  if (values['install-cni']) {
    await installCni({
      source: values['cni-source'],
      binDir: values['cni-bin-dir'],
      confDir: values['cni-conf-dir'],
      socketPath: values['cni-socket'],
      logger: log.child({ component: 'cni-install' }),
    });
  }
  await agent.start();
  log.info({ passes: agent.reconcilePasses }, 'first reconcile done; serving');

  // a signal that came while the agent started is answered now, once it is up
  const sig = await stop;
  // Only an explicit uninstall or a node state that is gone removes anything: a read error means
  // an ordinary stop, which keeps every device for the next agent.
  const action = stopAction(await agent.nodeShards().catch(() => undefined));
  await cni.close();
  if (action === 'keep') {
    log.info({ signal: sig }, 'stopping; devices stay in place for the next agent');
    await agent.stop();
  } else if (action === 'release') {
    log.info(
      { signal: sig },
      'this node has no node state any more (no endpoints, or the node left the cluster): removing its devices',
    );
    await agent.teardown();
  } else {
    log.info(
      { signal: sig },
      'kube-l2tp is being uninstalled: removing its devices and files from this node',
    );
    await agent.teardown();
    await cleanNodeFiles({
      binDir: values['cni-bin-dir'],
      confDir: values['cni-conf-dir'],
      stateDir: values['cni-state-dir'],
      ...(process.env.KUBE_L2TP_SECCOMP_DIR ? { seccompDir: process.env.KUBE_L2TP_SECCOMP_DIR } : {}),
      logger: log.child({ component: 'uninstall' }),
    });
  }
  await probes.close();
  return 0;
}
