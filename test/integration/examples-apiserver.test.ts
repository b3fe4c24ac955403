// Every manifest in examples/ is accepted by a real kube-apiserver carrying the chart's CRDs (schema and
// CEL rules included), the cross-cluster pair and the Linux peer really are mirror images of each other,
// and the Linux peer's static-mode file is accepted by the datapath's own config parser.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { runCapture } from '../../lib/exec.js';
import { parseStaticConfig } from '../../datapath/static/config.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';

const root = join(import.meta.dirname, '..', '..', '..');
const examples = join(root, 'examples');

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
};
interface TunnelSpec {
  encapsulation: string;
  local: { node: string; address?: string; tunnelID?: number; udpPort?: number };
  peer: { external?: { address: string; tunnelID: number; udpPort?: number } };
  udpChecksum?: boolean;
}
interface PwSpec {
  tunnelRef: { name: string };
  sessionID?: number;
  peerSessionID?: number;
  cookie?: { value?: string; secretRef?: { name: string; key: string } };
  peerCookie?: { value?: string; secretRef?: { name: string; key: string } };
  l2SpecificSublayer?: string;
  mtu?: number;
}

function walk(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : [join(dir, f)]))
    .sort();
}
const manifests = walk(examples).filter((f) => /\.ya?ml$/.test(f) && !f.endsWith('-static.yaml'));
const docs = (file: string): Obj[] =>
  YAML.parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
const one = <T>(file: string, kind: string): T => {
  const o = docs(join(examples, file)).filter((x) => x.kind === kind);
  assert.equal(o.length, 1, `${file}: one ${kind}`);
  return o[0]!.spec as T;
};

describe('examples on a real kube-apiserver', () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
    await cp.kubectl(['apply', '--server-side', '-f', join(root, 'deploy', 'helm', 'kube-l2tp', 'crds')]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  });
  after(async () => {
    await cp?.stop();
  });

  it('finds the examples the issue asks for', () => {
    const names = manifests.map((f) => relative(examples, f));
    for (const n of [
      'in-cluster-pair.yaml',
      'bridge-several-pods.yaml',
      'exclusive.yaml',
      'cross-cluster/cluster-a.yaml',
      'cross-cluster/cluster-b.yaml',
      'linux-peer.yaml',
    ]) {
      assert.ok(names.includes(n), `examples/${n} missing`);
    }
  });

  for (const file of manifests) {
    const name = relative(examples, file);
    it(`examples/${name} is accepted (dry-run=server, then created for real)`, async () => {
      // every example is applied to a clean slate: the cross-cluster sides reuse names on purpose
      await cp.kubectl(['delete', 'l2tptunnels,pseudowires', '--all', '--all-namespaces', '--wait=false']);
      await cp
        .kubectl([
          '-n',
          'l2tp-demo',
          'delete',
          'pods,deployments,secrets',
          '--all',
          '--force',
          '--grace-period=0',
        ])
        .catch(() => undefined); // the namespace does not exist before the first example
      const objs = docs(file);
      assert.ok(objs.length > 0);
      // the Namespace first (a dry run does not create it), then everything as a dry run, then for real
      const ns = objs.filter((o) => o.kind === 'Namespace');
      for (const n of ns) await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(n) });
      const dry = await cp.kubectl(['apply', '--dry-run=server', '-f', file]);
      assert.equal(dry.trim().split('\n').length, objs.length, dry);
      const out = await cp.kubectl(['apply', '-f', file]);
      assert.equal(out.trim().split('\n').length, objs.length, out);
      for (const o of objs) {
        const ref = `${o.kind.toLowerCase()}${o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : ''}/${o.metadata.name}`;
        const nsArgs = o.metadata.namespace ? ['-n', o.metadata.namespace] : [];
        const got = JSON.parse(await cp.kubectl([...nsArgs, 'get', ref, '-o', 'json'])) as Obj;
        assert.equal(got.metadata.name, o.metadata.name);
      }
    });
  }

  it('the apiserver does reject a broken example (the test above can fail)', async () => {
    const broken = readFileSync(join(examples, 'linux-peer.yaml'), 'utf8').replace(
      'value: c0ffee01',
      'value: c0ffee',
    );
    const r = await runCapture(
      join(cp.binDir, 'kubectl'),
      ['--kubeconfig', cp.adminKubeconfig, 'apply', '--dry-run=server', '-f', '-'],
      { input: broken },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /4 or 8 bytes/);
  });
});

