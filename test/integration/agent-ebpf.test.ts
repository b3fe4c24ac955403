// The node agent with `--backend auto` on a node without kernel L2TP but with BPF and a bpffs: it
// picks the ebpf backend and says why in the node state, carries traffic to an ebpf static-mode peer,
// reports counters, follows l2tpethN into another network namespace (exclusive mode moves it into a
// pod) and back, and a restarted agent adopts programs, maps and devices.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_SA, DEFAULT_NAMESPACE, rbacObjects, serviceAccountUser } from '../../lib/api/rbac.js';
import { API_VERSION } from '../../lib/api/schemas.js';
import type { L2TPNodeState, NodeStateSpec } from '../../lib/api/schemas.js';
import { probeKernelL2tp } from '../../datapath/backend/kernel/index.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { bridgeLoopbackPort } from '../harness/loopback-bridge.js';
import { cookieSession } from '../harness/nodestate.js';
import { Lab, ipIn, ping, requireRoot } from '../harness/netns.js';
import { sleep, until } from '../harness/wait.js';
import { runCapture } from '../../lib/exec.js';
import { privateBpffs } from './datapath-ebpf-lab.js';

const NODE = 'ebanode1';
const PEER = 'ebapeer1';
const POD = 'ebapod1';
const repo = process.cwd();
let cp: ControlPlane;
const lab = new Lab();
let dir: string;
let bpffs: string;
let agentKubeconfig: string;
const procs: ChildProcess[] = [];

