// `kube-l2tp-operator uninstall`: what the chart's pre-delete hook runs, so that `helm uninstall`
// leaves the nodes clean. The datapath pods belong to the cluster-scoped L2TPNodeStates, which Helm
// does not own, so without this they outlive the release. Steps, each idempotent:
//   1. refuse (or, when told to, go on and say so) while pods are attached to pseudowires
//   2. scale the operator to 0 and wait until no operator pod is left (nothing re-creates what follows)
//   3. mark every L2TPNodeState for uninstall (the agents clean their node on that stop only)
//   4. delete the datapath pods and wait until they are gone (each agent cleans its node on SIGTERM)
//   5. delete the node states, 6. the NetworkAttachmentDefinitions the operator generated, 7. its Lease.
// Tunnels, Pseudowires and the CRDs stay, as Helm keeps CRDs; a reinstall picks them up again.
import { parseArgs } from 'node:util';
import { OPERATOR_LEASE } from '../lib/api/rbac.js';
import { GROUP, VERSION } from '../lib/api/schemas.js';
import type { Logger } from '../lib/log.js';
import { UNINSTALL_ANNOTATION } from '../datapath/agent/uninstall.js';
import { ApiError, KubeClient, isNotFound, resourcePath } from '../lib/kube/client.js';
import { loadKubeConfig } from './operator.js';
import { MANAGED_BY } from './render.js';

export const UNINSTALL_USAGE =
  'kube-l2tp-operator uninstall [--namespace NS] [--operator-deployment NAME] [--operator-selector K=V,...] ' +
  '[--datapath-selector K=V,...] [--lease NAME] [--attached-pods refuse|proceed] [--timeout-seconds N] [--kubeconfig F]';

/** Exit code when pods are still attached and the policy is "refuse" (the hook Job fails at once). */
export const EXIT_REFUSED = 3;

export type AttachedPodsPolicy = 'refuse' | 'proceed';

export interface UninstallOptions {
  client: KubeClient;
  logger: Logger;
  /** The release namespace: operator, datapath pods, Lease. */
  namespace: string;
  operatorDeployment: string;
  operatorSelector: string;
  datapathSelector: string;
  lease: string;
  attachedPods: AttachedPodsPolicy;
  timeoutMs: number;
  pollMs?: number;
}

export interface UninstallReport {
  attached: string[];
  nodeStates: string[];
  datapathPods: string[];
  nads: string[];
}

export class UninstallRefused extends Error {
  constructor(readonly attached: string[]) {
    super(
      `refusing to uninstall: ${attached.length} pod(s) are attached to kube-l2tp pseudowires and would lose ` +
        `their link: ${attached.join(', ')}. Delete them (their CNI DEL needs the agents) and run ` +
        '`helm uninstall` again, or set uninstall.attachedPods=proceed (helm upgrade --reuse-values) to ' +
        'uninstall anyway: their nodes then keep the CNI executable and the attachment records until they are deleted.',
    );
    this.name = 'UninstallRefused';
  }
}

// ---- pure parts ------------------------------------------------------------------------------------

export interface NetRef {
  namespace: string;
  name: string;
}

/**
 * The networks a pod asks Multus for (annotation k8s.v1.cni.cncf.io/networks): either a comma list of
 * `[namespace/]name[@interface]` or a JSON array of `{name, namespace?, interface?}`. A name without a
 * namespace is in the pod's own namespace. Unparseable input yields no references (Multus refuses it).
 */
