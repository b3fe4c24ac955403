// The CRDs on a real kube-apiserver: they install, valid objects are accepted, bad objects are
// rejected by schema + CEL with messages a person understands, and the fullest node state takes its
// agent's status within etcd's request limit.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { allCRDs } from '../../lib/api/crdgen.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { ExecError } from '../../lib/exec.js';
import { reportedSessions } from '../../lib/api/node-status.js';
import type { L2TPNodeState } from '../../lib/api/schemas.js';
import { KubeClient } from '../../lib/kube/client.js';
import { buildStatus } from '../../datapath/agent/status.js';
import { fullShardFailing } from '../fakes/objects.js';
import { nodeStatePath } from './operator-env.js';

const A = 'l2tp.kube-l2tp.io/v1alpha1';
const tunnel = (name: string, spec: unknown) => ({
  apiVersion: A,
  kind: 'L2TPTunnel',
  metadata: { name },
  spec,
});
const pw = (name: string, spec: unknown) => ({
  apiVersion: A,
  kind: 'Pseudowire',
  metadata: { name, namespace: 'default' },
  spec,
});
const okTunnel = { local: { node: 'n1' }, peer: { node: 'n2' } };

async function apply(cp: ControlPlane, obj: unknown): Promise<{ ok: boolean; out: string }> {
  try {
    const out = await cp.kubectl(['create', '-f', '-'], { input: JSON.stringify(obj) });
    return { ok: true, out };
  } catch (e) {
    if (e instanceof ExecError) return { ok: false, out: e.stderr };
    throw e;
  }
}

