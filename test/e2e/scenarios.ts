// The e2e scenarios, written against what any cluster offers (kubectl, kubectl exec, a shell on a
// node's host), so the real-node suite here and the kind suite (test/e2e/kind/) run the same code:
// what CI proves is what a user with Docker runs. Each scenario builds its own objects in the given
// namespace and asserts what a user would check; a wire capture runs where the target can capture.
import assert from 'node:assert/strict';
import type { L2TPNodeState, L2TPTunnel, Pseudowire } from '../../lib/api/schemas.js';
import { API_VERSION } from '../../lib/api/schemas.js';
import { L2TP_FIELDS, tsharkArgs, type DecodeOptions } from '../harness/tshark.js';
import { until } from '../harness/wait.js';

export interface PodRef {
  namespace: string;
  name: string;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** What a scenario needs from a cluster. */
export interface ScenarioTarget {
  /** Node names, at least two. */
  nodes: string[];
  /** An image with busybox (sh, ip, ping) for the test pods. */
  toolsImage: string;
  kubectl(args: string[], input?: string): Promise<string>;
  podExec(pod: PodRef, cmd: string[], timeoutMs?: number): Promise<ExecResult>;
  /** A program on a node's host (in its network namespace): link listings, state files. */
  nodeExec(node: string, file: string, args: string[]): Promise<ExecResult>;
  /**
   * tshark on a node's underlay (eth0) while `during` runs, decoded as L2TP, until at least
   * `minFrames` arrived or a while passed (capture delivers in batches). Absent where the nodes have no
   * tshark (kind): the scenarios then check traffic only.
   */
  capture?(
    node: string,
    bpf: string,
    o: DecodeOptions,
    minFrames: number,
    during: () => Promise<void>,
  ): Promise<CapturedFrame[]>;
  progress(msg: string): void;
}

type Obj = Record<string, unknown>;

/** Live capture fields: the L2TP ones plus the outer UDP checksum. */
export const CAPTURE_FIELDS = [...L2TP_FIELDS, 'udp.checksum'] as const;
export type CapturedFrame = Record<(typeof CAPTURE_FIELDS)[number], string>;

/** A tunnel between two nodes, shared with the namespaces of its pseudowires. */
export const tunnel = (
  name: string,
  a: string,
  b: string,
  namespaces: string[],
  encapsulation: 'UDP' | 'IP' = 'UDP',
): Obj => ({
  apiVersion: API_VERSION,
  kind: 'L2TPTunnel',
  metadata: { name },
  spec: { encapsulation, local: { node: a }, peer: { node: b }, allowedNamespaces: namespaces },
});

export const pseudowire = (namespace: string, name: string, tunnelName: string, extra: Obj = {}): Obj => ({
  apiVersion: API_VERSION,
  kind: 'Pseudowire',
  metadata: { name, namespace },
  spec: {
    tunnelRef: { name: tunnelName },
    l2SpecificSublayer: 'Default',
    attachment: { mode: 'Bridge' },
    ...extra,
  },
});

/** A pod on a node attached to a network, with a static address on net1 (no IPAM needed). */
export const pod = (t: ScenarioTarget, p: PodRef, node: string, network: string, cidr: string): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { ...p, annotations: { 'k8s.v1.cni.cncf.io/networks': network } },
  spec: {
    nodeSelector: { 'kubernetes.io/hostname': node },
    // busybox as PID 1 ignores SIGTERM: do not wait for the grace period on delete
    terminationGracePeriodSeconds: 1,
    containers: [
      {
        name: 'shell',
        image: t.toolsImage,
        imagePullPolicy: 'IfNotPresent',
        command: ['sh', '-c', `ip addr add ${cidr} dev net1 && exec sleep infinity`],
        securityContext: { capabilities: { add: ['NET_ADMIN'] } },
      },
    ],
  },
});

export const namespaceObj = (name: string): Obj => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name },
});

export async function apply(t: ScenarioTarget, objs: Obj[]): Promise<void> {
  await t.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objs }));
}

export async function getJson<T>(t: ScenarioTarget, args: string[]): Promise<T> {
  return JSON.parse(await t.kubectl(['get', ...args, '-o', 'json'])) as T;
}

export async function waitPseudowireReady(t: ScenarioTarget, ns: string, name: string): Promise<Pseudowire> {
  return until(
    `pseudowire ${ns}/${name} Ready`,
    async () => {
      const pw = await getJson<Pseudowire>(t, ['pseudowire', '-n', ns, name]);
      return pw.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? pw : undefined;
    },
    120_000,
    500,
  );
}

