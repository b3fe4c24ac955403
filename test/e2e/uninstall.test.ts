// `helm uninstall` on a real cluster leaves the nodes clean: the chart's pre-delete hook stops the
// operator, has every datapath agent remove what it made on its node, and deletes the node states and
// generated NADs; the CRDs and the user's tunnels and pseudowires stay, and `helm install` again brings
// the example back. While pods are still attached it refuses, names them, and changes nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../harness/wait.js';
import { progress, RealLab, RELEASE_NAMESPACE } from './real-lab.js';

const NS = 'l2tp-demo';
const PREFIX = 'ku';
const podA = { namespace: NS, name: 'pod-a' };
const podB = { namespace: NS, name: 'pod-b' };

/** What kube-l2tp puts on a node: links in its netns, files in the host paths, bpffs pins. */
interface Footprint {
  links: string[];
  shim: boolean;
  conf: boolean;
  records: string[];
  run: string[];
  bpf: string[];
  /** The agent's Localhost seccomp profile. */
  seccomp: boolean;
}

describe('real cluster: helm uninstall leaves the nodes clean', () => {
  const lab = RealLab.forDescribe('uninstall', { prefix: PREFIX, underlay: '10.237.0', podNet: '10.238' });

  async function footprint(node: string): Promise<Footprint> {
    const n = lab.cluster.node(node);
    const lines = async (file: string, args: string[]) =>
      (await n.exec(file, args)).stdout.split('\n').filter((x) => x.trim() !== '');
    const links = (await lines('ip', ['-o', 'link', 'show']))
      .map((x) => x.split(':')[1]?.trim().split('@')[0] ?? '')
      .filter((x) => /^(l2tpeth|kl2b|kl2h)/.test(x));
    return {
      links: links.sort(),
      shim: (await n.exec('test', ['-e', '/opt/cni/bin/kube-l2tp'])).code === 0,
      conf: (await n.exec('test', ['-e', '/etc/cni/net.d/kube-l2tp.d'])).code === 0,
      seccomp: (await n.exec('test', ['-e', '/var/lib/kubelet/seccomp/kube-l2tp/datapath.json'])).code === 0,
      records: (await lines('find', ['/var/lib/cni/kube-l2tp', '-type', 'f'])).sort(),
      run: (await lines('find', ['/run/kube-l2tp', '-mindepth', '1'])).sort(),
      // the host's bpffs is shared by every node here: only this node's network namespace's pins
      bpf: await lines('find', [
        `/sys/fs/bpf/kube-l2tp/net-${/\[(\d+)\]/.exec((await n.exec('readlink', ['/proc/self/ns/net'])).stdout)?.[1]}`,
      ]),
    };
  }

  const names = async (args: string[]) =>
    (await lab.kubectl([...args, '-o', 'name'])).split('\n').filter((x) => x.trim() !== '');
  /** Ready, or fail with what the pseudowire, the node states and the agents say. */
  async function ready(): Promise<void> {
    try {
      await lab.waitPseudowireReady(NS, 'red-wire');
    } catch (e) {
      const pw = await lab.kubectl(['-n', NS, 'get', 'pseudowire', 'red-wire', '-o', 'jsonpath={.status}']);
      const st = await lab.kubectl(['get', 'l2tpnodestates', '-o', 'jsonpath={.items[*].status}']);
      const logs = await lab
        .kubectl(['-n', RELEASE_NAMESPACE, 'logs', '-l', 'app.kubernetes.io/component=datapath', '--tail=20'])
        .catch((x: unknown) => String(x));
      throw new Error(`${String(e)}\npseudowire: ${pw}\nnode states: ${st}\nagents:\n${logs}`);
    }
  }
  const uninstall = () =>
    lab.helm(['uninstall', 'kube-l2tp', '-n', RELEASE_NAMESPACE, '--wait', '--timeout', '5m']);

  it('installs, the example becomes Ready and carries traffic', async () => {
    await lab.apply(lab.example());
    await ready();
    await lab.waitPodsReady([podA, podB]);
    const ping = await lab.ping(podA, '10.10.0.2', 5);
    assert.ok(ping.received >= 4, `ping over the pseudowire: ${ping.output}`);
    for (const node of [lab.nodeA, lab.nodeB]) {
      const f = await footprint(node);
      assert.ok(f.shim, `the CNI executable is on ${node}`);
      assert.ok(f.seccomp, `the agent's seccomp profile is on ${node}`);
      assert.ok(
        f.links.some((l) => l.startsWith('l2tpeth')),
        `a session device on ${node}: ${f.links.join(' ')}`,
      );
      assert.ok(f.records.length > 0, `an attachment record on ${node}`);
    }
  });

  it('refuses while pods are attached, names them, and changes nothing', async () => {
    const r = await uninstall();
    assert.notEqual(r.code, 0, `helm uninstall went through with pods attached: ${r.stdout}`);
    assert.match(r.stderr, /job kube-l2tp-uninstall failed/, r.stderr);
    const log = await lab.kubectl(['-n', RELEASE_NAMESPACE, 'logs', 'job/kube-l2tp-uninstall']);
    assert.match(log, /refusing to uninstall/);
    assert.match(log, /l2tp-demo\/pod-a \(l2tp-demo\/red-wire\)/);
    assert.match(log, /l2tp-demo\/pod-b/);
    // nothing was stopped or marked
    const replicas = await lab.kubectl([
      '-n', RELEASE_NAMESPACE, 'get', 'deployment', 'kube-l2tp-operator', '-o', 'jsonpath={.spec.replicas}',
    ]); // prettier-ignore
    assert.equal(replicas, '2');
    for (const s of await lab.nodeStates())
      assert.equal(
        s.metadata.annotations?.['l2tp.kube-l2tp.io/uninstall'],
        undefined,
        `${s.metadata.name} marked`,
      );
    const ping = await lab.ping(podA, '10.10.0.2', 3);
    assert.ok(ping.received >= 2, `still forwarding: ${ping.output}`);
    progress('helm uninstall refused with pod-a and pod-b attached; nothing changed');
  });

  it('after the pods go, helm uninstall removes every trace from every node; CRDs and CRs stay', async () => {
    await lab.kubectl(['delete', 'pod', '-n', NS, 'pod-a', 'pod-b', '--wait=true', '--timeout=60s']);
    const t = Date.now();
    const r = await uninstall();
    assert.equal(r.code, 0, `helm uninstall: ${r.stdout}\n${r.stderr}`);
    progress(`helm uninstall with the hook: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    // the hook's Job pod may outlive its Job for a moment (background deletion)
    await until(
      'no pod left in the release namespace',
      async () => (await names(['-n', RELEASE_NAMESPACE, 'get', 'pods'])).length === 0,
      60_000,
      500,
    );
    assert.deepEqual(await names(['get', 'l2tpnodestates']), [], 'no L2TPNodeState');
    for (const node of [lab.nodeA, lab.nodeB]) {
      assert.deepEqual(
        await footprint(node),
        { links: [], shim: false, conf: false, records: [], run: [], bpf: [], seccomp: false },
        `kube-l2tp is off ${node}`,
      );
    }
    // what the operator generated is gone, with the hook's own identity
    assert.deepEqual(await names(['-n', NS, 'get', 'network-attachment-definitions']), []);
    assert.deepEqual(await names(['-n', RELEASE_NAMESPACE, 'get', 'leases']), []);
    assert.deepEqual(
      await names(['get', 'clusterroles,clusterrolebindings', '-l', 'app.kubernetes.io/part-of=kube-l2tp']),
      [],
    );
    // the CRDs and the user's objects stay, as Helm keeps CRDs
    const crds = await names(['get', 'crd']);
    for (const c of ['l2tptunnels', 'pseudowires', 'l2tpnodestates'])
      assert.ok(crds.includes(`customresourcedefinition.apiextensions.k8s.io/${c}.l2tp.kube-l2tp.io`), c);
    assert.deepEqual(await names(['get', 'l2tptunnels']), ['l2tptunnel.l2tp.kube-l2tp.io/a-to-b']);
    assert.deepEqual(await names(['-n', NS, 'get', 'pseudowires']), [
      'pseudowire.l2tp.kube-l2tp.io/red-wire',
    ]);
    const releases = await lab.helm(['list', '-n', RELEASE_NAMESPACE, '-q']);
    assert.equal(releases.stdout.trim(), '');
  });

  it('helm install again brings the example back to Ready, with traffic', async () => {
    await lab.helmInstall();
    await ready();
    await lab.apply(lab.example().filter((o) => o.kind === 'Pod'));
    await lab.waitPodsReady([podA, podB]);
    const ping = await lab.ping(podA, '10.10.0.2', 5);
    assert.ok(ping.received >= 4, `ping after reinstall: ${ping.output}`);
    progress(`reinstalled: red-wire Ready, ping ${ping.received}/${ping.sent}`);
  });
});