function startAgent(): { proc: ChildProcess; log: () => string } {
  let out = '';
  const proc = spawn(
    'ip',
    [
      ...['netns', 'exec', NODE, process.execPath, join(repo, 'dist/datapath/main.js'), 'agent'],
      ...['--node-name', NODE, '--backend', 'auto', '--bpffs', join(bpffs, 'node')],
      ...['--kubeconfig', agentKubeconfig],
      ...['--cni-socket', join(dir, 'cni.sock'), '--cni-bin-dir', join(dir, 'bin')],
      ...['--cni-conf-dir', join(dir, 'conf'), '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      ...['--cni-state-dir', join(dir, 'state'), '--resync-seconds', '1', '--status-counter-seconds', '2'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  procs.push(proc);
  return { proc, log: () => out };
}

async function stopAgent(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

const spec: NodeStateSpec = {
  nodeName: NODE,
  tunnels: [
    {
      name: 'red',
      tunnelId: 42,
      peerTunnelId: 45,
      encap: 'udp',
      local: '10.206.0.1',
      remote: '10.206.0.2',
      udpSourcePort: 5000,
      udpDestinationPort: 5001,
      udpChecksum: false,
      sessions: [cookieSession(128, 1128)],
    },
  ],
};

async function nodeState(): Promise<L2TPNodeState> {
  return JSON.parse(await cp.kubectl(['get', 'l2tpnodestates', NODE, '-o', 'json'])) as L2TPNodeState;
}

const ifindex = async (ns: string, dev: string) => {
  const r = await runCapture('ip', ['-n', ns, '-o', 'link', 'show', dev]);
  return r.code === 0 ? Number(r.stdout.split(':')[0]) : undefined;
};

before(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'eb-agent-'));
  cp = await startControlPlane();
  await cp.kubectl(['apply', '-f', join(repo, 'crds')]);
  await cp.kubectl(['create', 'namespace', DEFAULT_NAMESPACE]);
  await cp.kubectl(['apply', '-f', '-'], {
    input: rbacObjects()
      .map((o) => JSON.stringify(o))
      .join('\n'),
  });
  agentKubeconfig = await cp.kubeconfigFor({ user: serviceAccountUser(DEFAULT_NAMESPACE, AGENT_SA) });
  bpffs = await privateBpffs(lab);
  mkdirSync(join(bpffs, 'node'));
  mkdirSync(join(bpffs, 'peer'));
  await lab.netns(NODE);
  await lab.netns(PEER);
  await lab.netns(POD);
  await bridgeLoopbackPort(lab, NODE, Number(new URL(cp.url).port), dir);
  await lab.veth(
    { ns: NODE, name: 'eba-u0', addr: '10.206.0.1/24' },
    { ns: PEER, name: 'eba-u1', addr: '10.206.0.2/24' },
  );
});

after(async () => {
  for (const p of procs) await stopAgent(p);
  await lab.cleanup();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('agent on auto picks ebpf, forwards, follows a moved device, adopts on restart', async (t) => {
  const kernel = await probeKernelL2tp();
  if (kernel.available) {
    t.skip('this machine has kernel L2TP: auto picks the kernel backend');
    return;
  }
  const obj = { apiVersion: API_VERSION, kind: 'L2TPNodeState', metadata: { name: NODE }, spec };
  await cp.kubectl(['apply', '--server-side', '--field-manager=test-operator', '-f', '-'], {
    input: JSON.stringify(obj),
  });
  const a = startAgent();
  const st = await until('session Up in status', async () => {
    const s = await nodeState();
    return s.status?.sessions?.[0]?.state === 'Up' ? s : undefined;
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n${a.log().slice(-3000)}`);
  });
  assert.equal(st.status?.backend, 'ebpf');
  assert.match(
    st.status?.backendReason ?? '',
    /^auto: kernel L2TP unavailable \(.+\); eBPF programs loaded$/,
  );
  assert.equal(st.status?.sessions?.[0]?.mtu, 1438, '8-byte cookie over UDP/IPv4');

  // the far side: the ebpf backend in static mode
  const cfg = join(dir, 'peer.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      tunnels: [
        {
          tunnelId: 45,
          peerTunnelId: 42,
          encap: 'udp',
          local: '10.206.0.2',
          remote: '10.206.0.1',
          udpSourcePort: 5001,
          udpDestinationPort: 5000,
          sessions: [
            {
              sessionId: 1128,
              peerSessionId: 128,
              name: 'l2tpeth9',
              cookie: '1112131415161718',
              peerCookie: '0102030405060708',
              l2specType: 'default',
            },
          ],
        },
      ],
    }),
  );
  const peerArgs = ['static', '--config', cfg, '--backend', 'ebpf', '--bpffs', join(bpffs, 'peer')];
  const peer = spawn(
    'ip',
    ['netns', 'exec', PEER, process.execPath, join(repo, 'dist/datapath/main.js'), ...peerArgs],
    {
      stdio: 'ignore',
    },
  );
  procs.push(peer);
  await until('peer device', () => ifindex(PEER, 'l2tpeth9'));
  await ipIn(PEER, 'addr', 'add', '192.168.206.2/24', 'dev', 'l2tpeth9');
  await ipIn(NODE, 'addr', 'add', '192.168.206.1/24', 'dev', 'l2tpeth128');
  assert.ok((await ping(NODE, '192.168.206.2', 5, ['-i', '0.2'])) >= 4, 'node -> peer');
  await until(
    'counters in status',
    async () => {
      const c = (await nodeState()).status?.sessions?.[0]?.counters;
      return c && c.rxPackets >= 4 && c.txPackets >= 4 ? c : undefined;
    },
    45_000,
  );

  // exclusive mode moves l2tpeth128 into a pod: received frames reach it through its peer from the
  // next pass on (resync 1 s here)
  await ipIn(NODE, 'link', 'set', 'l2tpeth128', 'netns', POD);
  await ipIn(POD, 'addr', 'add', '192.168.206.1/24', 'dev', 'l2tpeth128');
  await ipIn(POD, 'link', 'set', 'l2tpeth128', 'up');
  await sleep(2500);
  assert.ok((await ping(POD, '192.168.206.2', 5, ['-i', '0.2'])) >= 4, 'pod -> peer with the device moved');
  const moved = await nodeState();
  assert.equal(moved.status?.sessions?.[0]?.state, 'Up', 'a moved device is not a missing one');
  // and back, as CNI DEL returns it
  await ipIn(POD, 'link', 'set', 'l2tpeth128', 'netns', NODE);
  await ipIn(NODE, 'addr', 'add', '192.168.206.1/24', 'dev', 'l2tpeth128');
  await ipIn(NODE, 'link', 'set', 'l2tpeth128', 'up');
  await sleep(2500);
  assert.ok((await ping(NODE, '192.168.206.2', 5, ['-i', '0.2'])) >= 4, 'node -> peer after the return');

  // restart: the new agent adopts what the old one left
  const before128 = await ifindex(NODE, 'l2tpeth128');
  await stopAgent(a.proc);
  assert.ok((await ping(NODE, '192.168.206.2', 3, ['-i', '0.2'])) >= 3, 'forwarding with no agent');
  const b = startAgent();
  await until('the new agent adopted', async () =>
    b.log().includes('"msg":"session adopted"') ? true : undefined,
  );
  assert.ok(b.log().includes('"msg":"pinned programs and maps adopted"'), 'programs and maps adopted');
  assert.ok(!b.log().includes('"msg":"session up"'), 'no session re-created');
  assert.equal(await ifindex(NODE, 'l2tpeth128'), before128, 'same device');
  await stopAgent(b.proc);
  await stopAgent(peer);
});