export async function waitPodsReady(t: ScenarioTarget, pods: PodRef[]): Promise<void> {
  for (const p of pods)
    await t.kubectl(['wait', '--for=condition=Ready', 'pod', '-n', p.namespace, p.name, '--timeout=120s']);
}

export async function ping(t: ScenarioTarget, from: PodRef, to: string, count = 4) {
  const r = await t.podExec(from, ['ping', '-c', String(count), '-W', '2', to], 60_000);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  return { sent: m ? Number(m[1]) : count, received: m ? Number(m[2]) : 0, output: r.stdout + r.stderr };
}

async function assertPings(t: ScenarioTarget, pairs: [PodRef, string][], count = 4): Promise<void> {
  for (const [from, to] of pairs) {
    const p = await ping(t, from, to, count);
    assert.equal(p.received, count, `${from.name} -> ${to}: ${p.output}`);
  }
}

/** The pod's net1: index, MAC and MTU (what must not change under day-2 operations). */
export async function podNet1(
  t: ScenarioTarget,
  p: PodRef,
): Promise<{ ifindex: number; mac: string; mtu: number }> {
  const r = await t.podExec(p, [
    'cat',
    '/sys/class/net/net1/ifindex',
    '/sys/class/net/net1/address',
    '/sys/class/net/net1/mtu',
  ]);
  if (r.code !== 0) throw new Error(`${p.namespace}/${p.name} has no net1: ${r.stderr}`);
  const [ifindex, mac, mtu] = r.stdout.trim().split('\n');
  return { ifindex: Number(ifindex), mac: mac!, mtu: Number(mtu) };
}

