// End-to-end scenarios on the local lab: every part real (apiserver, operator, agents with the
// userspace datapath, CNI shim through cnitool, namespaces as nodes and pods). One lab serves the
// in-cluster scenarios in order; cross-cluster runs two control planes on one underlay.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import type { L2TPTunnel, Pseudowire } from '../../lib/api/schemas.js';
import { API_VERSION } from '../../lib/api/schemas.js';
import { runCapture } from '../../lib/exec.js';
import { createLogger } from '../../lib/log.js';
import { names } from '../../cmd/cni/netops.js';
import { mirrorManifest } from '../../operator/mirror.js';
import { requireRoot } from '../harness/netns.js';
import { decodeL2tp, type DecodedFrame, type DecodeOptions } from '../harness/tshark.js';
import { sleep, until } from '../harness/wait.js';
import { LocalLab, type LabPod } from './lab.js';

const logger = createLogger({ name: 'e2e', level: 'warn', destination: 'stderr' });
const progress = (m: string) => console.log(`  · ${m}`);

async function links(ns: string): Promise<string[]> {
  const r = await runCapture('ip', ['-n', ns, '-o', 'link', 'show']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter((x) => x !== '');
}

/** What tshark captures on a lab node's underlay (eth0, BPF filter) while `during` runs, decoded as L2TP. */
async function captureL2tp(
  node: string,
  bpf: string,
  during: () => Promise<void>,
  o: DecodeOptions,
): Promise<{ frames: DecodedFrame[]; pcap: string; done: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'ke-cap-'));
  const pcap = join(dir, 'cap.pcap');
  const cap = spawn(
    'ip',
    ['netns', 'exec', node, 'tshark', '-q', '-i', 'eth0', '-f', bpf, '-w', pcap, '-a', 'duration:6'],
    {
      stdio: 'ignore',
    },
  );
  const capDone = new Promise((r) => cap.once('exit', r));
  try {
    await sleep(1500);
    await during();
    await capDone;
    return {
      frames: await decodeL2tp(pcap, o),
      pcap,
      done: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    cap.kill();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

const pseudowire = (name: string, tunnel: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: API_VERSION,
  kind: 'Pseudowire',
  metadata: {
    name,
    namespace: 'default',
    annotations: { 'l2tp.kube-l2tp.io/ipam': JSON.stringify({ type: 'static' }) },
  },
  spec: { tunnelRef: { name: tunnel }, attachment: { mode: 'Bridge' }, ...extra },
});
const tunnel = (name: string, a: string, b: string, encapsulation: 'UDP' | 'IP' = 'UDP') => ({
  apiVersion: API_VERSION,
  kind: 'L2TPTunnel',
  metadata: { name },
  spec: { encapsulation, local: { node: a }, peer: { node: b } },
});

describe('in-cluster (3 nodes, one control plane)', () => {
  let lab: LocalLab;
  const pods: Record<string, LabPod> = {};
  let n1: string, n2: string, n3: string;

  before(async () => {
    requireRoot();
    lab = await LocalLab.start({
      nodes: 3,
      prefix: 'ke',
      underlay: '10.211.0',
      backend: 'userspace',
      logger,
      progress,
    });
    [n1, n2, n3] = lab.nodes.map((n) => n.name) as [string, string, string];
  });
  after(async () => {
    await lab?.stop();
  });

  it('in-cluster link, several pods on one bridge', async () => {
    await lab.apply([tunnel('red', n1, n2), pseudowire('red-wire', 'red')]);
    await lab.waitPseudowireReady('default', 'red-wire');
    pods.a1 = await lab.attachPod({
      name: 'a1',
      node: n1,
      namespace: 'default',
      network: 'red-wire',
      ip: '192.168.10.1/24',
    });
    pods.a2 = await lab.attachPod({
      name: 'a2',
      node: n1,
      namespace: 'default',
      network: 'red-wire',
      ip: '192.168.10.2/24',
    });
    pods.b1 = await lab.attachPod({
      name: 'b1',
      node: n2,
      namespace: 'default',
      network: 'red-wire',
      ip: '192.168.10.3/24',
    });
    for (const [from, to] of [
      ['a1', '192.168.10.3'],
      ['a2', '192.168.10.3'],
      ['a1', '192.168.10.2'],
      ['b1', '192.168.10.1'],
    ] as const) {
      const p = await lab.ping(pods[from]!, to, 4);
      assert.equal(p.received, 4, `${from} -> ${to}: ${p.output}`);
    }
    // L2TPTunnel defaults to UDP checksums (the userspace datapath's offloads need them): on the wire
    const t = await lab.get<L2TPTunnel>(['l2tptunnel', 'red']);
    assert.equal(t.spec.udpChecksum, true);
    const udpPorts = [t.status!.udpPort!, t.status!.peerUDPPort!];
    const opts = { cookieLength: 0, l2spec: 'default', udpPorts } as const;
    const cap = await captureL2tp(
      n2,
      'udp',
      async () => assert.equal((await lab.ping(pods.a1!, '192.168.10.3', 4)).received, 4),
      { ...opts, filter: 'l2tp && icmp' },
    );
    try {
      assert.ok(cap.frames.length >= 8, `captured ${cap.frames.length} ICMP-in-L2TP frames`);
      const zero = await decodeL2tp(cap.pcap, { ...opts, filter: 'l2tp && icmp && udp.checksum == 0' });
      assert.equal(zero.length, 0, 'no datagram with UDP checksum 0');
    } finally {
      cap.done();
    }
  });

  it('IP encapsulation with 8-byte cookies, checked on the wire by tshark', async () => {
    await lab.apply([
      tunnel('blue', n2, n3, 'IP'),
      pseudowire('blue-wire', 'blue', {
        cookie: { value: 'a1a2a3a4a5a6a7a8' },
        peerCookie: { value: 'b1b2b3b4b5b6b7b8' },
      }),
    ]);
    const pw = await lab.waitPseudowireReady('default', 'blue-wire');
    assert.equal(pw.status?.mtu, 1500 - (20 + 4 + 8 + 4 + 14), 'IP encap, 8-byte cookie, default sublayer');
    pods.c = await lab.attachPod({
      name: 'c',
      node: n2,
      namespace: 'default',
      network: 'blue-wire',
      ip: '192.168.20.1/24',
    });
    pods.d = await lab.attachPod({
      name: 'd',
      node: n3,
      namespace: 'default',
      network: 'blue-wire',
      ip: '192.168.20.2/24',
    });
    const { frames, done } = await captureL2tp(
      n3,
      'ip proto 115',
      async () => {
        const p = await lab.ping(pods.c!, '192.168.20.2', 4);
        assert.equal(p.received, 4, p.output);
      },
      { cookieLength: 8, l2spec: 'default', filter: 'l2tp && icmp' },
    );
    assert.ok(frames.length >= 8, `captured ${frames.length} ICMP-in-L2TP frames`);
    {
      const cookies = new Set(frames.map((f) => f['l2tp.cookie'].replaceAll(':', '')));
      // n2 is the tunnel's local side: it sends a1..a8; n3 (the mirrored side) sends b1..b8
      assert.deepEqual([...cookies].sort(), ['a1a2a3a4a5a6a7a8', 'b1b2b3b4b5b6b7b8']);
      assert.ok(
        frames.every((f) => f['eth.type'] === '0x0800'),
        'inner frames are IPv4',
      );
    }
    done();
  });

  it('exclusive mode moves the l2tpeth device into the pod', async () => {
    await lab.apply([pseudowire('green-wire', 'red', { attachment: { mode: 'Exclusive' } })]);
    const pw = await lab.waitPseudowireReady('default', 'green-wire');
    const ifname = `l2tpeth${pw.status?.sessionID ?? pw.spec.sessionID}`;
    pods.e = await lab.attachPod({
      name: 'e',
      node: n1,
      namespace: 'default',
      network: 'green-wire',
      ip: '192.168.30.1/24',
    });
    pods.f = await lab.attachPod({
      name: 'f',
      node: n2,
      namespace: 'default',
      network: 'green-wire',
      ip: '192.168.30.2/24',
    });
    assert.ok(!(await links(n1)).includes(ifname), `${ifname} left the node namespace`);
    const p = await lab.ping(pods.e, '192.168.30.2', 4);
    assert.equal(p.received, 4, p.output);
    await sleep(3000); // a few agent resyncs (2 s in the lab): the device must stay with the pod
    assert.ok(!(await links(n1)).includes(ifname), `${ifname} not recreated on the node while a pod owns it`);
    await assert.rejects(
      lab.attachPod({
        name: 'e2',
        node: n1,
        namespace: 'default',
        network: 'green-wire',
        ip: '192.168.30.3/24',
      }),
      /102|already attached|exclusive/i,
    );
  });

  it('an operator restart changes no ID', async () => {
    const ids = async () => {
      const t = await lab.get<{ items: L2TPTunnel[] }>(['l2tptunnels']);
      const p = await lab.get<{ items: Pseudowire[] }>(['pseudowires', '-A']);
      return JSON.stringify({
        t: t.items.map((x) => [
          x.metadata.name,
          x.status?.tunnelID,
          x.status?.peerTunnelID,
          x.status?.udpPort,
          x.status?.peerUDPPort,
        ]),
        p: p.items.map((x) => [x.metadata.name, x.status?.sessionID, x.status?.peerSessionID]),
      });
    };
    const before = await ids();
    await lab.stopOperator();
    await lab.startOperator();
    await sleep(3000);
    await lab.waitPseudowireReady('default', 'red-wire');
    assert.equal(await ids(), before);
  });

  it('agent pod deleted and recreated under traffic: the link comes back, loss is printed', async () => {
    const pod = `kube-l2tp-datapath-${n1}`;
    const ping = runCapture('ip', [
      'netns',
      'exec',
      pods.a1!.netns,
      'ping',
      '-i',
      '0.01',
      '-w',
      '12',
      '-q',
      '192.168.10.3',
    ]);
    await sleep(2000);
    await lab.cp.kubectl(['delete', 'pod', '-n', 'kube-l2tp', pod, '--wait=false']);
    const r = await ping;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const [sent, got] = [Number(m[1]), Number(m[2])];
    console.log(
      `  · agent restart under ping -i 0.01: ${sent - got} of ${sent} lost (${(((sent - got) / sent) * 100).toFixed(1)}%)`,
    );
    assert.ok(got > 0, 'traffic flowed');
    const after = await lab.ping(pods.a1!, '192.168.10.3', 4);
    assert.equal(after.received, 4, 'link back after the restart');
  });

  it('pseudowire deleted while pods are attached: clear CNI errors, nothing leaks', async () => {
    const pw = await lab.get<Pseudowire>(['pseudowire', '-n', 'default', 'blue-wire']);
    const ifname = `l2tpeth${pw.status?.sessionID}`;
    await lab.cp.kubectl(['delete', 'pseudowire', '-n', 'default', 'blue-wire', '--wait=false']);
    await until(
      'blue-wire gone',
      async () => {
        const r = await lab.cp.kubectl(['get', 'pseudowires', '-n', 'default', '-o', 'name']);
        return !r.includes('blue-wire');
      },
      120_000,
    );
    await until(`${ifname} removed from ${n3}`, async () => !(await links(n3)).includes(ifname));
    const err = await lab
      .attachPod({
        name: 'late',
        node: n3,
        namespace: 'default',
        network: 'blue-wire',
        ip: '192.168.20.9/24',
      })
      .then(() => 'attached')
      .catch((e: Error) => e.message);
    assert.match(err, /blue-wire/, 'the error names the pseudowire');
    // DEL of pods attached to the vanished pseudowire succeeds and leaves no veth behind
    await lab.detachPod(pods.c!);
    await lab.detachPod(pods.d!);
    const blue = [names.bridge('default', 'blue-wire'), ifname];
    for (const [n, pod] of [
      [n2, pods.c!],
      [n3, pods.d!],
    ] as const) {
      const left = (await links(n)).filter((l) =>
        [...blue, names.hostVeth(pod.containerID, pod.ifname)].includes(l),
      );
      assert.deepEqual(left, [], `leftovers of blue-wire on ${n}`);
    }
  });
});

describe('cross-cluster (two control planes, one underlay)', () => {
  let west: LocalLab;
  let east: LocalLab;
  before(async () => {
    requireRoot();
    west = await LocalLab.start({
      nodes: 1,
      prefix: 'kw',
      underlay: '10.212.0',
      backend: 'userspace',
      logger,
      progress,
    });
    east = await LocalLab.start({
      nodes: 1,
      prefix: 'kx',
      underlay: '10.212.0',
      firstHost: 21,
      sharedUnderlay: west.underlayBridge,
      backend: 'userspace',
      logger,
      progress,
    });
  });
  after(async () => {
    await east?.stop();
    await west?.stop();
  });

  it('each cluster holds its side; the mirrored manifest links pods in both on one segment', async () => {
    const w = west.nodes[0]!;
    const e = east.nodes[0]!;
    const westSide = [
      {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 'to-east' },
        spec: {
          encapsulation: 'UDP',
          local: { node: w.name, address: w.address, tunnelID: 100, udpPort: 17001 },
          peer: { external: { address: e.address, tunnelID: 200, udpPort: 17002 } },
        },
      },
      {
        ...pseudowire('span', 'to-east'),
        spec: {
          tunnelRef: { name: 'to-east' },
          sessionID: 1000,
          peerSessionID: 2000,
          cookie: { value: '0102030405060708' },
          peerCookie: { value: '1112131415161718' },
          attachment: { mode: 'Bridge' },
        },
      },
    ];
    const eastSide = YAML.parseAllDocuments(
      mirrorManifest(westSide.map((d) => YAML.stringify(d)).join('---\n'), { node: e.name }),
    ).map((d) => d.toJS() as Record<string, unknown>);
    // the IPAM annotation is cluster-local metadata: give the east side its own
    for (const d of eastSide)
      if (d.kind === 'Pseudowire')
        (d.metadata as Record<string, unknown>).annotations = {
          'l2tp.kube-l2tp.io/ipam': JSON.stringify({ type: 'static' }),
        };
    await west.apply(westSide);
    await east.apply(eastSide);
    await west.waitPseudowireReady('default', 'span');
    await east.waitPseudowireReady('default', 'span');
    const pw = await west.attachPod({
      name: 'pw',
      node: w.name,
      namespace: 'default',
      network: 'span',
      ip: '192.168.40.1/24',
    });
    await east.attachPod({
      name: 'pe',
      node: e.name,
      namespace: 'default',
      network: 'span',
      ip: '192.168.40.2/24',
    });
    const p = await west.ping(pw, '192.168.40.2', 5);
    assert.equal(p.received, 5, p.output);
  });
});
