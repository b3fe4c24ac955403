// The Helm chart and the single-file manifest: `helm lint` and `helm template` (helm built from its Go
// module) pass for the defaults and every documented option, bad values are refused by the values
// schema, the RBAC has no wildcards and is exactly lib/api/rbac.ts, the operator runs restricted, and
// the rendered chart and deploy/kube-l2tp.yaml are accepted by a real kube-apiserver (--dry-run=server,
// then a real apply).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCapture } from '../../lib/exec.js';
import {
  AGENT_CLUSTER_RULES,
  AGENT_SA,
  IDENTITIES,
  OPERATOR_SA,
  UNINSTALL_SA,
  type Identity,
} from '../../lib/api/rbac.js';
import { startControlPlane, toolsBinDir, type ControlPlane } from '../harness/controlplane.js';

const root = join(import.meta.dirname, '..', '..', '..');
const chart = join(root, 'deploy', 'helm', 'kube-l2tp');
const manifest = join(root, 'deploy', 'kube-l2tp.yaml');
const helmBin = join(toolsBinDir(), 'helm');
const KUBE_VERSION = '1.34.3';
const NS = 'kube-l2tp';

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
};
type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] };

async function helm(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await runCapture(helmBin, args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function template(set: string[] = [], extra: string[] = []): Promise<string> {
  const r = await helm([
    'template', 'kube-l2tp', chart, '--namespace', NS, '--kube-version', KUBE_VERSION,
    ...set.flatMap((s) => ['--set', s]), ...extra,
  ]); // prettier-ignore
  assert.equal(r.code, 0, `helm template ${set.join(' ')} failed:\n${r.err}`);
  return r.out;
}

const docs = (text: string): Obj[] =>
  YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null && typeof o === 'object');

const find = (objs: Obj[], kind: string, name?: string): Obj => {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `no ${kind} ${name ?? ''} in the rendered chart`);
  return o;
};

/** The securityContext of every container of the chart that needs no privilege. */
const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  privileged: false,
  capabilities: { drop: ['ALL'] },
};