/** What kube-l2tp keeps on a node's host for pods and pseudowires: links and attachment records. */
export async function nodeFootprint(
  t: ScenarioTarget,
  node: string,
): Promise<{ links: string[]; records: string[] }> {
  const l = await t.nodeExec(node, 'ip', ['-o', 'link', 'show']);
  const links = l.stdout
    .split('\n')
    .map((x) => x.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter((x) => x !== '');
  const r = await t.nodeExec(node, 'find', ['/var/lib/cni/kube-l2tp', '-type', 'f']);
  return { links: links.sort(), records: r.stdout.split('\n').filter(Boolean).sort() };
}

/**
 * A footprint by what survives pods coming and going: the pseudowires' devices by name, the pods'
 * veths (names change when a pod is re-created) and attachment records by count.
 */
export function footprintShape(f: { links: string[]; records: string[] }) {
  const podLink = (l: string) => /^(veth|kl2h)/.test(l);
  return {
    shared: f.links.filter((l) => !podLink(l)),
    podLinks: f.links.filter(podLink).length,
    records: f.records.length,
  };
}

async function nodeState(t: ScenarioTarget, node: string): Promise<L2TPNodeState> {
  return getJson<L2TPNodeState>(t, ['l2tpnodestate', node]);
}

/** Sandbox failure events of a pod (what kubectl describe shows). */
export async function sandboxFailures(t: ScenarioTarget, p: PodRef): Promise<string[]> {
  return until(
    `a sandbox failure event for ${p.name}`,
    async () => {
      const ev = await getJson<{ items: { reason?: string; message?: string }[] }>(t, [
        'events', '-n', p.namespace, '--field-selector', `involvedObject.name=${p.name}`,
      ]); // prettier-ignore
      const msgs = ev.items.filter((e) => e.reason === 'FailedCreatePodSandBox').map((e) => e.message ?? '');
      return msgs.length > 0 ? msgs : undefined;
    },
    90_000,
    1000,
  );
}

async function deletePods(t: ScenarioTarget, ns: string, names: string[]): Promise<void> {
  await t.kubectl(['delete', 'pod', '-n', ns, ...names, '--wait=true', '--timeout=90s']);
}

/**
 * Several pods on one bridge: two pods on the first node and one on the second share one pseudowire;
 * every pair talks. Then the wire: the tunnel asks for UDP checksums by default, and whatever backend
 * the nodes report, every datagram carries one.
 */
export async function severalPodsOnOneBridge(t: ScenarioTarget, ns: string): Promise<void> {
  const [n1, n2] = t.nodes as [string, string];
  const a1 = { namespace: ns, name: 'a1' };
  const a2 = { namespace: ns, name: 'a2' };
  const b1 = { namespace: ns, name: 'b1' };
  await apply(t, [
    tunnel('q-red', n1, n2, [ns]),
    pseudowire(ns, 'red-wire', 'q-red'),
    pod(t, a1, n1, 'red-wire', '192.168.10.1/24'),
    pod(t, a2, n1, 'red-wire', '192.168.10.2/24'),
    pod(t, b1, n2, 'red-wire', '192.168.10.3/24'),
  ]);
  const pw = await waitPseudowireReady(t, ns, 'red-wire');
  await waitPodsReady(t, [a1, a2, b1]);
  for (const p of [a1, a2, b1]) assert.equal((await podNet1(t, p)).mtu, pw.status?.mtu, `${p.name} net1 MTU`);
  await assertPings(t, [
    [a1, '192.168.10.3'],
    [a2, '192.168.10.3'],
    [a1, '192.168.10.2'],
    [b1, '192.168.10.1'],
  ]);
  const tun = await getJson<L2TPTunnel>(t, ['l2tptunnel', 'q-red']);
  assert.equal(tun.spec.udpChecksum, true, 'UDP checksums are the default');
  if (!t.capture) return;
  const backends = new Set<string>();
  for (const n of [n1, n2]) backends.add((await nodeState(t, n)).status?.backend ?? '?');
  assert.equal(backends.size, 1, `one backend on both nodes: ${[...backends].join(', ')}`);
  const backend = [...backends][0]!;
  const udpPorts = [tun.status!.udpPort!, tun.status!.peerUDPPort!];
  const opts = { cookieLength: 0, l2spec: 'default', udpPorts, filter: 'l2tp && icmp' } as const;
  const frames = await t.capture(n2, 'udp', opts, 8, () => assertPings(t, [[a1, '192.168.10.3']]));
  assert.ok(frames.length >= 8, `captured ${frames.length} ICMP-in-L2TP frames`);
  const zero = frames.filter((f) => f['udp.checksum'] === '0x0000').length;
  assert.equal(zero, 0, `the ${backend} backend checksums every datagram`);
  t.progress(
    `UDP checksums on the wire (${backend} backend): ${frames.length - zero} of ${frames.length} set`,
  );
}

/**
 * IP encapsulation with 8-byte cookies read from a Secret: the MTU accounts for them, the cookies go
 * on the wire as tshark decodes them (each side sends its own), and the Pseudowire never echoes them.
 */
export async function ipEncapCookiesFromSecret(t: ScenarioTarget, ns: string): Promise<void> {
  const [n1, n2] = t.nodes as [string, string];
  const c = { namespace: ns, name: 'c' };
  const d = { namespace: ns, name: 'd' };
  await apply(t, [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'blue-cookies', namespace: ns },
      stringData: { cookie: 'a1a2a3a4a5a6a7a8', 'peer-cookie': 'b1b2b3b4b5b6b7b8' },
    },
    tunnel('q-blue', n1, n2, [ns], 'IP'),
    pseudowire(ns, 'blue-wire', 'q-blue', {
      cookie: { secretRef: { name: 'blue-cookies', key: 'cookie' } },
      peerCookie: { secretRef: { name: 'blue-cookies', key: 'peer-cookie' } },
    }),
    pod(t, c, n1, 'blue-wire', '192.168.20.1/24'),
    pod(t, d, n2, 'blue-wire', '192.168.20.2/24'),
  ]);
  const pw = await waitPseudowireReady(t, ns, 'blue-wire');
  assert.equal(
    pw.status?.mtu,
    1500 - (20 + 4 + 8 + 4 + 14),
    'IP encapsulation, 8-byte cookie, default sublayer',
  );
  assert.doesNotMatch(JSON.stringify(pw), /a1a2a3a4|b1b2b3b4/, 'the Pseudowire does not echo its cookies');
  await waitPodsReady(t, [c, d]);
  await assertPings(t, [[c, '192.168.20.2']]);
  if (!t.capture) return;
  const frames = await t.capture(
    n2,
    'ip proto 115',
    { cookieLength: 8, l2spec: 'default', filter: 'l2tp && icmp' },
    8,
    () => assertPings(t, [[c, '192.168.20.2']]),
  );
  assert.ok(frames.length >= 8, `captured ${frames.length} ICMP-in-L2TP frames`);
  const cookies = new Set(frames.map((f) => f['l2tp.cookie'].replaceAll(':', '')));
  // n1 is the tunnel's local side and sends the cookie; n2 sends the peer cookie
  assert.deepEqual([...cookies].sort(), ['a1a2a3a4a5a6a7a8', 'b1b2b3b4b5b6b7b8']);
  assert.ok(
    frames.every((f) => f['eth.type'] === '0x0800'),
    'inner frames are IPv4',
  );
  t.progress(`IP encapsulation: ${frames.length} frames on the wire carry the Secret's cookies`);
}

