// Cross-cluster on real clusters: two clusters, each its own control plane, node, Multus and helm
// install, on one L2 underlay. The west side is written by hand with an external peer; the east side
// is what `kube-l2tp-operator mirror` prints for it. Pods in both clusters share one segment.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { API_VERSION } from '../../lib/api/schemas.js';
import { runCapture } from '../../lib/exec.js';
import { requireRoot } from '../harness/netns.js';
import { leftovers } from '../harness/cluster/leaks.js';
import { e2eLogger, imagesFromEnv, progress, RealLab } from './real-lab.js';
import { apply, namespaceObj, ping, pod, waitPodsReady, waitPseudowireReady } from './scenarios.js';

const logger = e2eLogger('cross');
const OPERATOR_CLI = join(dirname(fileURLToPath(import.meta.url)), '../../operator/main.js');
const NS = 'qx-span';

describe('cross-cluster: two real clusters on one underlay', () => {
  let west: RealLab;
  let east: RealLab;
  const started = Date.now();

  before(async () => {
    requireRoot();
    const images = imagesFromEnv();
    const common = { nodes: 1, underlay: '10.245.0', images, logger, progress };
    west = await RealLab.start({ ...common, prefix: 'qw', podNet: '10.246' });
    east = await RealLab.start({
      ...common,
      prefix: 'qe',
      podNet: '10.247',
      hostBase: 100,
      joinUnderlay: west,
    });
  });

  after(async () => {
    await east?.stop();
    await west?.stop();
    progress(`cross-cluster.test: ${((Date.now() - started) / 1000).toFixed(0)} s wall time`);
    const left = [...(await leftovers('qw')), ...(await leftovers('qe'))];
    assert.deepEqual(left, [], `the clusters left these behind: ${left.join(', ')}`);
  });

  it('each cluster holds its side; the mirrored manifest puts pods in both on one segment', async () => {
    const w = west.cluster.nodes[0]!;
    const e = east.cluster.nodes[0]!;
    const westSide = [
      {
        apiVersion: API_VERSION,
        kind: 'L2TPTunnel',
        metadata: { name: 'to-east' },
        spec: {
          encapsulation: 'UDP',
          local: { node: w.name, address: w.o.address, tunnelID: 100, udpPort: 17001 },
          peer: { external: { address: e.o.address, tunnelID: 200, udpPort: 17002 } },
          allowedNamespaces: [NS],
        },
      },
      {
        apiVersion: API_VERSION,
        kind: 'Pseudowire',
        metadata: { name: 'span', namespace: NS },
        spec: {
          tunnelRef: { name: 'to-east' },
          sessionID: 1000,
          peerSessionID: 2000,
          cookie: { value: '0102030405060708' },
          peerCookie: { value: '1112131415161718' },
          l2SpecificSublayer: 'Default',
          attachment: { mode: 'Bridge' },
        },
      },
    ];
    const text = westSide.map((d) => YAML.stringify(d)).join('---\n');
    const m = await runCapture(process.execPath, [OPERATOR_CLI, 'mirror', '-f', '-', '--node', e.name], {
      input: text,
    });
    assert.equal(m.code, 0, m.stderr);
    const eastSide = YAML.parseAllDocuments(m.stdout)
      .map((d) => d.toJS() as Record<string, unknown> | null)
      .filter((x): x is Record<string, unknown> => x !== null);
    const eastTunnel = eastSide.find((d) => d.kind === 'L2TPTunnel') as {
      spec: { peer: unknown; allowedNamespaces: string[] };
    };
    assert.deepEqual(eastTunnel.spec.peer, {
      external: { address: w.o.address, tunnelID: 100, udpPort: 17001 },
    });
    // which of east's namespaces may use the tunnel is east's decision: mirror grants none, and
    // east's admin lists the one the pseudowire is in
    assert.deepEqual(eastTunnel.spec.allowedNamespaces, []);
    eastTunnel.spec.allowedNamespaces = [NS];
    const wt = west.target();
    const et = east.target();
    const pw = { namespace: NS, name: 'west-pod' };
    const pe = { namespace: NS, name: 'east-pod' };
    await apply(wt, [namespaceObj(NS), ...westSide, pod(wt, pw, w.name, 'span', '192.168.40.1/24')]);
    await apply(et, [namespaceObj(NS), ...eastSide, pod(et, pe, e.name, 'span', '192.168.40.2/24')]);
    await waitPseudowireReady(wt, NS, 'span');
    await waitPseudowireReady(et, NS, 'span');
    await waitPodsReady(wt, [pw]);
    await waitPodsReady(et, [pe]);
    for (const [t, from, to] of [
      [wt, pw, '192.168.40.2'],
      [et, pe, '192.168.40.1'],
    ] as const) {
      const p = await ping(t, from, to, 5);
      assert.equal(p.received, 5, p.output);
    }
  });
});