export function parseNetworks(value: string | undefined, podNamespace: string): NetRef[] {
  const v = value?.trim();
  if (!v) return [];
  if (v.startsWith('[')) {
    try {
      const arr = JSON.parse(v) as unknown;
      if (!Array.isArray(arr)) return [];
      return arr.flatMap((x: unknown) => {
        const o = x as { name?: unknown; namespace?: unknown };
        if (typeof o?.name !== 'string' || o.name === '') return [];
        return [
          {
            namespace: typeof o.namespace === 'string' && o.namespace ? o.namespace : podNamespace,
            name: o.name,
          },
        ];
      });
    } catch {
      return [];
    }
  }
  return v
    .split(',')
    .map((s) => s.trim().split('@')[0]!)
    .filter((s) => s !== '')
    .map((s) => {
      const i = s.indexOf('/');
      return i < 0
        ? { namespace: podNamespace, name: s }
        : { namespace: s.slice(0, i), name: s.slice(i + 1) };
    });
}

export interface NadObject {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: { config?: string };
}

/** A NAD whose CNI config (single plugin or a conflist) runs the kube-l2tp plugin, generated or hand-written. */
export function usesKubeL2tp(nad: NadObject): boolean {
  try {
    const c = JSON.parse(nad.spec?.config ?? '') as { type?: unknown; plugins?: { type?: unknown }[] };
    return (
      c.type === 'kube-l2tp' || (Array.isArray(c.plugins) && c.plugins.some((p) => p?.type === 'kube-l2tp'))
    );
  } catch {
    return false;
  }
}

