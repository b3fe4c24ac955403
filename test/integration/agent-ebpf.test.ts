// The node agent with `--backend auto` on a node without kernel L2TP but with BPF and a bpffs: it
// picks the ebpf backend and says why in the node state, carries traffic to an ebpf static-mode peer,
// reports counters, follows l2tpethN into another network namespace (exclusive mode moves it into a
// pod) and back, and a restarted agent adopts programs, maps and devices.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeKernelL2tp } from '../../datapath/backend/kernel/index.js';
import { cookieSession, nodeStateWith, staticPeerOf } from '../harness/nodestate.js';
import { Lab, ipIn, linkUpIn, ping, requireRoot } from '../harness/netns.js';
import { sleep, until } from '../harness/wait.js';
import { AgentEnv, ifindexIn, stopAgentEnv } from './agent-env.js';
import { privateBpffs } from './datapath-ebpf-lab.js';

const NODE = 'ebanode1';
const PEER = 'ebapeer1';
const POD = 'ebapod1';
let env: AgentEnv;
const lab = new Lab();
let bpffs: string;

const startAgent = () => env.startAgent(['--backend', 'auto', '--bpffs', join(bpffs, 'node')]);

const stopAgent = (p: ChildProcess) => env.stopAgent(p);

const spec = nodeStateWith(NODE, '10.206.0', [cookieSession(128, 1128)]);

const nodeState = () => env.nodeState();

const ifindex = ifindexIn;

before(async () => {
  requireRoot();
  env = await AgentEnv.start(lab, NODE, 'eb-agent-', { ns: PEER, prefix: 'eba-u', subnet: '10.206.0' });
  bpffs = await privateBpffs(lab);
  mkdirSync(join(bpffs, 'node'));
  mkdirSync(join(bpffs, 'peer'));
  await lab.netns(POD);
});

after(() => stopAgentEnv(env, lab));

test('agent on auto picks ebpf, forwards, follows a moved device, adopts on restart', async (t) => {
  const kernel = await probeKernelL2tp();
  if (kernel.available) {
    t.skip('this machine has kernel L2TP: auto picks the kernel backend');
    return;
  }
  await env.applyNodeState(spec);
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
  const cfg = join(env.dir, 'peer.json');
  writeFileSync(cfg, JSON.stringify(staticPeerOf('10.206.0', 128, 1128, 'l2tpeth9')));
  const peer = env.startPeer(PEER, cfg, '--backend', 'ebpf', '--bpffs', join(bpffs, 'peer'));
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

  // both ends of the pair set down by hand come up again on the next pass, as the kernel
  // backend's devices do (resync 1 s here)
  for (const dev of ['l2tpeth128', 'l2tpx80']) await ipIn(NODE, 'link', 'set', dev, 'down');
  for (const dev of ['l2tpeth128', 'l2tpx80'])
    await until(`${dev} up again`, async () => ((await linkUpIn(NODE, dev)) ? true : undefined), 10_000);
  assert.equal(await ifindex(NODE, 'l2tpeth128'), before128, 'brought up, not made anew');
  assert.ok((await ping(NODE, '192.168.206.2', 5, ['-i', '0.2'])) >= 4, 'node -> peer once up again');

  // counters live at a slot of a per-CPU array that the session's configuration names: a new
  // session taking the slot of a removed one (the lowest free) starts from zero
  const counted = (await nodeState()).status?.sessions?.[0]?.counters;
  assert.ok((counted?.rxPackets ?? 0) > 0, 'the adopted session kept its counters');
  await env.applyNodeState(nodeStateWith(NODE, '10.206.0', []));
  await until('session 128 removed', async () =>
    (await nodeState()).status?.sessions?.length === 0 ? true : undefined,
  );
  await env.applyNodeState(nodeStateWith(NODE, '10.206.0', [cookieSession(129, 1129)]));
  const fresh = await until('session 129 with counters', async () => {
    const s = (await nodeState()).status?.sessions?.find((x) => x.sessionId === 129);
    return s?.state === 'Up' && s.counters ? s.counters : undefined;
  });
  // nothing reaches session 129 (the peer knows 128 only); what l2tpeth129 itself sends may count
  assert.deepEqual(
    [fresh.rxPackets, fresh.rxBytes, fresh.rxErrors],
    [0, 0, 0],
    `a new session's counters start from zero: ${JSON.stringify(fresh)}`,
  );
  await stopAgent(b.proc);
  await stopAgent(peer);
});
