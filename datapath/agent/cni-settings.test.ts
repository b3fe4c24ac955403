// The pod -> agent hop: the environment of the datapath pod the operator renders gives the agent the
// node's directories as mounted into its container (the IPAM lookup and the shim install use them).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_POD_CONFIG, desiredDatapathPod } from '../../operator/render.js';
import { agentCniSettings } from './cni-settings.js';

type Container = {
  env: { name: string; value?: string }[];
  volumeMounts: { name: string; mountPath: string }[];
};

describe('agent CNI settings from the datapath pod', () => {
  it("finds the node's CNI bin dir where the pod mounts it, not at the host path", () => {
    const cfg = { ...DEFAULT_POD_CONFIG, cniBinDir: '/usr/libexec/cni', socketDir: '/run/cf-l2tp' };
    const pod = desiredDatapathPod('n1', cfg);
    const spec = pod.spec as {
      containers: Container[];
      volumes: { name: string; hostPath: { path: string } }[];
    };
    const c = spec.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    const s = agentCniSettings(env);
    const mountOf = (path: string) => c.volumeMounts.find((m) => m.mountPath === path)?.name;
    const hostOf = (vol: string | undefined) => spec.volumes.find((v) => v.name === vol)?.hostPath.path;
    assert.equal(
      hostOf(mountOf(s.binDir)),
      '/usr/libexec/cni',
      'the bin dir the agent searches is the node one',
    );
    assert.notEqual(s.binDir, '/usr/libexec/cni');
    assert.equal(s.socket, '/run/cf-l2tp/cni.sock');
    assert.equal(hostOf(mountOf(s.confDir)), cfg.cniConfDir);
    assert.ok(s.stateDir.startsWith(`${cfg.cniDataDir}/`), 'records on the node (in the data dir volume)');
  });

  it("knows where the pod mounts pods' network namespaces (named when one cannot be opened)", () => {
    const cfg = { ...DEFAULT_POD_CONFIG, netnsDir: '/run/containerd/io.containerd.grpc.v1.cri/netns' };
    const c = (desiredDatapathPod('n1', cfg).spec as { containers: Container[] }).containers[0]!;
    const s = agentCniSettings(Object.fromEntries(c.env.map((e) => [e.name, e.value])));
    assert.equal(s.netnsDir, cfg.netnsDir);
    assert.ok(
      c.volumeMounts.some((m) => m.mountPath === s.netnsDir),
      'mounted at that path: the records name namespaces by the runtime path',
    );
  });

  it('defaults for an agent run by hand on a host', () => {
    assert.deepEqual(agentCniSettings({}), {
      binDir: '/opt/cni/bin',
      confDir: '/etc/cni/net.d',
      socket: '/run/kube-l2tp/cni.sock',
      stateDir: '/var/lib/cni/kube-l2tp',
    });
  });
});
