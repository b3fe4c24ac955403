// Least-privilege RBAC for the operator and the datapath agent (no wildcards). The Helm chart renders
// these objects; deploy/rbac/*.yaml is generated from here (scripts/gen-crds.ts); the integration
// tests run the operator and a simulated agent as exactly these identities.
//
// Cookies: the operator resolves cookie Secrets and writes the hex values into L2TPNodeState.spec.
// Trade-off: agents need no Secret access at all (a node compromise does not expose every Secret in
// every namespace), at the price that cookies are readable by whoever can read L2TPNodeStates
// (cluster-scoped: the operator, the agents and cluster admins). RFC 3931 cookies are sent in clear
// text on the wire, so they are an anti-spoofing value, not a confidentiality key; the operator still
// needs cluster-wide `get` on Secrets (never list/watch) to resolve secretRefs.
import YAML from 'yaml';
import { GROUP } from './schemas.js';

export const DEFAULT_NAMESPACE = 'kube-l2tp';
export const OPERATOR_SA = 'kube-l2tp-operator';
export const AGENT_SA = 'kube-l2tp-datapath';
/** The identity of the chart's pre-delete hook Job (`kube-l2tp-operator uninstall`), only while it runs. */
export const UNINSTALL_SA = 'kube-l2tp-uninstall';
/** The operator's leader-election Lease in its namespace. */
export const OPERATOR_LEASE = 'kube-l2tp-operator';

export const serviceAccountUser = (namespace: string, sa: string) =>
  `system:serviceaccount:${namespace}:${sa}`;

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export const OPERATOR_CLUSTER_RULES: PolicyRule[] = [
  {
    apiGroups: [GROUP],
    resources: ['l2tptunnels', 'pseudowires'],
    verbs: ['get', 'list', 'watch', 'update', 'patch'],
  },
  {
    apiGroups: [GROUP],
    resources: ['l2tptunnels/status', 'pseudowires/status'],
    verbs: ['get', 'update', 'patch'],
  },
  // blockOwnerDeletion on owner references (node states own pods, pseudowires own NADs) needs update
  // on the owner's finalizers subresource where OwnerReferencesPermissionEnforcement is on (OpenShift)
  {
    apiGroups: [GROUP],
    resources: ['l2tpnodestates/finalizers', 'pseudowires/finalizers'],
    verbs: ['update'],
  },
  {
    apiGroups: [GROUP],
    resources: ['l2tpnodestates'],
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  },
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  {
    apiGroups: ['k8s.cni.cncf.io'],
    resources: ['network-attachment-definitions'],
    verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  },
];

/** Namespaced (the operator's namespace): datapath pods and the leader-election Lease. */
export const OPERATOR_NAMESPACE_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/** The node agent: read node states (it watches only its own by field selector), write their status. */
export const AGENT_CLUSTER_RULES: PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['l2tpnodestates'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: ['l2tpnodestates/status'], verbs: ['get', 'update', 'patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
];

/**
 * The uninstall hook, cluster-wide: find pods still attached to pseudowires (pods and NADs are read
 * across namespaces), mark and delete the node states, delete the NADs the operator generated.
 */
export const UNINSTALL_CLUSTER_RULES: PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['l2tpnodestates'], verbs: ['get', 'list', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
  {
    apiGroups: ['k8s.cni.cncf.io'],
    resources: ['network-attachment-definitions'],
    verbs: ['list', 'delete'],
  },
];

/** The uninstall hook, in the release namespace: stop the operator, delete the datapath pods and the Lease. */
export const UNINSTALL_NAMESPACE_RULES: PolicyRule[] = [
  { apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['delete'] },
  {
    apiGroups: ['coordination.k8s.io'],
    resources: ['leases'],
    verbs: ['delete'],
    resourceNames: [OPERATOR_LEASE],
  },
];

/** Each identity the project runs as: its ServiceAccount and rules. The chart's files/rbac.yaml is this. */
export interface Identity {
  serviceAccount: string;
  clusterRules: PolicyRule[];
  /** In the release namespace. */
  namespaceRules?: PolicyRule[];
}

export const IDENTITIES = {
  operator: {
    serviceAccount: OPERATOR_SA,
    clusterRules: OPERATOR_CLUSTER_RULES,
    namespaceRules: OPERATOR_NAMESPACE_RULES,
  },
  agent: { serviceAccount: AGENT_SA, clusterRules: AGENT_CLUSTER_RULES },
  /** The chart's pre-delete hook (templates/uninstall.yaml), only while it runs. */
  uninstall: {
    serviceAccount: UNINSTALL_SA,
    clusterRules: UNINSTALL_CLUSTER_RULES,
    namespaceRules: UNINSTALL_NAMESPACE_RULES,
  },
} as const satisfies Record<string, Identity>;

type Obj = Record<string, unknown>;

/** One identity as plain objects: ServiceAccount, ClusterRole and binding, Role and binding if any. */
function identityObjects(id: Identity, namespace: string): Obj[] {
  const labels = { 'app.kubernetes.io/name': 'kube-l2tp' };
  const name = id.serviceAccount;
  const rbac = 'rbac.authorization.k8s.io';
  const subjects = [{ kind: 'ServiceAccount', name, namespace }];
  const role = (kind: 'ClusterRole' | 'Role', rules: PolicyRule[]): Obj[] => {
    const metadata = kind === 'Role' ? { name, namespace, labels } : { name, labels };
    return [
      { apiVersion: `${rbac}/v1`, kind, metadata, rules },
      {
        apiVersion: `${rbac}/v1`,
        kind: `${kind}Binding`,
        metadata,
        roleRef: { apiGroup: rbac, kind, name },
        subjects,
      },
    ];
  };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels } },
    ...role('ClusterRole', id.clusterRules),
    ...(id.namespaceRules ? role('Role', id.namespaceRules) : []),
  ];
}

/** The operator's and the agent's identities as plain objects (deploy/rbac, the integration tests). */
export function rbacObjects(namespace = DEFAULT_NAMESPACE): Obj[] {
  return [IDENTITIES.operator, IDENTITIES.agent].flatMap((id) => identityObjects(id, namespace));
}

export function renderRBACFiles(namespace = DEFAULT_NAMESPACE): Map<string, string> {
  const header = '# Generated by scripts/gen-crds.ts from lib/api/rbac.ts. Do not edit.\n';
  const text = rbacObjects(namespace)
    .map((o) => YAML.stringify(o, { lineWidth: 0 }))
    .join('---\n');
  return new Map([['rbac.yaml', header + text]]);
}