describe('helm chart: lint and template', () => {
  it('helm lint --strict passes with the default values and with every option switched', async () => {
    const variants: string[][] = [
      [],
      ['metrics.serviceMonitor.enabled=true', 'multus.enabled=false', 'datapath.backend=kernel'],
      ['namespace.create=true', 'mtu.policy=fixed', 'mtu.fixed=1400', 'operator.replicas=1'],
      [
        'operator.leaderElection.enabled=false',
        'operator.replicas=1',
        'agentNodeRestriction.enabled=false',
        'image.tag=dev',
      ],
    ];
    for (const v of variants) {
      const r = await helm([
        'lint',
        '--strict',
        chart,
        '--kube-version',
        KUBE_VERSION,
        ...v.flatMap((s) => ['--set', s]),
      ]);
      assert.equal(r.code, 0, `helm lint ${v.join(' ')}:\n${r.out}\n${r.err}`);
      assert.match(r.out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('renders the documented objects with the default values', async () => {
    const objs = docs(await template([], ['--include-crds']));
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    for (const k of [
      'CustomResourceDefinition/l2tptunnels.l2tp.kube-l2tp.io',
      'CustomResourceDefinition/pseudowires.l2tp.kube-l2tp.io',
      'CustomResourceDefinition/l2tpnodestates.l2tp.kube-l2tp.io',
      `ServiceAccount/${OPERATOR_SA}`,
      `ServiceAccount/${AGENT_SA}`,
      `ClusterRole/${OPERATOR_SA}`,
      `ClusterRole/${AGENT_SA}`,
      `Role/${OPERATOR_SA}`,
      'Deployment/kube-l2tp-operator',
      'Service/kube-l2tp-operator-metrics',
      'ValidatingAdmissionPolicy/kube-l2tp-agent-node-restriction',
      'ValidatingAdmissionPolicyBinding/kube-l2tp-agent-node-restriction',
    ]) {
      assert.ok(kinds.includes(k), `missing ${k} in ${kinds.join(', ')}`);
    }
    assert.ok(!kinds.some((k) => k.startsWith('ServiceMonitor/')), 'ServiceMonitor is off by default');
    assert.ok(!kinds.some((k) => k.startsWith('Namespace/')), 'the Namespace is not rendered by default');
    for (const o of objs.filter((x) => x.metadata.namespace !== undefined))
      assert.equal(o.metadata.namespace, NS);
  });

  it('the chart carries the generated CRDs of crds/, byte for byte', () => {
    for (const f of ['l2tptunnels', 'pseudowires', 'l2tpnodestates']) {
      const name = `l2tp.kube-l2tp.io_${f}.yaml`;
      assert.equal(
        readFileSync(join(chart, 'crds', name), 'utf8'),
        readFileSync(join(root, 'crds', name), 'utf8'),
      );
    }
  });

  it('RBAC: no wildcard anywhere, and exactly the rules of lib/api/rbac.ts', async () => {
    for (const set of [[], ['namespace.create=true']]) {
      const objs = docs(await template(set));
      const roles = objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
      // operator (cluster + namespace), agent, and the uninstall hook's pair
      assert.equal(roles.length, 5);
      for (const r of roles) {
        for (const rule of r.rules as (Rule & { nonResourceURLs?: string[] })[]) {
          const all = [
            ...(rule.apiGroups ?? []),
            ...(rule.resources ?? []),
            ...rule.verbs,
            ...(rule.resourceNames ?? []),
            ...(rule.nonResourceURLs ?? []),
          ];
          for (const s of all) assert.ok(!s.includes('*'), `wildcard "${s}" in ${r.kind} ${r.metadata.name}`);
          assert.equal(rule.nonResourceURLs, undefined, 'no non-resource URLs');
        }
      }
      const rules = (kind: string, name: string) => find(objs, kind, name).rules;
      for (const id of Object.values(IDENTITIES) as Identity[]) {
        assert.deepEqual(rules('ClusterRole', id.serviceAccount), id.clusterRules);
        if (id.namespaceRules) assert.deepEqual(rules('Role', id.serviceAccount), id.namespaceRules);
      }
      // the agent never writes a node state's spec, creates or deletes one, or reads Secrets
      for (const rule of AGENT_CLUSTER_RULES) {
        if (rule.resources.includes('l2tpnodestates')) {
          assert.deepEqual(
            rule.verbs.filter((v) => !['get', 'list', 'watch'].includes(v)),
            [],
          );
        }
        assert.ok(!rule.resources.includes('secrets'));
      }
      // bindings point at the chart's own ServiceAccounts in the release namespace
      for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
        assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: b.metadata.name, namespace: NS }]);
      }
    }
  });

  it('the pre-delete hook: its RBAC before its Job, deleted on success, values reach its args; not in deploy/kube-l2tp.yaml', async () => {
    const objs = docs(await template(['uninstall.attachedPods=proceed', 'uninstall.timeoutSeconds=100']));
    const hooks = objs.filter(
      (o) => (o.metadata as { annotations?: Record<string, string> }).annotations?.['helm.sh/hook'],
    );
    assert.deepEqual(
      hooks.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      ['ClusterRole', 'ClusterRoleBinding', 'Job', 'Role', 'RoleBinding', 'ServiceAccount']
        .map((k) => `${k}/${k === 'Job' ? 'kube-l2tp-uninstall' : UNINSTALL_SA}`)
        .sort(),
    );
    const ann = (o: Obj) => (o.metadata as { annotations?: Record<string, string> }).annotations ?? {};
    const job = find(hooks, 'Job') as Obj & {
      spec: { activeDeadlineSeconds: number; template: { spec: { serviceAccountName: string; containers: { command: string[]; args: string[]; securityContext: unknown }[] } } };
    }; // prettier-ignore
    for (const o of hooks) {
      assert.equal(ann(o)['helm.sh/hook'], 'pre-delete');
      assert.equal(ann(o)['helm.sh/hook-delete-policy'], 'before-hook-creation,hook-succeeded');
      if (o !== job)
        assert.ok(
          Number(ann(o)['helm.sh/hook-weight']) < Number(ann(job)['helm.sh/hook-weight']),
          `${o.kind} after the Job`,
        );
    }
    const c = job.spec.template.spec.containers[0]!;
    assert.equal(job.spec.template.spec.serviceAccountName, UNINSTALL_SA);
    assert.deepEqual(c.command, ['kube-l2tp-operator', 'uninstall']);
    assert.ok(
      c.args.includes('--attached-pods=proceed') && c.args.includes('--timeout-seconds=100'),
      c.args.join(' '),
    );
    assert.ok(c.args.includes('--operator-deployment=kube-l2tp-operator'), c.args.join(' '));
    assert.equal(job.spec.activeDeadlineSeconds, 160);
    assert.deepEqual(c.securityContext, RESTRICTED_CONTAINER);
    const off = docs(await template(['uninstall.enabled=false']));
    assert.ok(
      !off.some((o) => o.kind === 'Job' || o.metadata.name === UNINSTALL_SA),
      'uninstall.enabled=false: no hook',
    );
    // kubectl runs no hooks: applied with the rest, the Job would uninstall right away
    const text = readFileSync(manifest, 'utf8');
    assert.doesNotMatch(text, /helm\.sh\/hook|kind: Job/);
    const kubectlUninstall = docs(readFileSync(join(root, 'deploy', 'kube-l2tp-uninstall.yaml'), 'utf8'));
    assert.deepEqual(kubectlUninstall.map((o) => o.kind).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'Job',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
  });

  it('the operator: 2 replicas, leader election, probes, resources, restricted securityContext', async () => {
    const dep = find(docs(await template()), 'Deployment', 'kube-l2tp-operator') as Obj & {
      spec: {
        replicas: number;
        template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };
      };
    };
    assert.equal(dep.spec.replicas, 2);
    const pod = dep.spec.template.spec;
    assert.equal(pod.serviceAccountName, OPERATOR_SA);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      fsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = pod.containers[0]!;
    const args = c.args as string[];
    assert.ok(args.includes('--leader-elect=true'), args.join(' '));
    assert.deepEqual(c.securityContext, RESTRICTED_CONTAINER);
    for (const p of ['livenessProbe', 'readinessProbe', 'startupProbe']) assert.ok(c[p], `${p} missing`);
    const res = c.resources as { requests: Record<string, string>; limits: Record<string, string> };
    assert.ok(res.requests.cpu && res.requests.memory && res.limits.memory);
  });

  it('documented values reach the operator (its environment, passed on to the datapath pods)', async () => {
    const objs = docs(
      await template([
        'datapath.backend=userspace',
        'cni.binDir=/usr/libexec/cni',
        'cni.confDir=/etc/kubernetes/cni/net.d',
        'cni.dataDir=/var/lib/containerd/cni',
        'cni.netnsDir=/run/containerd/io.containerd.grpc.v1.cri/netns',
        'multus.enabled=false',
        'logLevel=debug',
        'mtu.policy=fixed',
        'mtu.fixed=1380',
        'image.repository=registry.example/kube-l2tp',
        'image.tag=1.2.3',
        'datapath.nodeSelector.l2tp=yes',
        'datapath.metricsHost=node-ip',
        'datapath.seccompProfile=RuntimeDefault',
        'datapath.kubeletRootDir=/var/lib/k0s/kubelet',
      ]),
    );
    const dep = find(objs, 'Deployment') as Obj & {
      spec: {
        template: { spec: { containers: { image: string; env: { name: string; value?: string }[] }[] } };
      };
    };
    const c = dep.spec.template.spec.containers[0]!;
    assert.equal(c.image, 'registry.example/kube-l2tp:1.2.3');
    const env = Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    assert.deepEqual(
      {
        image: env.DATAPATH_IMAGE,
        sa: env.DATAPATH_SERVICE_ACCOUNT,
        backend: env.DATAPATH_BACKEND,
        nodeSelector: JSON.parse(env.DATAPATH_NODE_SELECTOR!) as unknown,
        tolerations: JSON.parse(env.DATAPATH_TOLERATIONS!) as unknown,
        cniBin: env.CNI_BIN_DIR,
        cniConf: env.CNI_CONF_DIR,
        cniData: env.CNI_DATA_DIR,
        netns: env.NETNS_DIR,
        socket: env.AGENT_SOCKET_DIR,
        multus: env.MULTUS_ENABLED,
        mtu: [env.MTU_POLICY, env.MTU_UNDERLAY, env.MTU_FIXED],
        log: [env.LOG_LEVEL, env.DATAPATH_LOG_LEVEL],
        metricsHost: env.DATAPATH_METRICS_HOST,
        seccomp: [env.DATAPATH_SECCOMP_PROFILE, env.KUBELET_ROOT_DIR],
      },
      {
        image: 'registry.example/kube-l2tp:1.2.3',
        sa: AGENT_SA,
        backend: 'userspace',
        nodeSelector: { 'kubernetes.io/os': 'linux', l2tp: 'yes' },
        tolerations: [{ operator: 'Exists' }],
        cniBin: '/usr/libexec/cni',
        cniConf: '/etc/kubernetes/cni/net.d',
        cniData: '/var/lib/containerd/cni',
        netns: '/run/containerd/io.containerd.grpc.v1.cri/netns',
        socket: '/run/kube-l2tp',
        multus: 'false',
        mtu: ['fixed', '1500', '1380'],
        log: ['debug', 'debug'],
        metricsHost: 'node-ip',
        seccomp: ['RuntimeDefault', '/var/lib/k0s/kubelet'],
      },
    );
  });

  it('the values schema refuses bad values with a message naming the key', async () => {
    for (const [set, key] of [
      ['datapath.backend=dpdk', 'backend'],
      ['logLevel=verbose', 'logLevel'],
      ['cni.binDir=relative/dir', 'binDir'],
      ['cni.dataDir=var/lib/cni', 'dataDir'],
      ['cni.netnsDir=run/netns', 'netnsDir'],
      ['mtu.policy=auto', 'policy'],
      ['datapath.seccompProfile=Unconfined', 'seccompProfile'],
      ['datapath.kubeletRootDir=var/lib/kubelet', 'kubeletRootDir'],
      ['operator.replicas=0', 'replicas'],
      ['typo=1', 'typo'],
      ['operator.leaderElection.enabled=false', 'needs operator.replicas=1'],
    ] as const) {
      const r = await helm(['template', 'x', chart, '--kube-version', KUBE_VERSION, '--set', set]);
      assert.notEqual(r.code, 0, `${set} was accepted`);
      assert.match(r.err, new RegExp(key), r.err);
    }
  });

  it('deploy/kube-l2tp.yaml is the chart rendered by scripts/render-manifest.sh (not stale)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'kube-l2tp-manifest-'));
    try {
      const r = await runCapture('bash', [join(root, 'scripts', 'check-manifest.sh')]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // and the check does catch a stale manifest
      const stale = join(tmp, 'chart');
      await runCapture('cp', ['-r', chart, stale]);
      writeFileSync(
        join(stale, 'values.yaml'),
        readFileSync(join(chart, 'values.yaml'), 'utf8').replace('replicas: 2', 'replicas: 3'),
      );
      const out = join(tmp, 'out.yaml');
      const r2 = await runCapture('bash', [join(root, 'scripts', 'render-manifest.sh'), stale, out]);
      assert.equal(r2.code, 0, r2.stderr);
      assert.notEqual(readFileSync(out, 'utf8'), readFileSync(manifest, 'utf8'));
      assert.match(readFileSync(out, 'utf8'), /replicas: 3/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('helm chart and single-file manifest on a real kube-apiserver', () => {
  let cp: ControlPlane;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kube-l2tp-helm-'));
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const operatorReplicas = () =>
    cp.kubectl(['-n', NS, 'get', 'deployment', 'kube-l2tp-operator', '-o', 'jsonpath={.spec.replicas}']);
  const kubectlFile = async (args: string[], text: string) => {
    const f = join(dir, `m${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, text);
    return cp.kubectl([...args, '-f', f]);
  };

  it('helm install, upgrade and uninstall against the real apiserver; NOTES.txt says what to apply next', async () => {
    const env = {
      ...process.env,
      HELM_CACHE_HOME: join(dir, 'helm-cache'),
      HELM_CONFIG_HOME: join(dir, 'helm-config'),
      HELM_DATA_HOME: join(dir, 'helm-data'),
    };
    const h = async (args: string[]) => {
      const r = await runCapture(helmBin, ['--kubeconfig', cp.adminKubeconfig, ...args], { env });
      assert.equal(r.code, 0, `helm ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const install = await h(['install', 'kube-l2tp', chart, '--namespace', NS, '--create-namespace']);
    assert.match(install, /STATUS: deployed/);
    assert.match(install, /kubectl -n kube-l2tp rollout status deployment\/kube-l2tp-operator/);
    assert.match(install, /kubectl apply -f examples\/in-cluster-pair.yaml/);
    assert.match(install, /pod-security.kubernetes.io\/enforce=privileged/);
    const crds = await cp.kubectl(['get', 'crd', '-o', 'name']);
    for (const c of ['l2tptunnels', 'pseudowires', 'l2tpnodestates'])
      assert.match(crds, new RegExp(`${c}.l2tp.kube-l2tp.io`));
    assert.equal(await operatorReplicas(), '2');
    const up = await h([
      'upgrade',
      'kube-l2tp',
      chart,
      '--namespace',
      NS,
      '--set',
      'datapath.backend=userspace',
      '--set',
      'multus.enabled=false',
    ]);
    assert.match(up, /REVISION: 2/);
    assert.match(up, /Multus integration is off/);
    const env2 = await cp.kubectl([
      '-n',
      NS,
      'get',
      'deployment',
      'kube-l2tp-operator',
      '-o',
      'jsonpath={.spec.template.spec.containers[0].env}',
    ]);
    assert.match(env2, /"name":"DATAPATH_BACKEND","value":"userspace"/);
    // this apiserver has no nodes, so the pre-delete hook's Job could never run (the real-cluster
    // e2e suite runs it: test/e2e/uninstall.test.ts)
    await h(['uninstall', 'kube-l2tp', '--namespace', NS, '--no-hooks']);
    const left = await cp.kubectl([
      'get',
      'clusterroles,validatingadmissionpolicies',
      '-l',
      'app.kubernetes.io/instance=kube-l2tp',
      '-o',
      'name',
    ]);
    assert.equal(left.trim(), '', 'uninstall leaves no cluster-scoped objects (CRDs stay, as Helm does)');
  });

  it('the rendered chart (every option on) applies with --dry-run=server', async () => {
    // the namespace exists already after the helm test (Helm never deletes namespaces)
    await cp.kubectl(['get', 'namespace', NS]).catch(() => cp.kubectl(['create', 'namespace', NS]));
    // a stand-in CRD for prometheus-operator's ServiceMonitor, so that object is checked too
    await kubectlFile(['apply'], SERVICEMONITOR_CRD);
    await cp.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/servicemonitors.monitoring.coreos.com',
    ]);
    const text = await template(['metrics.serviceMonitor.enabled=true'], ['--include-crds']);
    const out = await kubectlFile(['apply', '--dry-run=server'], text);
    const n = docs(text).length;
    assert.equal(out.trim().split('\n').length, n, out);
    assert.match(out, /servicemonitor.monitoring.coreos.com\/kube-l2tp-operator created \(server dry run\)/);
    assert.match(
      out,
      /validatingadmissionpolicy.admissionregistration.k8s.io\/kube-l2tp-agent-node-restriction created/,
    );
  });

  it('deploy/kube-l2tp.yaml applies with --dry-run=server, then for real, twice (idempotent)', async () => {
    const text = readFileSync(manifest, 'utf8');
    const n = docs(text).length;
    const dry = await kubectlFile(['apply', '--dry-run=server'], text);
    assert.equal(dry.trim().split('\n').length, n, dry);
    const real = await kubectlFile(['apply', '--server-side', '--field-manager=kube-l2tp-test'], text);
    assert.equal(real.trim().split('\n').length, n, real);
    await cp.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd',
      '-l',
      'app.kubernetes.io/part-of=kube-l2tp',
    ]);
    const again = await kubectlFile(['apply', '--server-side', '--field-manager=kube-l2tp-test'], text);
    assert.doesNotMatch(again, /created/);
    const ns = JSON.parse(await cp.kubectl(['get', 'namespace', NS, '-o', 'json'])) as Obj;
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(await operatorReplicas(), '2');
  });
});

const SERVICEMONITOR_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: { kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              properties:
                namespaceSelector: { type: object, x-kubernetes-preserve-unknown-fields: true }
                selector: { type: object, x-kubernetes-preserve-unknown-fields: true }
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: { type: string }
                      path: { type: string }
                      interval: { type: string }
                      scrapeTimeout: { type: string }
`;
