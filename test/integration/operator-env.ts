// Shared setup for the operator integration suites: a real control plane with the CRDs and RBAC
// installed, fake Node objects (no kubelet), kubeconfigs for the operator's and the agent's
// ServiceAccount identities, and a simulated agent that writes L2TPNodeState.status.
import YAML from 'yaml';
import { allCRDs } from '../../lib/api/crdgen.js';
import {
  AGENT_SA,
  DEFAULT_NAMESPACE,
  OPERATOR_SA,
  rbacObjects,
  serviceAccountUser,
} from '../../lib/api/rbac.js';
import { GROUP, VERSION, type L2TPNodeState, type NodeStateStatus } from '../../lib/api/schemas.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { KubeClient, resourcePath } from '../../lib/kube/client.js';
import { startOperator, type OperatorOptions, type RunningOperator } from '../../operator/operator.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { until } from '../harness/wait.js';

export const NS = DEFAULT_NAMESPACE;

export interface Env {
  cp: ControlPlane;
  admin: KubeClient;
  agent: KubeClient;
  operatorKubeconfig: string;
  agentKubeconfig: string;
  stop(): Promise<void>;
}

export async function setupEnv(): Promise<Env> {
  const cp = await startControlPlane();
  try {
    await cp.kubectl(['create', 'namespace', NS]);
    await cp.kubectl(['apply', '-f', '-'], {
      input: allCRDs()
        .map((c) => YAML.stringify(c))
        .join('---\n'),
    });
    await cp.kubectl(['apply', '-f', '-'], {
      input: rbacObjects(NS)
        .map((o) => YAML.stringify(o))
        .join('---\n'),
    });
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    const operatorKubeconfig = await cp.kubeconfigFor({
      user: serviceAccountUser(NS, OPERATOR_SA),
      groups: ['system:serviceaccounts'],
    });
    const agentKubeconfig = await cp.kubeconfigFor({
      user: serviceAccountUser(NS, AGENT_SA),
      groups: ['system:serviceaccounts'],
    });
    const admin = KubeClient.fromFile(cp.adminKubeconfig);
    const agent = KubeClient.fromFile(agentKubeconfig);
    return {
      cp,
      admin,
      agent,
      operatorKubeconfig,
      agentKubeconfig,
      async stop() {
        admin.close();
        agent.close();
        await cp.stop();
      },
    };
  } catch (e) {
    await cp.stop();
    throw e;
  }
}

export async function createNode(admin: KubeClient, name: string, ip: string): Promise<void> {
  await admin.create('/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
  });
  await admin.patch(`/api/v1/nodes/${name}/status`, {
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  });
}

export function operator(
  env: Env,
  extra: Partial<OperatorOptions> = {},
  logger: Logger = silentLogger(),
): Promise<RunningOperator> {
  return startOperator({
    kubeconfig: env.operatorKubeconfig,
    logger,
    namespace: NS,
    controller: { podDeleteGraceSeconds: 0, teardownTimeoutMs: 60_000, ...extra.controller },
    leaderElection: {
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 300,
      ...extra.leaderElection,
    },
    http: false,
    ...Object.fromEntries(
      Object.entries(extra).filter(([k]) => k !== 'controller' && k !== 'leaderElection'),
    ),
  });
}

/** Polls until fn yields a value (shared with every suite: test/harness/wait.ts). */
export const eventually = until;

const kubeL2tpPath = (plural: string, namespace?: string, name?: string) =>
  resourcePath({
    group: GROUP,
    version: VERSION,
    plural,
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
  });
export const nodeStatePath = (name?: string) => kubeL2tpPath('l2tpnodestates', undefined, name);
export const tunnelPath = (name?: string) => kubeL2tpPath('l2tptunnels', undefined, name);
export const pseudowirePath = (namespace?: string, name?: string) =>
  kubeL2tpPath('pseudowires', namespace, name);

/** What a healthy agent would report for its node state: everything in spec is up. */
export function healthyStatus(ns: L2TPNodeState, mtu = 1446): NodeStateStatus {
  return {
    observedGeneration: ns.metadata.generation ?? 0,
    backend: 'userspace',
    backendReason: 'kernel l2tp family not available',
    tunnels: (ns.spec?.tunnels ?? []).map((t) => ({
      name: t.name,
      tunnelId: t.tunnelId,
      state: 'Ready' as const,
    })),
    sessions: (ns.spec?.tunnels ?? []).flatMap((t) =>
      t.sessions.map((s) => ({
        pseudowire: s.pseudowire,
        tunnelId: t.tunnelId,
        sessionId: s.sessionId,
        ifname: s.ifname,
        state: 'Up' as const,
        mtu: s.mtu ?? mtu,
        counters: { txPackets: 0, txBytes: 0, txErrors: 0, rxPackets: 0, rxBytes: 0, rxErrors: 0 },
      })),
    ),
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: '',
        lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    ],
  };
}

/** Play the agent of `node` once (as the agent's identity): report its current spec as up. */
export async function agentReport(
  env: Env,
  node: string,
  mutate?: (s: NodeStateStatus) => void,
): Promise<L2TPNodeState> {
  const ns = await env.agent.get<L2TPNodeState>(nodeStatePath(node));
  const status = healthyStatus(ns);
  mutate?.(status);
  return env.agent.replace<L2TPNodeState>(`${nodeStatePath(node)}/status`, { ...ns, status });
}