export interface PodLike {
  metadata: {
    name: string;
    namespace?: string;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

/** "namespace/pod (network namespace/name)" for every live pod that asks for a kube-l2tp network. */
export function attachedPods(pods: PodLike[], nads: NadObject[]): string[] {
  const ours = new Set(
    nads.filter(usesKubeL2tp).map((n) => `${n.metadata.namespace ?? ''}/${n.metadata.name}`),
  );
  const out: string[] = [];
  for (const p of pods) {
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    const ns = p.metadata.namespace ?? 'default';
    const nets = parseNetworks(p.metadata.annotations?.['k8s.v1.cni.cncf.io/networks'], ns)
      .map((r) => `${r.namespace}/${r.name}`)
      .filter((k) => ours.has(k));
    if (nets.length > 0) out.push(`${ns}/${p.metadata.name} (${[...new Set(nets)].join(', ')})`);
  }
  return out.sort();
}

/** Finalizers kube-l2tp owns (no controller of ours is left to remove them); others' stay. */
export const ourFinalizers = (fins: string[] | undefined): string[] =>
  (fins ?? []).filter((f) => f.startsWith(`${GROUP}/`));

// ---- the steps -------------------------------------------------------------------------------------

const NODESTATES = { group: GROUP, version: VERSION, plural: 'l2tpnodestates' };
const NADS = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface List<T> {
  items: T[];
}

export async function uninstall(o: UninstallOptions): Promise<UninstallReport> {
  const { client, logger: log } = o;
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const poll = o.pollMs ?? 1000;
  const secs = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const q = (selector: string) => `?labelSelector=${encodeURIComponent(selector)}`;
  const ignoreNotFound = (e: unknown) => {
    if (!isNotFound(e)) throw e;
  };
  // a missing CRD (Multus not installed) reads as an empty list
  const listOrEmpty = async <T>(path: string): Promise<T[]> => {
    try {
      return (await client.get<List<T>>(path)).items;
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  };
  const waitGone = async <T extends { metadata: { name: string } }>(
    what: string,
    list: () => Promise<T[]>,
    describe: (left: T[]) => string,
  ): Promise<void> => {
    for (;;) {
      const left = await list();
      if (left.length === 0) return;
      if (Date.now() >= deadline)
        throw new Error(`timed out after ${secs()} waiting for ${what} to go: ${describe(left)}`);
      await sleep(Math.min(poll, Math.max(0, deadline - Date.now())));
    }
  };
  const report: UninstallReport = { attached: [], nodeStates: [], datapathPods: [], nads: [] };

  // 1. pods on pseudowires: their CNI DEL needs the agents, and the agent keeps the shim for them
  const nads = await listOrEmpty<NadObject>(resourcePath(NADS));
  const pods = await listOrEmpty<PodLike>('/api/v1/pods');
  report.attached = attachedPods(pods, nads);
  if (report.attached.length > 0) {
    if (o.attachedPods === 'refuse') throw new UninstallRefused(report.attached);
    log.warn(
      { attached: report.attached },
      'pods are attached to pseudowires: uninstalling anyway (attachedPods=proceed); they lose their link, and their nodes keep the CNI executable and attachment records until they are deleted',
    );
  } else {
    log.info('no pod is attached to a pseudowire');
  }

  // 2. the operator, so that nothing re-creates node states or datapath pods behind us
  const deployment = resourcePath({
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    namespace: o.namespace,
    name: o.operatorDeployment,
  });
  await client
    .patch(`${deployment}/scale`, { spec: { replicas: 0 } })
    .then(() => log.info({ deployment: o.operatorDeployment }, 'operator scaled to 0'))
    .catch((e: unknown) => {
      ignoreNotFound(e);
      log.info({ deployment: o.operatorDeployment }, 'operator Deployment already gone');
    });
  await waitGone(
    'the operator pods',
    () => listOrEmpty<PodLike>(`/api/v1/namespaces/${o.namespace}/pods${q(o.operatorSelector)}`),
    (left) => left.map((p) => p.metadata.name).join(', '),
  );
  log.info({ elapsed: secs() }, 'no operator pod left');

  // 3. tell each agent that its next stop is for good
  const states = await listOrEmpty<{ metadata: { name: string; annotations?: Record<string, string> } }>(
    resourcePath(NODESTATES),
  );
  report.nodeStates = states.map((s) => s.metadata.name).sort();
  for (const s of states) {
    if (s.metadata.annotations?.[UNINSTALL_ANNOTATION] === 'true') continue;
    await client
      .patch(resourcePath({ ...NODESTATES, name: s.metadata.name }), {
        metadata: { annotations: { [UNINSTALL_ANNOTATION]: 'true' } },
      })
      .catch(ignoreNotFound);
  }
  log.info({ nodeStates: report.nodeStates }, 'node states marked for uninstall');

  // 4. the datapath pods: each agent removes its devices, bridges, CNI executable and records on SIGTERM
  const dpPods = () => listOrEmpty<PodLike>(`/api/v1/namespaces/${o.namespace}/pods${q(o.datapathSelector)}`);
  const dp = await dpPods();
  report.datapathPods = dp.map((p) => p.metadata.name).sort();
  for (const p of dp) {
    if (p.metadata.deletionTimestamp) continue;
    await client.delete(`/api/v1/namespaces/${o.namespace}/pods/${p.metadata.name}`).catch(ignoreNotFound);
  }
  log.info(
    { pods: report.datapathPods },
    'datapath pods deleted; waiting for their agents to clean their nodes',
  );
  await waitGone('the datapath pods', dpPods, (left) =>
    left
      .map((p) => `${p.metadata.name} on node ${p.spec?.nodeName ?? '?'}`)
      .join(', ')
      .concat(
        ' (a node that is down cannot stop its pod: once it is gone for good, force-delete the pod; that node keeps the devices until it is cleaned by hand, see docs/install.md)',
      ),
  );
  log.info({ elapsed: secs() }, 'datapath pods gone: the nodes are clean');

  // 5. the node states (nothing of ours is left to remove a finalizer of ours)
  for (const s of await listOrEmpty<{ metadata: { name: string; finalizers?: string[] } }>(
    resourcePath(NODESTATES),
  )) {
    const path = resourcePath({ ...NODESTATES, name: s.metadata.name });
    const ours = ourFinalizers(s.metadata.finalizers);
    if (ours.length > 0) {
      const keep = (s.metadata.finalizers ?? []).filter((f) => !ours.includes(f));
      await client.patch(path, { metadata: { finalizers: keep } }).catch(ignoreNotFound);
    }
    await client.delete(path).catch(ignoreNotFound);
  }
  await waitGone(
    'the node states',
    () => listOrEmpty<{ metadata: { name: string; finalizers?: string[] } }>(resourcePath(NODESTATES)),
    (left) =>
      left
        .map((s) => `${s.metadata.name} (finalizers: ${(s.metadata.finalizers ?? []).join(', ') || 'none'})`)
        .join(', '),
  );
  log.info({ nodeStates: report.nodeStates }, 'node states deleted');

  // 6. the NADs the operator generated: they name a CNI plugin that no node has any more, and a
  // reinstall generates them again from the Pseudowires. Hand-written ones stay.
  const generated = await listOrEmpty<NadObject>(
    `${resourcePath(NADS)}${q(`app.kubernetes.io/managed-by=${MANAGED_BY}`)}`,
  );
  for (const n of generated) {
    await client
      .delete(resourcePath({ ...NADS, namespace: n.metadata.namespace!, name: n.metadata.name }))
      .catch(ignoreNotFound);
  }
  report.nads = generated.map((n) => `${n.metadata.namespace}/${n.metadata.name}`).sort();
  log.info({ nads: report.nads }, 'generated NetworkAttachmentDefinitions deleted');

  // 7. the operator's leader-election Lease (the operator made it, so Helm does not know it)
  await client
    .delete(
      resourcePath({
        group: 'coordination.k8s.io',
        version: 'v1',
        plural: 'leases',
        namespace: o.namespace,
        name: o.lease,
      }),
    )
    .catch(ignoreNotFound);
  log.info(
    { elapsed: secs() },
    'kube-l2tp is off the nodes; L2TPTunnels, Pseudowires and the CRDs stay (delete them with the CRDs if they should go)',
  );
  return report;
}

// ---- the command -----------------------------------------------------------------------------------

export async function uninstallCommand(argv: string[], logger: Logger): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string', default: process.env.POD_NAMESPACE ?? 'kube-l2tp' },
        'operator-deployment': { type: 'string', default: 'kube-l2tp-operator' },
        'operator-selector': {
          type: 'string',
          default: 'app.kubernetes.io/name=kube-l2tp,app.kubernetes.io/component=operator',
        },
        'datapath-selector': {
          type: 'string',
          default: `app.kubernetes.io/component=datapath,app.kubernetes.io/managed-by=${MANAGED_BY}`,
        },
        lease: { type: 'string', default: OPERATOR_LEASE },
        'attached-pods': { type: 'string', default: 'refuse' },
        'timeout-seconds': { type: 'string', default: '240' },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\nusage: ${UNINSTALL_USAGE}`);
    return 2;
  }
  const policy = values['attached-pods'];
  const timeout = Number(values['timeout-seconds']);
  if ((policy !== 'refuse' && policy !== 'proceed') || !(timeout > 0)) {
    console.error(
      `--attached-pods must be refuse or proceed, --timeout-seconds a positive number\nusage: ${UNINSTALL_USAGE}`,
    );
    return 2;
  }
  const log = logger.child({ component: 'uninstall', namespace: values.namespace });
  const client = new KubeClient(loadKubeConfig(values.kubeconfig));
  try {
    const r = await uninstall({
      client,
      logger: log,
      namespace: values.namespace,
      operatorDeployment: values['operator-deployment'],
      operatorSelector: values['operator-selector'],
      datapathSelector: values['datapath-selector'],
      lease: values.lease,
      attachedPods: policy,
      timeoutMs: timeout * 1000,
    });
    log.info({ ...r }, 'uninstall done');
    return 0;
  } catch (e) {
    if (e instanceof UninstallRefused) {
      log.error({ attached: e.attached }, e.message);
      return EXIT_REFUSED;
    }
    const msg =
      e instanceof ApiError ? `${e.message} (the uninstall hook's RBAC or the API server)` : String(e);
    log.error({ err: msg }, 'uninstall failed; it is safe to run again (helm uninstall retries the hook)');
    return 1;
  } finally {
    client.close();
  }
}
