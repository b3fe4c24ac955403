// The user's first hour, on a real cluster: real kubelets and containerd on two nodes, Multus
// installed from its manifest, kube-l2tp installed with `helm install` (image reference and pull
// policy only), the README's example applied with kubectl. The runtime, not the test, calls the CNI
// plugin: evidence is the pod's net1 with the pseudowire's MTU and Multus's network-status annotation.
// Then the failures a user meets (a network that does not exist, a pseudowire that is not Ready) and
// a pod deletion, each leaving nothing half-made on the nodes. (`helm uninstall`: uninstall.test.ts.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_VERSION } from '../../lib/api/schemas.js';
import { datapathSeccompProfileText, isSeccompArch } from '../../datapath/seccomp/profile.js';
import { runCapture } from '../../lib/exec.js';
import { DEVICE_SYSCTLS, HARDENED_SYSCTLS } from '../../lib/netdev-hardening.js';
import { chartMemoryLimit, memoryBytes } from '../harness/memory-limit.js';
import { until } from '../harness/wait.js';
import { datapathPodName } from '../../operator/render.js';
import { CHART, progress, RealLab, RELEASE_NAMESPACE } from './real-lab.js';

const NS = 'l2tp-demo';
const PREFIX = 'rc';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

describe('real cluster: helm install, Multus, the README example', () => {
  const lab = RealLab.forDescribe('real', { prefix: PREFIX, underlay: '10.233.0', podNet: '10.234' });

  it('runs the operator, the datapath pods and Multus from the locally loaded images', async () => {
    const pods = await lab.cluster.getJson<{
      items: { metadata: { name: string; namespace: string }; spec: { containers: { image: string }[]; nodeName?: string }; status: { phase: string } }[];
    }>(['pods', '-A']); // prettier-ignore
    const ops = pods.items.filter(
      (p) => p.metadata.namespace === RELEASE_NAMESPACE && p.metadata.name.includes('operator'),
    );
    assert.ok(ops.length >= 1, 'no operator pod');
    for (const p of ops) assert.equal(p.status.phase, 'Running', `${p.metadata.name} is ${p.status.phase}`);
    assert.ok(ops.every((p) => p.spec.containers[0]!.image.startsWith('kube-l2tp.local/')));
    const multus = pods.items.filter((p) => p.metadata.name.startsWith('kube-multus-ds'));
    assert.equal(multus.length, 2, 'one Multus pod per node');
    for (const p of multus) assert.equal(p.status.phase, 'Running');
  });

  it('attaches pods through containerd -> Multus -> kube-l2tp: net1 with the MTU, network-status, traffic', async () => {
    await lab.apply(lab.example());
    const pw = await lab.waitPseudowireReady(NS, 'red-wire');
    const podA = { namespace: NS, name: 'pod-a' };
    const podB = { namespace: NS, name: 'pod-b' };
    await lab.waitPodsReady([podA, podB]);
    const ds = await lab.cluster.getJson<{ items: { spec: { nodeName: string }; status: { phase: string } }[] }>([
      'pods', '-n', RELEASE_NAMESPACE, '-l', 'app.kubernetes.io/component=datapath',
    ]); // prettier-ignore
    assert.deepEqual(
      ds.items.map((p) => p.spec.nodeName).sort(),
      [lab.nodeA, lab.nodeB].sort(),
      'a datapath pod on each node',
    );
    for (const p of [podA, podB]) {
      const i = await lab.podInterface(p);
      assert.equal(i.mtu, pw.status?.mtu, `${p.name} net1 MTU`);
      const st = await lab.networkStatus(p);
      const net1 = st.find((x) => x.interface === 'net1');
      assert.ok(net1, `network-status of ${p.name} lists net1: ${JSON.stringify(st)}`);
      assert.match(net1.name, /red-wire$/);
    }
    const ping = await lab.ping(podA, '10.10.0.2', 10);
    assert.ok(ping.received >= 9, `ping over the pseudowire: ${ping.output}`);
    const mbps = await lab.throughput(podA, podB, '10.10.0.1', 2);
    assert.ok(mbps > 1, `throughput ${mbps} Mbit/s`);
    progress(`ping ${ping.received}/${ping.sent}, ${mbps.toFixed(0)} Mbit/s`);

    // what node A exposes: the devices the agent made there (from its pod, through the node's
    // /proc/sys/net mount) are hardened, and its metrics listen on loopback only
    const n = lab.cluster.node(lab.nodeA);
    const made = (await n.exec('ip', ['-o', 'link', 'show'])).stdout
      .split('\n')
      .map((x) => x.split(':')[1]?.trim().split('@')[0] ?? '')
      .filter((x) => /^(l2tpeth|l2tpx|kl2b)/.test(x));
    assert.ok(
      made.some((x) => x.startsWith('kl2b')) && made.some((x) => x.startsWith('l2tpeth')),
      made.join(),
    );
    for (const dev of made) {
      const got: Record<string, string> = {};
      for (const [f, k] of DEVICE_SYSCTLS)
        got[`${f}.${k}`] = (await n.exec('cat', [`/proc/sys/net/${f}/conf/${dev}/${k}`])).stdout.trim();
      assert.deepEqual(got, HARDENED_SYSCTLS, `${dev} on ${lab.nodeA}`);
    }
    const listen = (await n.exec('ss', ['-Hltn', 'sport = :9771'])).stdout.trim().split(/\s+/)[3];
    assert.equal(listen, '127.0.0.1:9771', 'the agent serves metrics on loopback');
    // the agent finds its container's memory limit (the chart's), which new sessions stop short of
    const agentLog = await lab.kubectl([
      '-n',
      RELEASE_NAMESPACE,
      'logs',
      datapathPodName(lab.nodeA),
      '-c',
      'agent',
    ]);
    const limit = agentLog
      .split('\n')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as { msg?: string; memoryLimitMiB?: number }];
        } catch {
          return [];
        }
      })
      .find((j) => j.msg?.startsWith('memory limit found'))?.memoryLimitMiB;
    assert.equal(
      limit,
      memoryBytes(chartMemoryLimit('datapath')) / 2 ** 20,
      'the memory limit the agent found',
    );
    progress(
      `${lab.nodeA}: ${made.join(', ')} hardened; metrics on ${listen}; memory limit ${limit} MiB found`,
    );
  });

  it("gives an Exclusive pseudowire's device to the pod, forwarding from the first packet (IP encapsulation, cookies)", async () => {
    const objs = lab
      .example({ encapsulation: 'IP', cookies: true, mode: 'Exclusive' })
      .filter((x) => x.kind !== 'Namespace')
      .map((x) => {
        // a second copy of the example beside the first: its own tunnel, pseudowire, pods and addresses
        const y = JSON.parse(JSON.stringify(x).replaceAll('a-to-b', 'ex-a-to-b').replaceAll('red-wire', 'ex-wire')
          .replaceAll('pod-a', 'ex-a').replaceAll('pod-b', 'ex-b').replaceAll('10.10.0.', '10.11.0.')) as typeof x; // prettier-ignore
        return y;
      });
    await lab.apply(objs);
    await lab.waitPseudowireReady(NS, 'ex-wire');
    const exA = { namespace: NS, name: 'ex-a' };
    await lab.waitPodsReady([exA, { namespace: NS, name: 'ex-b' }]);
    // no wait: the datapath follows the device into the pod when the CNI ADD returns
    const ping = await lab.ping(exA, '10.11.0.2', 5);
    assert.equal(ping.received, 5, `ping right after the pods are Ready: ${ping.output}`);
    const links = await lab.cluster.node(lab.nodeA).exec('ip', ['-o', 'link', 'show']);
    const dev = (await lab.nodeStates())
      .find((s) => s.metadata.name === lab.nodeA)
      ?.status?.sessions?.find((x) => x.pseudowire?.name === 'ex-wire')?.ifname;
    assert.ok(dev, 'the node state reports the session device');
    assert.doesNotMatch(links.stdout, new RegExp(`: ${dev}[:@]`), `${dev} left the node for the pod`);
    await lab.kubectl(['delete', 'pod', '-n', NS, 'ex-a', 'ex-b', '--wait=true', '--timeout=60s']);
    const back = await lab.cluster.node(lab.nodeA).exec('ip', ['-o', 'link', 'show']);
    assert.match(back.stdout, new RegExp(`: ${dev}[:@]`), `${dev} returned to the node on CNI DEL`);
  });

  it("runs an IPAM delegate from the node's CNI bin dir and keeps its lease on the node (host-local)", async () => {
    await lab.apply([
      {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: {
          name: 'lease-wire',
          namespace: NS,
        },
        spec: {
          tunnelRef: { name: 'a-to-b' },
          l2SpecificSublayer: 'Default',
          attachment: { mode: 'Bridge' },
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.12.0.0/24' }]] },
        },
      },
    ]);
    await lab.waitPseudowireReady(NS, 'lease-wire');
    await until('the NetworkAttachmentDefinition of lease-wire', async () =>
      (await lab.kubectl(['get', 'network-attachment-definitions', '-n', NS, '-o', 'name'])).includes(
        'lease-wire',
      ),
    );
    const pod = { namespace: NS, name: 'pod-lease' };
    await lab.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { ...pod, annotations: { 'k8s.v1.cni.cncf.io/networks': 'lease-wire' } },
        spec: {
          nodeSelector: { 'kubernetes.io/hostname': lab.nodeA },
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'c', image: lab.o.images.tools.name, command: ['sleep', '3600'] }],
        },
      },
    ]);
    await lab.waitPodsReady([pod]);
    const addr = (await lab.podInterface(pod)).addresses.find((a) => a.startsWith('10.12.0.'));
    assert.ok(addr, 'net1 has an address from the host-local range');
    const ip = addr.split('/')[0]!;
    // host-local keeps one file per leased address in the node's /var/lib/cni/networks/<network>/
    const lease = async () =>
      (await lab.cluster.node(lab.nodeA).exec('find', ['/var/lib/cni/networks', '-name', ip])).stdout.trim();
    assert.notEqual(await lease(), '', `the lease of ${ip} is on the node`);
    await lab.kubectl(['delete', 'pod', '-n', NS, pod.name, '--wait=true', '--timeout=60s']);
    assert.equal(await lease(), '', "the runtime's CNI DEL released the lease");
  });

  /** A pod on lab.nodeA with this annotation; returns the sandbox failure events kubectl describe shows. */
  const failingPod = (name: string, network: string) =>
    lab.failingPod({ namespace: NS, name }, lab.nodeA, network);
  const nodeFootprint = (node: string) => lab.nodeFootprint(node);

  it('explains a network that does not exist, and leaves nothing half-made', async () => {
    const before = await nodeFootprint(lab.nodeA);
    const msgs = await failingPod('pod-missing', 'no-such-wire');
    assert.ok(
      msgs.some((m) => m.includes('no-such-wire')),
      `the reason names the network: ${msgs.join(' | ')}`,
    );
    const describe = await lab.kubectl(['describe', 'pod', '-n', NS, 'pod-missing']);
    assert.match(describe, /no-such-wire/);
    await lab.kubectl(['delete', 'pod', '-n', NS, 'pod-missing', '--wait=true', '--timeout=60s']);
    assert.deepEqual(await lab.footprintBackTo(lab.nodeA, before), before);
  });

  it('explains a pseudowire that is not Ready (the CNI error names it), and leaves nothing half-made', async () => {
    // a tunnel to a node that does not exist: its pseudowire gets a NAD but never becomes Ready
    await lab.apply([
      {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 'to-nowhere' },
        spec: {
          encapsulation: 'UDP',
          local: { node: lab.nodeA },
          peer: { node: 'no-such-node' },
          allowedNamespaces: [NS],
        },
      },
      {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: { name: 'blue-wire', namespace: NS },
        spec: {
          tunnelRef: { name: 'to-nowhere' },
          l2SpecificSublayer: 'Default',
          attachment: { mode: 'Bridge' },
        },
      },
    ]);
    await until('the NetworkAttachmentDefinition of blue-wire', async () =>
      (await lab.kubectl(['get', 'network-attachment-definitions', '-n', NS, '-o', 'name'])).includes(
        'blue-wire',
      ),
    );
    const before = await nodeFootprint(lab.nodeA);
    const msgs = await failingPod('pod-blue', 'blue-wire');
    assert.ok(
      msgs.some((m) => m.includes(`pseudowire ${NS}/blue-wire`)),
      `the kube-l2tp CNI error names the pseudowire: ${msgs.join(' | ')}`,
    );
    await lab.kubectl(['delete', 'pod', '-n', NS, 'pod-blue', '--wait=true', '--timeout=60s']);
    assert.deepEqual(await lab.footprintBackTo(lab.nodeA, before), before);
  });

  it("deletes a pod: the runtime's CNI DEL leaves no link and no attachment record", async () => {
    const before = await nodeFootprint(lab.nodeB);
    assert.ok(before.records.length > 0, 'pod-b has an attachment record on its node');
    await lab.kubectl(['delete', 'pod', '-n', NS, 'pod-b', '--wait=true', '--timeout=60s']);
    const afterDel = await nodeFootprint(lab.nodeB);
    assert.deepEqual(afterDel.records, [], 'no attachment record');
    assert.ok(afterDel.links.length < before.links.length, 'the pod side of the veth is gone');
  });

  // Last: it rolls the datapath pods. The probe (seccomp-probe.c, static, put into the node's CNI data
  // dir, which the agent container mounts) calls setns, mount, umount2 and unshare(CLONE_NEWNS) inside
  // the agent's container, where CAP_SYS_ADMIN makes the kernel allow all four: an EPERM can only come
  // from the seccomp filter. The control is the chart's escape hatch, RuntimeDefault.
  it('runs the agent under its own seccomp profile: setns allowed; mount, umount2, unshare refused (RuntimeDefault, the escape hatch, allows them)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sc-seccomp-probe-'));
    const built = join(dir, 'probe');
    const cc = await runCapture('gcc', [
      '-static',
      '-O1',
      '-o',
      built,
      join(REPO, 'test/e2e/seccomp-probe.c'),
    ]);
    assert.equal(cc.code, 0, `gcc: ${cc.stderr}`);
    const node = lab.cluster.node(lab.nodeA);
    const probePath = '/var/lib/cni/sc-seccomp-probe';
    const put = await node.exec('install', ['-m', '0755', built, probePath]);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(put.code, 0, `install the probe on ${lab.nodeA}: ${put.stderr}`);
    const agentPod = async (seccomp: string) =>
      until(`the datapath pod on ${lab.nodeA} running under ${seccomp}`, async () => {
        const pods = await lab.cluster.getJson<{
          items: { metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName: string; containers: { name: string; securityContext: { seccompProfile: { type: string; localhostProfile?: string } } }[] }; status: { conditions?: { type: string; status: string }[] } }[];
        }>(['pods', '-n', RELEASE_NAMESPACE, '-l', 'app.kubernetes.io/component=datapath']); // prettier-ignore
        const p = pods.items.find((x) => x.spec.nodeName === lab.nodeA && !x.metadata.deletionTimestamp);
        const ready = p?.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return p && ready && p.spec.containers[0]!.securityContext.seccompProfile.type === seccomp ? p : undefined;
      }, 180_000, 1000); // prettier-ignore
    const probe = async (pod: string) => {
      const r = await lab.cluster.exec({ namespace: RELEASE_NAMESPACE, name: pod }, [probePath]);
      assert.equal(r.code, 0, `the probe in ${pod}: ${r.stderr}`);
      return Object.fromEntries([...r.stdout.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
    };
    const [EPERM, ENOENT] = [1, 2];

    try {
      const pod = await agentPod('Localhost');
      assert.deepEqual(pod.spec.containers[0]!.securityContext.seccompProfile, {
        type: 'Localhost',
        localhostProfile: 'kube-l2tp/datapath.json',
      });
      // the init container wrote the profile where this node's kubelet reads Localhost profiles
      const onNode = await node.exec('cat', ['/var/lib/kubelet/seccomp/kube-l2tp/datapath.json']);
      assert.ok(isSeccompArch(process.arch), `an architecture with a profile: ${process.arch}`);
      assert.equal(onNode.stdout, datapathSeccompProfileText(process.arch));
      // the agent itself (PID 1 of its container) runs under a filter (the image has node, not cat)
      const status = await lab.cluster.exec({ namespace: RELEASE_NAMESPACE, name: pod.metadata.name }, ['node', '-e', "process.stdout.write(require('fs').readFileSync('/proc/1/status', 'utf8'))"]); // prettier-ignore
      assert.match(status.stdout, /^Seccomp:\s+2$/m, status.stderr);
      const got = await probe(pod.metadata.name);
      assert.deepEqual(got, { setns: 0, mount: EPERM, umount2: EPERM, unshare: EPERM });
      progress(`${pod.metadata.name}: Seccomp 2; setns allowed; mount, umount2, unshare(CLONE_NEWNS) EPERM`);

      const r = await lab.helm([
        'upgrade', 'kube-l2tp', CHART, '-n', RELEASE_NAMESPACE, '--reuse-values', '--wait', '--timeout', '4m',
        '--set', 'datapath.seccompProfile=RuntimeDefault',
      ]); // prettier-ignore
      assert.equal(r.code, 0, `helm upgrade: ${r.stderr || r.stdout}`);
      const rd = await agentPod('RuntimeDefault');
      // the kernel, not a filter, answers: the mount target does not exist
      assert.deepEqual(await probe(rd.metadata.name), {
        setns: 0,
        mount: ENOENT,
        umount2: ENOENT,
        unshare: 0,
      });
      progress(`${rd.metadata.name} under RuntimeDefault: the same probe gets through`);
    } finally {
      await node.exec('rm', ['-f', probePath]);
    }
  });
});
