// Multus (thin plugin) installed as users install it: the manifest of the shape upstream ships in
// deployments/multus-daemonset.yml (the NetworkAttachmentDefinition CRD, a ServiceAccount, its
// ClusterRole and binding, and the kube-multus-ds DaemonSet whose init container copies the plugin
// into the node's /opt/cni/bin and whose main container writes 00-multus.conf in front of the node's
// primary network). Only the image differs: a local one built from Multus's Go module.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export function multusManifest(image: string): Record<string, unknown>[] {
  const crd = JSON.parse(readFileSync(join(REPO, 'test/fixtures/multus-nad-crd.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const labels = { tier: 'node', app: 'multus', name: 'multus' };
  return [
    crd,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'multus' },
      rules: [
        { apiGroups: ['k8s.cni.cncf.io'], resources: ['*'], verbs: ['*'] },
        { apiGroups: [''], resources: ['pods', 'pods/status'], verbs: ['get', 'list', 'update', 'watch'] },
        { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'multus' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'multus' },
      subjects: [{ kind: 'ServiceAccount', name: 'multus', namespace: 'kube-system' }],
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'multus', namespace: 'kube-system' } },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'kube-multus-ds', namespace: 'kube-system', labels },
      spec: {
        selector: { matchLabels: { name: 'multus' } },
        updateStrategy: { type: 'RollingUpdate' },
        template: {
          metadata: { labels },
          spec: {
            hostNetwork: true,
            tolerations: [
              { operator: 'Exists', effect: 'NoSchedule' },
              { operator: 'Exists', effect: 'NoExecute' },
            ],
            serviceAccountName: 'multus',
            terminationGracePeriodSeconds: 10,
            initContainers: [
              {
                name: 'install-multus-binary',
                image,
                imagePullPolicy: 'Never',
                command: ['/install_multus'],
                args: ['--type', 'thin'],
                securityContext: { privileged: true },
                terminationMessagePolicy: 'FallbackToLogsOnError',
                volumeMounts: [
                  { name: 'cnibin', mountPath: '/host/opt/cni/bin', mountPropagation: 'Bidirectional' },
                ],
              },
            ],
            containers: [
              {
                name: 'kube-multus',
                image,
                imagePullPolicy: 'Never',
                command: ['/thin_entrypoint'],
                args: [
                  '--multus-conf-file=auto',
                  '--multus-autoconfig-dir=/host/etc/cni/net.d',
                  '--cni-conf-dir=/host/etc/cni/net.d',
                ],
                resources: {
                  requests: { cpu: '100m', memory: '50Mi' },
                  limits: { cpu: '100m', memory: '50Mi' },
                },
                securityContext: { privileged: true },
                terminationMessagePolicy: 'FallbackToLogsOnError',
                volumeMounts: [
                  { name: 'cni', mountPath: '/host/etc/cni/net.d' },
                  { name: 'cnibin', mountPath: '/host/opt/cni/bin' },
                ],
              },
            ],
            volumes: [
              { name: 'cni', hostPath: { path: '/etc/cni/net.d' } },
              { name: 'cnibin', hostPath: { path: '/opt/cni/bin' } },
            ],
          },
        },
      },
    },
  ];
}