/**
 * A pod deleted and re-created at once on the same node: the runtime's CNI DEL left nothing behind
 * (the node holds exactly what it held before), and the new pod gets the same network.
 */
export async function podRecreatedAtOnce(t: ScenarioTarget, ns: string): Promise<void> {
  const n2 = t.nodes[1]!;
  const b1 = { namespace: ns, name: 'b1' };
  const a1 = { namespace: ns, name: 'a1' };
  const before = footprintShape(await nodeFootprint(t, n2));
  const obj = pod(t, b1, n2, 'red-wire', '192.168.10.3/24');
  await deletePods(t, ns, ['b1']);
  const gone = footprintShape(await nodeFootprint(t, n2));
  assert.equal(gone.records, before.records - 1, "the pod's attachment record is gone");
  assert.equal(gone.podLinks, before.podLinks - 2, "the pod's veths (primary network, red-wire) are gone");
  assert.deepEqual(gone.shared, before.shared, "red-wire's devices stay for the other pods");
  await apply(t, [obj]);
  await waitPodsReady(t, [b1]);
  const pw = await getJson<Pseudowire>(t, ['pseudowire', '-n', ns, 'red-wire']);
  assert.equal((await podNet1(t, b1)).mtu, pw.status?.mtu);
  // the new pod speaks first: its ARP request refreshes the old MAC its peers still cache
  await assertPings(t, [
    [b1, '192.168.10.1'],
    [a1, '192.168.10.3'],
  ]);
  assert.deepEqual(footprintShape(await nodeFootprint(t, n2)), before, 'one pod again, not two');
}

/**
 * A pseudowire's MTU edited under its pods: every attached pod's net1 follows it down and back up,
 * without the pods being re-created. A ping the size of the derived MTU crosses at each step: at the
 * lower MTU only when the sending pod fragments it (a pod left at the old MTU sends frames the session
 * drops), at the derived one again whole.
 */
export async function pseudowireMtuEdited(t: ScenarioTarget, ns: string): Promise<void> {
  const pods = ['a1', 'a2', 'b1'].map((name) => ({ namespace: ns, name }));
  const a1 = pods[0]!;
  const derived = (await getJson<Pseudowire>(t, ['pseudowire', '-n', ns, 'red-wire'])).status!.mtu!;
  const uids = async () =>
    JSON.stringify(await Promise.all(pods.map(async (p) => (await getJson<Obj & { metadata: { uid: string } }>(t, ['pod', '-n', ns, p.name])).metadata.uid))); // prettier-ignore
  const before = await uids();
  const lowered = derived - 46;
  for (const [mtu, patch] of [
    [lowered, { spec: { mtu: lowered } }],
    [derived, { spec: { mtu: null } }],
  ] as const) {
    await t.kubectl(['patch', 'pseudowire', '-n', ns, 'red-wire', '--type', 'merge', '-p', JSON.stringify(patch)]); // prettier-ignore
    await until(
      `red-wire and its pods at MTU ${mtu}`,
      async () => {
        const pw = await getJson<Pseudowire>(t, ['pseudowire', '-n', ns, 'red-wire']);
        if (pw.status?.mtu !== mtu) return false;
        for (const p of pods) if ((await podNet1(t, p)).mtu !== mtu) return false;
        return true;
      },
      60_000,
      500,
    ).catch(async (err: Error) => {
      const now = await Promise.all(pods.map(async (p) => `${p.name} ${(await podNet1(t, p)).mtu}`));
      throw new Error(`${err.message}: net1 MTUs ${now.join(', ')}`);
    });
    // 28 bytes of IPv4 and ICMP headers: an IP packet of the derived MTU
    const r = await t.podExec(a1, ['ping', '-c', '3', '-W', '2', '-s', String(derived - 28), '192.168.10.3']);
    assert.match(
      r.stdout,
      / 3 packets received/,
      `a ${derived}-byte ping at MTU ${mtu}: ${r.stdout}${r.stderr}`,
    );
    t.progress(
      `red-wire at MTU ${mtu}: ${pods.map((p) => p.name).join(', ')} followed; a ${derived}-byte ping crossed`,
    );
  }
  assert.equal(await uids(), before, 'the pods were not re-created');
}

/**
 * A pseudowire deleted while pods use it: its devices leave the nodes, a new pod gets an error that
 * names it, the pods' CNI DEL succeeds and leaves nothing; re-created, pods attach again and talk.
 * `baseline` is each node's footprint before the pseudowire existed.
 */
