// Day-2 operations and faults on one real cluster, in order, under `ping -i 0.01` between two pods
// (run inside a pod, so it survives the kubelet and the runtime restarting): helm upgrade to a rebuilt
// image on the ebpf backend and on the userspace backend, the agent SIGKILLed on each (the ebpf
// backend must lose no packet: its programs forward while no agent runs; on the userspace backend
// also under Exclusive-mode pods, whose TAP is inside the pod), kubelet and containerd
// restarts, the operator leader SIGKILLed, etcd and kube-apiserver crashes, the underlay down, and a
// node drained, deleted and re-joined. Each prints its loss and adds a row to the reliability report (written to
// docs/reliability-report.md with KUBE_L2TP_WRITE_REPORT=1).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { L2TPNodeState, L2TPTunnel, Pseudowire } from '../../lib/api/schemas.js';
import { runCapture } from '../../lib/exec.js';
import { datapathPodName } from '../../operator/render.js';
import { requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { leftovers } from '../harness/cluster/leaks.js';
import {
  CHART,
  e2eLogger,
  imagesFromEnv,
  progress,
  RealLab,
  RELEASE_NAMESPACE,
  splitImage,
} from './real-lab.js';
import {
  apply,
  footprintShape,
  getJson,
  namespaceObj,
  nodeFootprint,
  ping,
  pod,
  podNet1,
  pseudowire,
  tunnel,
  waitPodsReady,
  waitPseudowireReady,
  type PodRef,
  type ScenarioTarget,
} from './scenarios.js';

const logger = e2eLogger('day2');
const PREFIX = 'qd';
const NS = 'qd-day2';
const DIST = join(dirname(fileURLToPath(import.meta.url)), '../..');
const REPORT = join(DIST, '..', 'docs/reliability-report.md');

interface Row {
  fault: string;
  happened: string;
  loss: string;
  leaks: string;
}

describe('day 2 and faults on a real cluster', () => {
  let lab: RealLab;
  let t: ScenarioTarget;
  let n1 = '';
  let n2 = '';
  let rebuilt = { name: '', archive: '' };
  let original = '';
  let buildDir = '';
  const rows: Row[] = [];
  const started = Date.now();
  const p1: PodRef = { namespace: NS, name: 'p1' };
  const p2: PodRef = { namespace: NS, name: 'p2' };
  /** Two pods on a pseudowire, one per node, with their net1 addresses. */
  interface Wire {
    name: string;
    a: PodRef;
    b: PodRef;
    aAddr: string;
    bAddr: string;
  }
  const wire: Wire = { name: 'day2-wire', a: p1, b: p2, aAddr: '10.10.0.1', bAddr: '10.10.0.2' };

  /**
   * The committed product under another tag: another digest, as a release would be (the committed
   * tree, not the working tree, so that work in progress never ships in it).
   */
  async function rebuild(): Promise<{ name: string; archive: string }> {
    buildDir = mkdtempSync(join(tmpdir(), 'qd-image-'));
    const r = await runCapture(
      process.execPath,
      [
        join(DIST, 'image/main.js'),
        'build',
        'kube-l2tp',
        '--tag',
        '0.1.0-upgrade',
        '--from',
        'head',
        '--out',
        buildDir,
      ],
      { timeoutMs: 600_000 },
    );
    const line = r.stdout.split('\n').find((l) => l.includes(' sha256:'));
    if (r.code !== 0 || !line) throw new Error(`image build failed: ${r.stderr.slice(-2000)}`);
    const [name, , archive] = line.split(' ');
    return { name: name!, archive: archive! };
  }

  before(async () => {
    requireRoot();
    const images = imagesFromEnv();
    original = images.kubeL2tp.name;
    const [l, img] = await Promise.all([
      RealLab.start({
        prefix: PREFIX,
        nodes: 2,
        underlay: '10.248.0',
        podNet: '10.249',
        images,
        logger,
        progress,
      }),
      rebuild(),
    ]);
    lab = l;
    rebuilt = img;
    t = lab.target();
    [n1, n2] = lab.nodeNames as [string, string];
    await lab.cluster.loadImage(rebuilt);
    await apply(t, [
      namespaceObj(NS),
      tunnel('q-day2', n1, n2, [NS]),
      pseudowire(NS, 'day2-wire', 'q-day2'),
      pod(t, p1, n1, 'day2-wire', '10.10.0.1/24'),
      pod(t, p2, n2, 'day2-wire', '10.10.0.2/24'),
    ]);
    await waitPseudowireReady(t, NS, 'day2-wire');
    await waitPodsReady(t, [p1, p2]);
  });

  after(async () => {
    await lab?.stop();
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
    const table = [
      '| fault or operation | what happened | loss (ping -i 0.01) | leaks |',
      '|---|---|---|---|',
      ...rows.map((r) => `| ${r.fault} | ${r.happened} | ${r.loss} | ${r.leaks} |`),
    ].join('\n');
    console.log(table);
    if (process.env.KUBE_L2TP_WRITE_REPORT === '1') writeReport(table);
    progress(`day2.test: ${((Date.now() - started) / 1000).toFixed(0)} s wall time`);
    const left = await leftovers(PREFIX);
    assert.deepEqual(left, [], `the cluster left these behind: ${left.join(', ')}`);
  });

  /**
   * ping -i 0.01 from pod 1 to pod 2 in the background. Stopped by SIGINT, the echo in flight at that
   * moment can count as lost; with a count, ping ends by itself once every echo is answered or timed
   * out (-W 1), which gives an exact count.
   */
  async function startPing(
    count?: number,
    from: PodRef = wire.a,
    to = wire.bAddr,
  ): Promise<{
    /** ping has ended by itself (a counted ping). */
    ended: () => Promise<boolean>;
    stop: () => Promise<{ sent: number; got: number; text: string }>;
  }> {
    const args = count === undefined ? '-q -i 0.01' : `-q -i 0.01 -c ${count} -W 1`;
    const r = await t.podExec(from, ['sh', '-c',
      `rm -f /tmp/q.ping; ping ${args} ${to} </dev/null >/tmp/q.ping 2>&1 & echo $! >/tmp/q.pid`]); // prettier-ignore
    assert.equal(r.code, 0, r.stderr);
    // a few replies first: the measurement starts on a working link
    await until('ping under way', async () => (await t.podExec(from, ['cat', '/tmp/q.ping'])).code === 0);
    const summary = async () => {
      const o = (await t.podExec(from, ['cat', '/tmp/q.ping'])).stdout;
      return /packets transmitted/.test(o) ? o : undefined;
    };
    return {
      ended: async () => (await summary()) !== undefined,
      stop: async () => {
        if (count === undefined) await t.podExec(from, ['sh', '-c', 'kill -INT $(cat /tmp/q.pid)']);
        const out = await until('the ping summary', summary, 20_000 + (count ?? 0) * 10, 200);
        const m = /(\d+) packets transmitted, (\d+) packets received/.exec(out)!;
        const [sent, got] = [Number(m[1]), Number(m[2])];
        const pct = sent ? (((sent - got) / sent) * 100).toFixed(1) : '?';
        return { sent, got, text: `${sent - got} of ${sent} (${pct}%)` };
      },
    };
  }

  /** The link works again: a ping from each side gets through. */
  async function linkWorks(w: Wire = wire): Promise<void> {
    await until(
      `traffic over ${w.name} both ways`,
      async () =>
        (await ping(t, w.a, w.bAddr, 2)).received > 0 && (await ping(t, w.b, w.aAddr, 2)).received > 0,
      120_000,
      500,
    );
  }

  async function nodeStatesReady(): Promise<void> {
    await until(
      'every node state Ready and current',
      async () => {
        const s = await getJson<{ items: L2TPNodeState[] }>(t, ['l2tpnodestates']);
        return (
          s.items.length === 2 &&
          s.items.every(
            (x) =>
              x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
              (x.status.observedGeneration ?? -1) >= (x.metadata.generation ?? 0),
          )
        );
      },
      180_000,
      500,
    );
  }

  /** What must not change under day-2 operations: IDs, ports, sessions and the pods' interfaces. */
  async function identity(): Promise<string> {
    const tun = await getJson<L2TPTunnel>(t, ['l2tptunnel', 'q-day2']);
    const pw = await getJson<Pseudowire>(t, ['pseudowire', '-n', NS, 'day2-wire']);
    const states = await getJson<{ items: L2TPNodeState[] }>(t, ['l2tpnodestates']);
    return JSON.stringify({
      tunnel: [tun.status?.tunnelID, tun.status?.peerTunnelID, tun.status?.udpPort, tun.status?.peerUDPPort],
      session: [pw.status?.sessionID, pw.status?.peerSessionID],
      sessions: states.items
        .map((s) => [
          s.metadata.name,
          (s.status?.sessions ?? []).map((x) => [x.tunnelId, x.sessionId, x.ifname]),
        ])
        .sort(),
      net1: [await podNet1(t, p1), await podNet1(t, p2)],
    });
  }

  async function footprints(): Promise<string> {
    return JSON.stringify(
      await Promise.all([n1, n2].map(async (n) => footprintShape(await nodeFootprint(t, n)))),
    );
  }

  async function datapathPods() {
    return getJson<{
      items: { metadata: { uid: string }; spec: { nodeName: string; containers: { image: string }[] }; status: { conditions?: { type: string; status: string }[] } }[];
    }>(t, ['pods', '-n', RELEASE_NAMESPACE, '-l', 'app.kubernetes.io/component=datapath']); // prettier-ignore
  }

  async function backends(): Promise<string[]> {
    const s = await getJson<{ items: L2TPNodeState[] }>(t, ['l2tpnodestates']);
    return [...new Set(s.items.map((x) => x.status?.backend ?? '?'))];
  }

  async function helmUpgrade(set: string[]): Promise<void> {
    const r = await lab.helm([
      'upgrade', 'kube-l2tp', CHART, '-n', RELEASE_NAMESPACE, '--reuse-values', '--wait', '--timeout', '4m',
      ...set.flatMap((s) => ['--set', s]),
    ]); // prettier-ignore
    assert.equal(r.code, 0, `helm upgrade: ${r.stderr || r.stdout}`);
  }

  /** helm upgrade to image under ping: the datapath pods roll to it; nothing the user sees changes. */
  async function upgradeTo(image: string): Promise<string> {
    const before = await identity();
    const leaksBefore = await footprints();
    const old = new Set((await datapathPods()).items.map((p) => p.metadata.uid));
    const pinger = await startPing();
    await helmUpgrade([`image.tag=${splitImage(image).tag}`]);
    await until(
      `datapath pods rolled to ${image}`,
      async () => {
        const pods = (await datapathPods()).items;
        return (
          pods.length === 2 &&
          pods.every(
            (p) =>
              !old.has(p.metadata.uid) &&
              p.spec.containers[0]!.image === image &&
              p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          )
        );
      },
      240_000,
      500,
    );
    await nodeStatesReady();
    await linkWorks();
    const loss = await pinger.stop();
    assert.ok(loss.got > 0, 'traffic flowed');
    assert.equal(await identity(), before, 'IDs, sessions and pod interfaces unchanged');
    const leaks = (await footprints()) === leaksBefore ? 'none' : 'node devices changed';
    assert.equal(leaks, 'none');
    return loss.text;
  }

  it('helm upgrade to a rebuilt image (ebpf backend): datapath pods roll; IDs, sessions and pod interfaces unchanged', async () => {
    assert.deepEqual(await backends(), ['ebpf']);
    const loss = await upgradeTo(rebuilt.name);
    progress(`helm upgrade, ebpf backend: ${loss} lost`);
    rows.push({
      fault: 'helm upgrade to a rebuilt image (ebpf backend)',
      happened:
        'operator rolled both datapath pods to the new digest; IDs, sessions, pod net1 (ifindex, MAC, MTU) unchanged',
      loss,
      leaks: 'none',
    });
  });

  it('agent SIGKILLed on the ebpf backend: the kubelet restarts it, the new agent adopts the datapath; no packet lost', async () => {
    assert.deepEqual(await backends(), ['ebpf']);
    // the programs forward in the kernel while no agent runs: every echo of a counted ping answered
    const loss = await killAgent('session adopted', 2000);
    progress(`agent SIGKILL on ${n1}, ebpf backend: ${loss.text} lost`);
    assert.equal(
      loss.sent - loss.got,
      0,
      `packets lost across the agent's SIGKILL and restart: ${loss.text}`,
    );
    rows.push({
      fault: 'agent SIGKILL, ebpf backend (datapath container restarted by the kubelet)',
      happened:
        'the programs forwarded while no agent ran; the new agent adopted the programs, maps and devices; IDs, sessions and pod interfaces unchanged',
      loss: loss.text,
      leaks: 'none',
    });
  });

  it('helm upgrade to a rebuilt image (userspace backend): the same', async () => {
    await helmUpgrade(['datapath.backend=userspace']);
    await until(
      'the userspace backend on both nodes',
      async () => (await backends()).join() === 'userspace',
      240_000,
      1000,
    );
    await nodeStatesReady();
    await linkWorks();
    const loss = await upgradeTo(original);
    progress(`helm upgrade, userspace backend: ${loss} lost`);
    rows.push({
      fault: 'helm upgrade to a rebuilt image (userspace backend)',
      happened: 'as above; the pump runs in the agent, so traffic stops while each datapath pod is replaced',
      loss,
      leaks: 'none',
    });
  });

  /**
   * A fault under ping: returns the loss and checks the link, identity and node devices after it.
   * count: a counted ping (exact), which must still be running once the fault is over and the link works.
   */
  async function underPing(
    fault: () => Promise<void>,
    count?: number,
    w: Wire = wire,
  ): Promise<{ sent: number; got: number; text: string }> {
    const before = await identity();
    const leaksBefore = await footprints();
    const pinger = await startPing(count, w.a, w.bAddr);
    await fault();
    await nodeStatesReady();
    await linkWorks(w);
    if (count !== undefined) assert.ok(!(await pinger.ended()), `the fault outlasted ${count} pings`);
    const loss = await pinger.stop();
    assert.equal(await identity(), before, 'IDs, sessions and pod interfaces unchanged');
    assert.equal(await footprints(), leaksBefore, 'the nodes hold the same devices and records');
    return loss;
  }

  /**
   * SIGKILL of n1's agent under ping: the kubelet restarts its container and the new agent adopts the
   * datapath (its log has the line `adopted`) before the fault counts as over.
   */
  async function killAgent(
    adopted: string,
    count?: number,
    w: Wire = wire,
  ): Promise<{ sent: number; got: number; text: string }> {
    const restarts = async () => {
      const pods = await getJson<{ items: { spec: { nodeName: string }; status: { containerStatuses?: { restartCount: number }[] } }[] }>(t, [
        'pods', '-n', RELEASE_NAMESPACE, '-l', 'app.kubernetes.io/component=datapath',
      ]); // prettier-ignore
      return (
        pods.items.find((p) => p.spec.nodeName === n1)?.status.containerStatuses?.[0]?.restartCount ?? -1
      );
    };
    const before = await restarts();
    return underPing(
      async () => {
        // every node's processes are visible here: the agent's own arguments name its node
        const k = await runCapture('pkill', ['-KILL', '-f', `main.js agent --node-name ${n1}`]);
        assert.equal(k.code, 0, `no agent process of ${n1} to kill`);
        await until(
          'the kubelet restarted the agent container',
          async () => (await restarts()) > before,
          120_000,
          500,
        );
        const log = () => t.kubectl(['logs', '-n', RELEASE_NAMESPACE, datapathPodName(n1)]).catch(() => '');
        await until(
          'the restarted agent adopted the sessions',
          async () => (await log()).includes(`"msg":"${adopted}"`),
          120_000,
          500,
        ).catch(async (err: Error) => {
          throw new Error(`${err.message}; the agent's log ends:\n${(await log()).slice(-3000)}`);
        });
      },
      count,
      w,
    );
  }

  it('kubelet restart and containerd restart on a node: pods and the pseudowire keep working', async () => {
    const uids = async () => JSON.stringify((await getJson<{ items: { metadata: { uid: string }; status: { containerStatuses?: { restartCount: number }[] } }[] }>(t, ['pods', '-n', NS])).items.map((p) => [p.metadata.uid, p.status.containerStatuses?.[0]?.restartCount])); // prettier-ignore
    const before = await uids();
    for (const proc of ['kubelet', 'containerd'] as const) {
      const { text: loss } = await underPing(async () => {
        await lab.cluster.node(n1).restart(proc);
        await lab.cluster.waitNodesReady();
      });
      progress(`${proc} restart on ${n1}: ${loss} lost`);
      rows.push({
        fault: `${proc} restart on a node`,
        happened: 'pods kept (same UIDs, no container restart); pseudowire Ready throughout',
        loss,
        leaks: 'none',
      });
    }
    assert.equal(await uids(), before, 'the pods were not re-created or restarted');
  });

  it('agent SIGKILLed on the userspace backend: the kubelet restarts it, the new agent takes the TAPs back', async () => {
    assert.deepEqual(await backends(), ['userspace']);
    const { text: loss } = await killAgent('session reattached to existing TAP');
    progress(`agent SIGKILL on ${n1}, userspace backend: ${loss} lost`);
    rows.push({
      fault: 'agent SIGKILL, userspace backend (datapath container restarted by the kubelet)',
      happened:
        'the new agent adopted the sessions and TAPs; IDs, sessions and pod interfaces unchanged; the pump runs in the agent, so traffic stops until the new agent takes the TAPs back',
      loss,
      leaks: 'none',
    });
  });

  it('agent SIGKILLed on the userspace backend under Exclusive-mode pods: the new agent reattaches to the TAP inside the pod', async () => {
    assert.deepEqual(await backends(), ['userspace']);
    const p3: PodRef = { namespace: NS, name: 'p3' };
    const p4: PodRef = { namespace: NS, name: 'p4' };
    const excl: Wire = { name: 'day2-excl', a: p3, b: p4, aAddr: '10.11.0.1', bAddr: '10.11.0.2' };
    await apply(t, [
      pseudowire(NS, excl.name, 'q-day2', { attachment: { mode: 'Exclusive' } }),
      pod(t, p3, n1, excl.name, `${excl.aAddr}/24`),
      pod(t, p4, n2, excl.name, `${excl.bAddr}/24`),
    ]);
    await waitPseudowireReady(t, NS, excl.name);
    await waitPodsReady(t, [p3, p4]);
    await linkWorks(excl);
    // the pod's net1 is the session's TAP itself, which the pump in the agent reads
    const tap = await t.podExec(p3, ['cat', '/sys/class/net/net1/tun_flags']);
    assert.equal(tap.code, 0, `p3's net1 is not a TAP: ${tap.stderr}`);
    const net1 = await podNet1(t, p3);
    // a TAP made on the node instead would change n1's footprint, which underPing compares
    const { text: loss } = await killAgent('session reattached to its TAP in a pod', undefined, excl);
    assert.deepEqual(await podNet1(t, p3), net1, "p3's net1 is the same TAP");
    progress(`agent SIGKILL on ${n1}, userspace backend, Exclusive mode: ${loss} lost`);
    rows.push({
      fault: 'agent SIGKILL, userspace backend, Exclusive-mode pods (the TAP is inside the pod)',
      happened:
        "the new agent found the pod's TAP through the CNI's attachment records and attached to it inside the pod; no TAP made on the node; the pod's net1 unchanged; the loss includes the kubelet's 10 s back-off (the container's second kill in this suite)",
      loss,
      leaks: 'none',
    });
    await t.kubectl(['delete', 'pod', '-n', NS, p3.name, p4.name, '--wait=true', '--timeout=120s']);
    await t.kubectl(['delete', 'pseudowire', '-n', NS, excl.name, '--wait=true', '--timeout=120s']);
  });

  it('operator leader SIGKILLed: the other replica or the restarted one leads; no ID changes; new work is done', async () => {
    const lease = await getJson<{ spec: { holderIdentity?: string } }>(t, [
      'lease',
      '-n',
      RELEASE_NAMESPACE,
      'kube-l2tp-operator',
    ]);
    const holder = lease.spec.holderIdentity ?? '';
    const ops = await getJson<{ items: { metadata: { name: string }; spec: { nodeName: string }; status: { containerStatuses?: { containerID?: string }[] } }[] }>(t, ['pods', '-n', RELEASE_NAMESPACE, '-l', 'app.kubernetes.io/component=operator']); // prettier-ignore
    const leader = ops.items.find((p) => holder.includes(p.metadata.name));
    assert.ok(leader, `the leader ${holder} among ${ops.items.map((p) => p.metadata.name).join(', ')}`);
    const id = leader.status.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
    assert.ok(id, 'the leader container id');
    let newHolder = '';
    const { text: loss } = await underPing(async () => {
      const k = await lab.cluster
        .node(leader.spec.nodeName)
        .ctr(['-n', 'k8s.io', 'tasks', 'kill', '-s', 'SIGKILL', id]);
      assert.equal(k.code, 0, k.stderr);
      await apply(t, [pseudowire(NS, 'after-failover', 'q-day2')]);
      const pw = await waitPseudowireReady(t, NS, 'after-failover');
      assert.ok(pw.status?.sessionID, 'the new pseudowire got a session ID');
      newHolder =
        (
          await getJson<{ spec: { holderIdentity?: string } }>(t, [
            'lease',
            '-n',
            RELEASE_NAMESPACE,
            'kube-l2tp-operator',
          ])
        ).spec.holderIdentity ?? '';
      await t.kubectl(['delete', 'pseudowire', '-n', NS, 'after-failover', '--wait=true', '--timeout=120s']);
    });
    progress(`operator leader SIGKILL: ${loss} lost; lease ${holder} -> ${newHolder}`);
    rows.push({
      fault: 'operator leader SIGKILL',
      happened: `lease ${holder === newHolder ? 'kept by the restarted leader' : 'taken by the other replica'}; a pseudowire created after the kill became Ready; no ID changed`,
      loss,
      leaks: 'none',
    });
  });

  it('etcd and kube-apiserver crash and restart: the data plane does not notice; datapath pods kept', async () => {
    const uids = async () =>
      (await datapathPods()).items
        .map((p) => p.metadata.uid)
        .sort()
        .join();
    const before = await uids();
    const { text: loss } = await underPing(async () => {
      await lab.cluster.cp.restart('etcd', 2000);
      await lab.cluster.cp.restart('kube-apiserver', 2000);
      await lab.cluster.waitNodesReady();
    });
    assert.equal(await uids(), before, 'datapath pods kept');
    progress(`etcd + kube-apiserver crash: ${loss} lost`);
    rows.push({
      fault: 'etcd SIGKILL (2 s down), then kube-apiserver SIGKILL (2 s down)',
      happened: 'watches resumed; datapath pods kept (same UIDs); nothing re-created',
      loss,
      leaks: 'none',
    });
  });

  it('underlay down and up on a node: traffic resumes by itself, nothing reconfigured', async () => {
    const node = lab.cluster.node(n1);
    const { text: loss } = await underPing(async () => {
      const d = await node.exec('ip', ['link', 'set', 'eth0', 'down']);
      assert.equal(d.code, 0, d.stderr);
      await until(
        'the outage seen by the pods',
        async () => (await ping(t, p1, '10.10.0.2', 1)).received === 0,
      );
      const u = await node.exec('ip', ['link', 'set', 'eth0', 'up']);
      assert.equal(u.code, 0, u.stderr);
      // the default route left with the link
      await node.exec('ip', ['route', 'replace', 'default', 'via', lab.cluster.hostAddress(1)]);
      for (const [i, n] of lab.cluster.nodes.entries())
        if (n.name !== n1)
          await node.exec('ip', ['route', 'replace', `10.249.${i + 1}.0/24`, 'via', n.o.address]);
    });
    progress(`underlay down/up on ${n1}: ${loss} lost`);
    rows.push({
      fault: 'underlay eth0 down on one node, then up',
      happened: 'traffic stopped during the outage and resumed by itself; same sessions, no reconfiguration',
      loss,
      leaks: 'none',
    });
  });

  it('node drained and deleted: its node state and datapath pod go, the tunnel says NodeNotFound; re-joined, everything returns', async () => {
    const d = await t.kubectl([
      'drain',
      n2,
      '--ignore-daemonsets',
      '--delete-emptydir-data',
      '--force',
      '--timeout=180s',
    ]);
    assert.match(d, /drained/);
    await t.kubectl(['delete', 'node', n2, '--wait=true', '--timeout=120s']);
    await until(`${n2}'s node state and datapath pod gone`, async () => {
      const s = await getJson<{ items: L2TPNodeState[] }>(t, ['l2tpnodestates']);
      const dp = (await datapathPods()).items.filter((p) => p.spec.nodeName === n2);
      return !s.items.some((x) => x.metadata.name === n2) && dp.length === 0;
    }, 180_000, 1000); // prettier-ignore
    const tun = await until('the tunnel reports NodeNotFound', async () => {
      const x = await getJson<L2TPTunnel>(t, ['l2tptunnel', 'q-day2']);
      const r = x.status?.conditions?.find((c) => c.type === 'Ready');
      return r?.status === 'False' && r.reason === 'NodeNotFound' ? r : undefined;
    }, 120_000, 1000); // prettier-ignore
    const devices = async () => (await nodeFootprint(t, n2)).links.filter((l) => /^(l2tp|kl2)/.test(l));
    const ports = async (bridge: string) =>
      (await t.nodeExec(n2, 'ip', ['-o', 'link', 'show', 'master', bridge])).stdout
        .split('\n')
        .filter(Boolean).length;
    // Session devices and pods' veths go with the node. An attachment bridge stays only when its pods'
    // sandboxes were torn down after the agent left (their DEL succeeds without one): then it has no
    // port, and the next agent on the node releases or adopts it.
    const unexpected = async () => {
      const left: string[] = [];
      for (const d of await devices()) if (!d.startsWith('kl2b') || (await ports(d)) > 0) left.push(d);
      return left;
    };
    await until(
      `kube-l2tp's devices gone from ${n2}`,
      async () => (await unexpected()).length === 0,
      60_000,
      500,
    ).catch(async () => assert.deepEqual(await unexpected(), [], `devices left on the deleted node`));
    const strayBridges = await devices();
    // kubelet registers the node again when it starts
    await lab.cluster.node(n2).restart('kubelet');
    await lab.cluster.waitNodesReady();
    await apply(t, [pod(t, p2, n2, 'day2-wire', '10.10.0.2/24')]);
    await waitPodsReady(t, [p2]);
    await nodeStatesReady();
    await waitPseudowireReady(t, NS, 'day2-wire');
    const p = await ping(t, p2, '10.10.0.1', 4);
    assert.equal(p.received, 4, p.output);
    // one attachment bridge, the pseudowire's, with its session device and the pod on it: a bridge
    // left from before the node was deleted was adopted or released by the new agent
    const bridges = (await devices()).filter((d) => d.startsWith('kl2b'));
    await until(`one attachment bridge on ${n2}`, async () => (await devices()).filter((d) => d.startsWith('kl2b')).length === 1, 30_000, 500).catch(
      async () => assert.deepEqual((await devices()).filter((d) => d.startsWith('kl2b')), bridges.slice(0, 1), 'stray attachment bridges after the re-join'),
    ); // prettier-ignore
    const [bridge] = (await devices()).filter((d) => d.startsWith('kl2b'));
    assert.ok((await ports(bridge!)) >= 2, `${bridge} holds the session device and the pod`);
    progress(`drain + delete of ${n2}: tunnel ${tun.reason} ("${tun.message}"); re-joined, pseudowire Ready`);
    rows.push({
      fault: 'node drained (kubectl drain), Node deleted, then re-joined',
      happened: `node state and datapath pod removed, devices removed from the node${strayBridges.length ? ` (an attachment bridge without ports stayed until the node re-joined, as its pods' sandboxes ended after the agent)` : ''}; tunnel Ready=False (${tun.reason}); after kubelet re-registered: node state, datapath pod and traffic back, one attachment bridge`,
      loss: 'n/a (the node is gone by design)',
      leaks: 'none',
    });
  });
});

function writeReport(table: string): void {
  const text = `# Reliability report

Generated by \`test/e2e/day2.test.ts\` on a real cluster: etcd, kube-apiserver, kube-controller-manager and kube-scheduler; two nodes, each a real kubelet + containerd + runc + kube-proxy; Multus; kube-l2tp installed with \`helm install\` (datapath backend \`auto\`, which is ebpf on these machines, until the userspace upgrade row switches it). Traffic is \`ping -i 0.01\` from a pod to a pod on the other node across a pseudowire, run inside the pod so that it survives the kubelet and the runtime restarting; loss counts every echo without a reply from the start of the operation until the link answered again. Leaks compare each node's kube-l2tp devices and attachment records before and after, and the suite ends by checking that no namespace, process, mount or cgroup of the cluster is left. Hostile packets are covered by \`test/integration/datapath-hostile.test.ts\` and parsers by \`test/fuzz/\`.

Run: ${new Date().toISOString().slice(0, 10)}.

${table}
`;
  writeFileSync(REPORT, text);
}
