import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { controllerConfigFromEnv, podConfigFromEnv } from './env-config.js';
import { parseAgentArgs } from '../datapath/agent/command.js';
import { DEFAULT_POD_CONFIG, desiredDatapathPod } from './render.js';

/** The agent's environment as the kubelet gives it: $(VAR) references expanded, fieldRefs from `fields`. */
function kubeletEnv(
  env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[],
  fields: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env)
    out[e.name] = e.valueFrom
      ? fields[e.valueFrom.fieldRef.fieldPath]!
      : e.value!.replace(/\$\((\w+)\)/g, (m, v: string) => out[v] ?? m);
  return out;
}

describe('operator settings from the chart environment', () => {
  const env = {
    DATAPATH_IMAGE: 'registry.example/kube-l2tp:1.2.3',
    DATAPATH_IMAGE_PULL_POLICY: 'Always',
    DATAPATH_BACKEND: 'kernel',
    DATAPATH_NODE_SELECTOR: '{"l2tp":"yes"}',
    DATAPATH_TOLERATIONS: '[{"key":"edge","operator":"Exists","effect":"NoSchedule"}]',
    DATAPATH_RESOURCES: '{"limits":{"memory":"128Mi"}}',
    DATAPATH_IMAGE_PULL_SECRETS: '[{"name":"regcred"}]',
    CNI_BIN_DIR: '/var/lib/cni/bin',
    CNI_CONF_DIR: '/etc/cni/multus/net.d',
    CNI_DATA_DIR: '/var/lib/containerd-cni',
    NETNS_DIR: '/run/containerd/io.containerd.grpc.v1.cri/netns',
    AGENT_SOCKET_DIR: '/var/run/kube-l2tp',
    MTU_POLICY: 'fixed',
    MTU_UNDERLAY: '9000',
    MTU_FIXED: '1400',
    MULTUS_ENABLED: 'false',
    DATAPATH_SECCOMP_PROFILE: 'Localhost',
    KUBELET_ROOT_DIR: '/data/kubelet',
  };

  it('reaches the datapath pod the operator renders', () => {
    const cfg = { ...DEFAULT_POD_CONFIG, ...podConfigFromEnv(env) };
    const pod = desiredDatapathPod('n1', cfg);
    const spec = pod.spec as Record<string, unknown> & {
      containers: Record<string, unknown>[];
      volumes: { name: string; hostPath: { path: string } }[];
    };
    const c = spec.containers[0]!;
    assert.equal(c.image, 'registry.example/kube-l2tp:1.2.3');
    assert.equal(c.imagePullPolicy, 'Always');
    assert.deepEqual(spec.nodeSelector, { l2tp: 'yes' });
    assert.deepEqual(spec.tolerations, [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.deepEqual(spec.imagePullSecrets, [{ name: 'regcred' }]);
    assert.deepEqual(c.resources, { limits: { memory: '128Mi' } });
    const e = Object.fromEntries((c.env as { name: string; value?: string }[]).map((x) => [x.name, x.value]));
    assert.equal(e.KUBE_L2TP_BACKEND, 'kernel');
    assert.equal(e.KUBE_L2TP_UNDERLAY_MTU, '9000');
    assert.equal(e.KUBE_L2TP_FIXED_MTU, '1400');
    assert.equal(e.KUBE_L2TP_SOCKET_DIR, '/var/run/kube-l2tp');
    const vol = Object.fromEntries(spec.volumes.map((v) => [v.name, v.hostPath.path]));
    assert.equal(vol['cni-bin'], '/var/lib/cni/bin');
    assert.equal(vol['cni-conf'], '/etc/cni/multus/net.d');
    assert.equal(vol['cni-data'], '/var/lib/containerd-cni');
    assert.equal(vol.netns, '/run/containerd/io.containerd.grpc.v1.cri/netns');
    const mounts = Object.fromEntries(
      (c.volumeMounts as { name: string; mountPath: string }[]).map((m) => [m.name, m.mountPath]),
    );
    // the conf dir also at its own path, read-only: whereabouts finds its configuration file there
    assert.deepEqual(
      (c.volumeMounts as { name: string }[]).filter((m) => m.name === 'cni-conf'),
      [
        { name: 'cni-conf', mountPath: '/host/cni/net.d' },
        { name: 'cni-conf', mountPath: '/etc/cni/multus/net.d', readOnly: true },
      ],
    );
    assert.equal(
      mounts['cni-data'],
      '/var/lib/containerd-cni',
      'at the same path: delegates write where they expect',
    );
    assert.equal(
      mounts.netns,
      '/run/containerd/io.containerd.grpc.v1.cri/netns',
      'at the paths the records hold',
    );
    assert.deepEqual(controllerConfigFromEnv(env), { multus: false });
    // the kubelet reads Localhost profiles from <root dir>/seccomp: the init container writes there
    assert.deepEqual(vol['seccomp-profile'], '/data/kubelet/seccomp/kube-l2tp');
    assert.deepEqual(c.securityContext, {
      ...(c.securityContext as object),
      seccompProfile: { type: 'Localhost', localhostProfile: 'kube-l2tp/datapath.json' },
    });
  });

  it('seccomp profile: the chart value decides the agent container filter and its init container', () => {
    const render = (fromChart: Record<string, string>) => {
      const pod = desiredDatapathPod('n1', { ...DEFAULT_POD_CONFIG, ...podConfigFromEnv(fromChart) });
      const spec = pod.spec as {
        initContainers?: { name: string }[];
        containers: { securityContext: { seccompProfile: unknown } }[];
        volumes: { name: string; hostPath: { path: string } }[];
      };
      return {
        agent: spec.containers[0]!.securityContext.seccompProfile,
        init: (spec.initContainers ?? []).map((x) => x.name),
        dir: spec.volumes.find((v) => v.name === 'seccomp-profile')?.hostPath.path,
      };
    };
    const localhost = {
      agent: { type: 'Localhost', localhostProfile: 'kube-l2tp/datapath.json' },
      init: ['seccomp-profile'],
      dir: '/var/lib/kubelet/seccomp/kube-l2tp',
    };
    assert.deepEqual(render({}), localhost, 'the default');
    assert.deepEqual(render({ DATAPATH_SECCOMP_PROFILE: 'Localhost' }), localhost);
    assert.deepEqual(render({ DATAPATH_SECCOMP_PROFILE: 'RuntimeDefault', KUBELET_ROOT_DIR: '/k' }), {
      agent: { type: 'RuntimeDefault' },
      init: [],
      dir: undefined,
    });
    assert.deepEqual(render({ KUBELET_ROOT_DIR: '/var/lib/k0s/kubelet/' }), {
      ...localhost,
      dir: '/var/lib/k0s/kubelet/seccomp/kube-l2tp',
    });
  });

  it('metrics host: the chart value decides where the agent binds, and the probes follow', () => {
    const agentBind = (fromChart: Record<string, string>) => {
      const pod = desiredDatapathPod('n1', { ...DEFAULT_POD_CONFIG, ...podConfigFromEnv(fromChart) });
      const c = (pod.spec as { containers: Record<string, unknown>[] }).containers[0]!;
      const env = kubeletEnv(c.env as never, { 'spec.nodeName': 'n1', 'metadata.namespace': 'kube-l2tp', 'status.hostIP': '10.0.0.7' });
      const probe = (c.readinessProbe as { httpGet: { host?: string } }).httpGet.host;
      return { bind: parseAgentArgs([], env)['metrics-host'], probe };
    }; // prettier-ignore
    assert.deepEqual(agentBind({}), { bind: '127.0.0.1', probe: '127.0.0.1' });
    assert.deepEqual(agentBind({ DATAPATH_METRICS_HOST: '127.0.0.1' }), {
      bind: '127.0.0.1',
      probe: '127.0.0.1',
    });
    // the kubelet probes the pod's IP, which is the node's (host network)
    assert.deepEqual(agentBind({ DATAPATH_METRICS_HOST: 'node-ip' }), { bind: '10.0.0.7', probe: undefined });
    assert.deepEqual(agentBind({ DATAPATH_METRICS_HOST: '0.0.0.0' }), { bind: '0.0.0.0', probe: undefined });
    assert.equal(parseAgentArgs([], {})['metrics-host'], '127.0.0.1', 'the agent alone binds loopback');
    assert.throws(
      () => podConfigFromEnv({ DATAPATH_METRICS_HOST: 'everywhere' }),
      /DATAPATH_METRICS_HOST: 127.0.0.1, node-ip/,
    );
  });

  it('keeps the defaults when the chart sets nothing', () => {
    assert.deepEqual(podConfigFromEnv({}), {});
    assert.deepEqual(controllerConfigFromEnv({}), {});
    const pod = desiredDatapathPod('n1', DEFAULT_POD_CONFIG);
    assert.deepEqual((pod.spec as { tolerations: unknown }).tolerations, [{ operator: 'Exists' }]);
  });

  it('rejects bad values naming the variable', () => {
    assert.throws(() => podConfigFromEnv({ DATAPATH_BACKEND: 'fast' }), /DATAPATH_BACKEND/);
    assert.throws(() => podConfigFromEnv({ DATAPATH_NODE_SELECTOR: '{"a":1}' }), /DATAPATH_NODE_SELECTOR/);
    assert.throws(
      () => podConfigFromEnv({ DATAPATH_TOLERATIONS: 'not json' }),
      /DATAPATH_TOLERATIONS: not JSON/,
    );
    assert.throws(() => podConfigFromEnv({ MTU_POLICY: 'fixed' }), /MTU_FIXED: required/);
    assert.throws(() => podConfigFromEnv({ MTU_UNDERLAY: '12' }), /MTU_UNDERLAY/);
    assert.throws(() => controllerConfigFromEnv({ MULTUS_ENABLED: 'yes' }), /MULTUS_ENABLED/);
    assert.throws(() => podConfigFromEnv({ CNI_DATA_DIR: 'var/lib/cni' }), /CNI_DATA_DIR/);
    assert.throws(() => podConfigFromEnv({ NETNS_DIR: 'run/netns' }), /NETNS_DIR: an absolute path/);
    assert.throws(
      () => podConfigFromEnv({ DATAPATH_SECCOMP_PROFILE: 'Unconfined' }),
      /DATAPATH_SECCOMP_PROFILE: one of Localhost, RuntimeDefault, got Unconfined/,
    );
    assert.throws(() => podConfigFromEnv({ KUBELET_ROOT_DIR: 'var/lib/kubelet' }), /KUBELET_ROOT_DIR/);
  });
});