export async function pseudowireDeletedAndRecreated(
  t: ScenarioTarget,
  ns: string,
  baseline: Map<string, { links: string[]; records: string[] }>,
): Promise<void> {
  const [n1, n2] = t.nodes as [string, string];
  const pwObj = await getJson<Obj & { metadata: Obj }>(t, ['pseudowire', '-n', ns, 'blue-wire']);
  const spec = pwObj.spec as Obj;
  await t.kubectl(['delete', 'pseudowire', '-n', ns, 'blue-wire', '--wait=true', '--timeout=120s']);
  await until(`blue-wire's session gone from the node states`, async () => {
    for (const n of [n1, n2])
      if ((await nodeState(t, n)).status?.sessions?.some((s) => s.pseudowire?.name === 'blue-wire'))
        return false;
    return true;
  });
  const late = { namespace: ns, name: 'late' };
  await apply(t, [pod(t, late, n2, 'blue-wire', '192.168.20.9/24')]);
  const msgs = await sandboxFailures(t, late);
  assert.ok(
    msgs.some((m) => m.includes('blue-wire')),
    `the error names the pseudowire: ${msgs.join(' | ')}`,
  );
  await deletePods(t, ns, ['late', 'c', 'd']);
  for (const n of [n1, n2]) {
    const want = footprintShape(baseline.get(n)!);
    await until(
      `${n} holds what it held before blue-wire`,
      async () => {
        const f = footprintShape(await nodeFootprint(t, n));
        return JSON.stringify(f) === JSON.stringify(want);
      },
      30_000,
      500,
    ).catch(async () => {
      assert.deepEqual(footprintShape(await nodeFootprint(t, n)), want, `leftovers of blue-wire on ${n}`);
    });
  }
  const c = { namespace: ns, name: 'c' };
  const d = { namespace: ns, name: 'd' };
  await apply(t, [
    pseudowire(ns, 'blue-wire', 'q-blue', { cookie: spec.cookie, peerCookie: spec.peerCookie }),
    pod(t, c, n1, 'blue-wire', '192.168.20.1/24'),
    pod(t, d, n2, 'blue-wire', '192.168.20.2/24'),
  ]);
  await waitPseudowireReady(t, ns, 'blue-wire');
  await waitPodsReady(t, [c, d]);
  await assertPings(t, [
    [c, '192.168.20.2'],
    [d, '192.168.20.1'],
  ]);
}

/** tshark arguments for a live capture on eth0 that prints CAPTURE_FIELDS per packet. */
export function liveTsharkArgs(bpf: string, o: DecodeOptions): string[] {
  return [
    '-n', '-l', '-i', 'eth0', '-f', bpf, ...tsharkArgs(o), ...(o.filter ? ['-Y', o.filter] : []),
    '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=l', ...CAPTURE_FIELDS.flatMap((f) => ['-e', f]),
  ]; // prettier-ignore
}

export function parseFields(out: string): CapturedFrame[] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(CAPTURE_FIELDS.map((f, i) => [f, cols[i] ?? ''])) as CapturedFrame;
    });
}

/** A scenario of the shared sequence: its name, and how to run it on a target in namespace ns. */
export type ScenarioStep = [name: string, run: (t: ScenarioTarget, ns: string) => Promise<void>];

/**
 * The shared scenarios in the order they build on each other (the last one compares each node with
 * what it had before the second), for every runner: the real-cluster suite and the kind script.
 */
export function scenarioSteps(): ScenarioStep[] {
  const baseline = new Map<string, { links: string[]; records: string[] }>();
  return [
    [
      'several pods on one bridge talk; UDP checksums on the wire, whatever the backend',
      severalPodsOnOneBridge,
    ],
    [
      'IP encapsulation with 8-byte cookies from a Secret (on the underlay by tshark where nodes have it)',
      async (t, ns) => {
        for (const n of t.nodes) baseline.set(n, await nodeFootprint(t, n));
        await ipEncapCookiesFromSecret(t, ns);
      },
    ],
    [
      'a pod deleted and re-created at once gets the same network; nothing of the old one stays',
      podRecreatedAtOnce,
    ],
    [
      "a pseudowire's MTU edited under its pods: every pod's net1 follows it down and back, nothing re-created",
      pseudowireMtuEdited,
    ],
    [
      'a pseudowire deleted under its pods: an error naming it, nothing leaks; re-created, pods attach again',
      (t, ns) => pseudowireDeletedAndRecreated(t, ns, baseline),
    ],
  ];
}