describe('examples are consistent', () => {
  it('cross-cluster: cluster B is cluster A mirrored (IDs, ports, addresses, cookies)', () => {
    const ta = one<TunnelSpec>('cross-cluster/cluster-a.yaml', 'L2TPTunnel');
    const tb = one<TunnelSpec>('cross-cluster/cluster-b.yaml', 'L2TPTunnel');
    assert.equal(ta.encapsulation, tb.encapsulation);
    assert.equal(ta.local.tunnelID, tb.peer.external?.tunnelID);
    assert.equal(tb.local.tunnelID, ta.peer.external?.tunnelID);
    assert.equal(ta.local.udpPort, tb.peer.external?.udpPort);
    assert.equal(tb.local.udpPort, ta.peer.external?.udpPort);
    assert.equal(ta.local.address, tb.peer.external?.address);
    assert.equal(tb.local.address, ta.peer.external?.address);
    const pa = one<PwSpec>('cross-cluster/cluster-a.yaml', 'Pseudowire');
    const pb = one<PwSpec>('cross-cluster/cluster-b.yaml', 'Pseudowire');
    assert.equal(pa.sessionID, pb.peerSessionID);
    assert.equal(pb.sessionID, pa.peerSessionID);
    assert.deepEqual(pa.cookie, pb.peerCookie);
    assert.deepEqual(pb.cookie, pa.peerCookie);
    assert.equal(pa.l2SpecificSublayer, pb.l2SpecificSublayer);
    // one Secret with both directions, identical in both clusters
    const secret = (f: string) => docs(join(examples, f)).find((o) => o.kind === 'Secret')?.stringData;
    const sa = secret('cross-cluster/cluster-a.yaml') as Record<string, string>;
    assert.deepEqual(sa, secret('cross-cluster/cluster-b.yaml'));
    assert.notEqual(sa[pa.cookie!.secretRef!.key], sa[pa.peerCookie!.secretRef!.key]);
  });

  it('linux peer: linux-peer.sh and linux-peer-static.yaml mirror linux-peer.yaml', async () => {
    const t = one<TunnelSpec>('linux-peer.yaml', 'L2TPTunnel');
    const p = one<PwSpec>('linux-peer.yaml', 'Pseudowire');
    const cfg = parseStaticConfig(readFileSync(join(examples, 'linux-peer-static.yaml'), 'utf8'));
    assert.equal(cfg.tunnels.length, 1);
    const st = cfg.tunnels[0]!;
    const ss = st.sessions[0]!;
    assert.equal(st.tunnelId, t.peer.external?.tunnelID);
    assert.equal(st.peerTunnelId, t.local.tunnelID);
    assert.equal(st.encap, t.encapsulation.toLowerCase());
    assert.equal(st.local, t.peer.external?.address);
    assert.equal(st.remote, t.local.address);
    assert.equal(st.udpSourcePort, t.peer.external?.udpPort);
    assert.equal(st.udpDestinationPort, t.local.udpPort);
    assert.equal(st.udpChecksum, t.udpChecksum ?? true, 'UDP checksums like the cluster side');
    assert.equal(ss.sessionId, p.peerSessionID);
    assert.equal(ss.peerSessionId, p.sessionID);
    assert.equal(ss.cookie, p.peerCookie?.value);
    assert.equal(ss.peerCookie, p.cookie?.value);
    assert.equal(ss.l2specType, p.l2SpecificSublayer?.toLowerCase());
    assert.equal(ss.mtu, p.mtu);

    // the ip l2tp commands say the same (the script is checked by `sh -n` and read, not run: these
    // machines have no kernel L2TP)
    const sh = join(examples, 'linux-peer.sh');
    const syntax = await runCapture('sh', ['-n', sh]);
    assert.equal(syntax.code, 0, syntax.stderr);
    const text = readFileSync(sh, 'utf8').replace(/\\\n\s*/g, ' ');
    const vars = {
      LOCAL: /^LOCAL=(\S+)/m.exec(text)?.[1],
      REMOTE: /^REMOTE=(\S+)/m.exec(text)?.[1],
    };
    const tun = /ip l2tp add tunnel (.*)/.exec(text)?.[1] ?? '';
    const ses = /ip l2tp add session (.*)/.exec(text)?.[1] ?? '';
    const arg = (line: string, k: string) => new RegExp(`\\b${k} "?([^\\s"]+)"?`).exec(line)?.[1];
    assert.equal(Number(arg(tun, 'tunnel_id')), st.tunnelId);
    assert.equal(Number(arg(tun, 'peer_tunnel_id')), st.peerTunnelId);
    assert.equal(arg(tun, 'encap'), st.encap);
    assert.equal(arg(tun, 'local'), '$LOCAL');
    assert.equal(vars.LOCAL, st.local);
    assert.equal(vars.REMOTE, st.remote);
    assert.equal(Number(arg(tun, 'udp_sport')), st.udpSourcePort);
    assert.equal(Number(arg(tun, 'udp_dport')), st.udpDestinationPort);
    assert.equal(arg(tun, 'udp_csum'), st.udpChecksum ? 'on' : 'off');
    assert.equal(Number(arg(ses, 'session_id')), ss.sessionId);
    assert.equal(Number(arg(ses, 'peer_session_id')), ss.peerSessionId);
    assert.equal(arg(ses, 'cookie'), ss.cookie);
    assert.equal(arg(ses, 'peer_cookie'), ss.peerCookie);
    assert.equal(arg(ses, 'l2spec_type'), ss.l2specType);
    assert.equal(arg(ses, 'name'), ss.name);
    assert.match(text, new RegExp(`ip link set ${ss.name} mtu ${ss.mtu} up`));
  });
});