describe('CRDs on a real apiserver', () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
    await cp.kubectl(['apply', '-f', '-'], {
      input: allCRDs()
        .map((c) => YAML.stringify(c))
        .join('---\n'),
    });
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  });
  after(async () => {
    await cp?.stop();
  });

  it('installs the three CRDs with short names and printer columns', async () => {
    const out = await cp.kubectl(['api-resources', '--api-group=l2tp.kube-l2tp.io', '-o', 'wide']);
    for (const s of ['l2tptunnels', 'pseudowires', 'l2tpnodestates', 'l2tun', 'pw', 'l2ns']) {
      assert.match(out, new RegExp(`\\b${s}\\b`), out);
    }
  });

  it('accepts valid objects and applies defaults', async () => {
    const valid = [
      tunnel('ok-incluster', okTunnel),
      tunnel('ok-ip', {
        encapsulation: 'IP',
        local: { node: 'n1', address: '10.0.0.1' },
        peer: { node: 'n3' },
      }),
      tunnel('ok-external', {
        local: { node: 'n1', tunnelID: 42, udpPort: 5000 },
        peer: { external: { address: '2001:db8::7', tunnelID: 45, udpPort: 5001 } },
      }),
      pw('ok-pw', { tunnelRef: { name: 'ok-incluster' } }),
      pw('ok-pw-explicit', {
        tunnelRef: { name: 'ok-external' },
        sessionID: 128,
        peerSessionID: 5196755,
        cookie: { value: '0badcafe' },
        peerCookie: { secretRef: { name: 'cookies' } },
        l2SpecificSublayer: 'Default',
        sequencing: { send: true },
        attachment: { mode: 'Exclusive' },
        mtu: 1400,
      }),
    ];
    for (const o of valid) {
      const r = await apply(cp, o);
      assert.ok(r.ok, `${o.metadata.name} was rejected: ${r.out}`);
    }
    const got = JSON.parse(await cp.kubectl(['get', 'l2tptunnel', 'ok-incluster', '-o', 'json']));
    assert.equal(got.spec.encapsulation, 'UDP');
    assert.equal(got.spec.udpChecksum, true, 'UDP checksums default on');
    const p = JSON.parse(await cp.kubectl(['get', 'pw', 'ok-pw', '-n', 'default', '-o', 'json']));
    assert.equal(p.spec.l2SpecificSublayer, 'Default');
    assert.deepEqual(p.spec.attachment, { mode: 'Bridge' });
    const table = await cp.kubectl(['get', 'l2tun']);
    assert.match(table, /ENCAP\s+LOCAL\s+PEER\s+TUNNELID/);
  });

  const bad: { name: string; obj: unknown; message: RegExp }[] = [
    {
      name: 'zero tunnel ID',
      obj: tunnel('b1', { local: { node: 'n1', tunnelID: 0 }, peer: { node: 'n2' } }),
      message:
        /spec.local.tunnelID: Invalid value: 0: spec.local.tunnelID in body should be greater than or equal to 1/,
    },
    {
      name: 'tunnel ID over 32 bits',
      obj: tunnel('b2', { local: { node: 'n1', tunnelID: 4294967296 }, peer: { node: 'n2' } }),
      message: /tunnelID in body should be less than or equal to 4294967295/,
    },
    {
      name: 'zero session ID',
      obj: pw('b3', { tunnelRef: { name: 't' }, sessionID: 0, peerSessionID: 5 }),
      message: /spec.sessionID in body should be greater than or equal to 1/,
    },
    {
      name: 'cookie of 3 bytes',
      obj: pw('b4', { tunnelRef: { name: 't' }, cookie: { value: 'abcdef' } }),
      message: /a cookie must be 4 or 8 bytes: 8 or 16 hex digits/,
    },
    {
      name: 'cookie that is not hex',
      obj: pw('b5', { tunnelRef: { name: 't' }, cookie: { value: 'xyzxyzxy' } }),
      message: /a cookie must be 4 or 8 bytes/,
    },
    {
      name: 'cookie with both value and secretRef',
      obj: pw('b6', {
        tunnelRef: { name: 't' },
        peerCookie: { value: '01020304', secretRef: { name: 's' } },
      }),
      message: /give exactly one of value or secretRef/,
    },
    {
      name: 'a secretRef name that is not a Secret name',
      obj: pw('b6b', {
        tunnelRef: { name: 't' },
        cookie: { secretRef: { name: '../../kube-system/secrets/x' } },
      }),
      message: /must be a Secret name/,
    },
    {
      name: 'an ipam that names files on the node',
      obj: pw('b6c', { tunnelRef: { name: 't' }, ipam: { type: 'host-local', dataDir: '/etc' } }),
      message: /dataDir and resolvConf name files on the node/,
    },
    {
      name: "a whereabouts ipam naming a kubeconfig (another identity's) on the node",
      obj: pw('b6c2', {
        tunnelRef: { name: 't' },
        ipam: {
          type: 'whereabouts',
          range: '10.9.0.0/24',
          kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' },
        },
      }),
      message:
        /whereabouts: kubernetes \(its kubeconfig\), configuration_path, log_file and etcd_\*_file name files on the node/,
    },
    {
      name: 'a whereabouts ipam naming its log file on the node',
      obj: pw('b6c3', { tunnelRef: { name: 't' }, ipam: { type: 'whereabouts', log_file: '/etc/passwd' } }),
      message: /whereabouts takes them from its own configuration file on the node/,
    },
    {
      name: 'an ipam type outside the allow-list',
      obj: pw('b6d', { tunnelRef: { name: 't' }, ipam: { type: 'bridge' } }),
      message: /ipam\.type/,
    },
    {
      name: 'a tunnel shared with something that is not a namespace',
      obj: tunnel('b6e', { local: { node: 'n1' }, peer: { node: 'n2' }, allowedNamespaces: ['Bad_NS'] }),
      message: /must be a namespace name or "\*"/,
    },
    {
      name: 'UDP port with IP encapsulation',
      obj: tunnel('b7', { encapsulation: 'IP', local: { node: 'n1', udpPort: 5000 }, peer: { node: 'n2' } }),
      message: /udpPort is only valid with encapsulation UDP/,
    },
    {
      name: 'sequencing without the default sublayer',
      obj: pw('b8', { tunnelRef: { name: 't' }, l2SpecificSublayer: 'None', sequencing: { send: true } }),
      message: /sequencing needs l2SpecificSublayer Default/,
    },
    {
      name: 'external peer without a tunnel ID',
      obj: tunnel('b9', {
        local: { node: 'n1', tunnelID: 1, udpPort: 1 },
        peer: { external: { address: '192.0.2.1', udpPort: 9 } },
      }),
      message: /spec.peer.external.tunnelID: Required value/,
    },
    {
      name: 'external peer without an address',
      obj: tunnel('b10', {
        local: { node: 'n1', tunnelID: 1, udpPort: 1 },
        peer: { external: { tunnelID: 2, udpPort: 9 } },
      }),
      message: /spec.peer.external.address: Required value/,
    },
    {
      name: 'external peer without our local tunnel ID',
      obj: tunnel('b11', {
        local: { node: 'n1', udpPort: 1 },
        peer: { external: { address: '192.0.2.1', tunnelID: 2, udpPort: 9 } },
      }),
      message: /a tunnel to an external peer needs an explicit local.tunnelID/,
    },
    {
      name: 'UDP external peer without ports',
      obj: tunnel('b12', {
        local: { node: 'n1', tunnelID: 1 },
        peer: { external: { address: '192.0.2.1', tunnelID: 2 } },
      }),
      message: /a UDP tunnel to an external peer needs local.udpPort and peer.external.udpPort/,
    },
    {
      name: 'peer with both node and external',
      obj: tunnel('b13', {
        local: { node: 'n1', tunnelID: 1 },
        peer: { node: 'n2', external: { address: '192.0.2.1', tunnelID: 2 } },
      }),
      message: /peer must set exactly one of node \(in-cluster peer\) or external/,
    },
    {
      name: 'address that is not an IP',
      obj: tunnel('b14', { local: { node: 'n1', address: 'router.example' }, peer: { node: 'n2' } }),
      message: /spec.local.address: Invalid value: "string": must be an IPv4 or IPv6 address/,
    },
    {
      name: 'tunnel to itself',
      obj: tunnel('b15', { local: { node: 'n1' }, peer: { node: 'n1' } }),
      message: /local.node and peer.node must be different nodes/,
    },
    {
      name: 'only one of the session IDs',
      obj: pw('b16', { tunnelRef: { name: 't' }, sessionID: 7 }),
      message: /give both sessionID and peerSessionID, or neither/,
    },
    {
      name: 'unknown encapsulation',
      obj: tunnel('b17', { encapsulation: 'GRE', local: { node: 'n1' }, peer: { node: 'n2' } }),
      message: /spec.encapsulation: Unsupported value: "GRE": supported values: "UDP", "IP"/,
    },
    {
      name: 'MTU below 68',
      obj: pw('b18', { tunnelRef: { name: 't' }, mtu: 40 }),
      message: /spec.mtu in body should be greater than or equal to 68/,
    },
    {
      name: 'unknown attachment mode',
      obj: pw('b19', { tunnelRef: { name: 't' }, attachment: { mode: 'Macvlan' } }),
      message: /spec.attachment.mode: Unsupported value: "Macvlan"/,
    },
  ];

  it(`rejects ${bad.length} bad objects with readable messages`, async () => {
    const failures: string[] = [];
    for (const b of bad) {
      const r = await apply(cp, b.obj);
      if (r.ok) failures.push(`${b.name}: was accepted`);
      else if (!b.message.test(r.out)) failures.push(`${b.name}: message was: ${r.out.trim()}`);
    }
    assert.deepEqual(failures, []);
  });

  it('rejects changes to immutable fields', async () => {
    await assert.rejects(
      cp.kubectl([
        'patch',
        'l2tptunnel',
        'ok-incluster',
        '--type=merge',
        '-p',
        '{"spec":{"local":{"node":"other"}}}',
      ]),
      /local.node is immutable/,
    );
    await assert.rejects(
      cp.kubectl([
        'patch',
        'pw',
        'ok-pw',
        '-n',
        'default',
        '--type=merge',
        '-p',
        '{"spec":{"tunnelRef":{"name":"x"}}}',
      ]),
      /tunnelRef is immutable/,
    );
  });

  it('takes the status of a full node state whose every session failed, where a list of each would be refused', async () => {
    const { spec, report } = fullShardFailing('full-shard');
    const path = nodeStatePath('full-shard');
    const admin = KubeClient.fromFile(cp.adminKubeconfig);
    try {
      await admin.create(nodeStatePath(), {
        apiVersion: A,
        kind: 'L2TPNodeState',
        metadata: { name: 'full-shard' },
        spec,
      });
      const status = buildStatus({
        generation: 1,
        backend: 'ebpf',
        backendReason: 'test',
        agentVersion: 'test',
        report,
        counters: new Map(),
        now: new Date().toISOString(),
      });
      // every failed session listed one by one: more than etcd takes in one request
      const eachListed = {
        ...status,
        tunnels: status.tunnels?.map(({ unlisted: _u, ...t }) => t),
        sessions: report.sessions.map((x) => ({
          pseudowire: x.pseudowire!,
          tunnelId: x.tunnelId,
          sessionId: x.sessionId,
          ifname: x.ifname,
          state: 'Failed' as const,
          mtu: x.mtu,
          message: x.error!,
        })),
      };
      await assert.rejects(admin.patch(`${path}/status`, { status: eachListed }), /too large/);
      await admin.patch(`${path}/status`, { status });
      const got = await admin.get<L2TPNodeState>(path);
      const sessions = reportedSessions(got);
      assert.equal(sessions.length, report.sessions.length);
      assert.ok(sessions.every((x) => x.state === 'Failed' && x.message && x.pseudowire));
      assert.equal(got.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'SessionsFailed');
    } finally {
      await admin.delete(path).catch(() => undefined);
      admin.close();
    }
  });
});
