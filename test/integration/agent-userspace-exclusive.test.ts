// The node agent on the userspace backend with a session TAP the CNI moved into a pod (exclusive
// mode): the TAP's traffic goes through the agent's pump, so a restarted agent must attach to the TAP
// where the pod holds it. Making a new one on the node instead left the pod on a TAP nothing reads.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { AttachmentStore } from '../../datapath/cni/state.js';
import { cookieSession, nodeStateWith, staticPeerOf } from '../harness/nodestate.js';
import { Lab, ipIn, ping, requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { AgentEnv, ifindexIn, stopAgentEnv } from './agent-env.js';

const NODE = 'usxnode1';
const PEER = 'usxpeer1';
const POD = 'usxpod1';
const SUBNET = '10.213.0';
let env: AgentEnv;
const lab = new Lab();

const startAgent = () => env.startAgent(['--backend', 'userspace']);

before(async () => {
  requireRoot();
  env = await AgentEnv.start(lab, NODE, 'usx-agent-', { ns: PEER, prefix: 'usx-u', subnet: SUBNET });
  await lab.netns(POD);
});

after(() => stopAgentEnv(env, lab));

test('a restarted agent reattaches to the TAP a pod holds (exclusive mode), and makes none on the node', async () => {
  await env.applyNodeState(nodeStateWith(NODE, SUBNET, [cookieSession(128, 1128)]));
  const a = startAgent();
  await until('session Up in status', async () =>
    (await env.nodeState()).status?.sessions?.[0]?.state === 'Up' ? true : undefined,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${a.log().slice(-3000)}`);
  });
  const cfg = join(env.dir, 'peer.json');
  writeFileSync(cfg, JSON.stringify(staticPeerOf(SUBNET, 128, 1128, 'l2tpeth9')));
  env.startPeer(PEER, cfg, '--backend', 'userspace');
  await until('peer device', () => ifindexIn(PEER, 'l2tpeth9'));
  await ipIn(PEER, 'addr', 'add', '192.168.213.2/24', 'dev', 'l2tpeth9');

  // what the CNI does for an exclusive attachment: the device into the pod under the pod's name,
  // and a record of it in the agent's state directory
  await ipIn(NODE, 'link', 'set', 'l2tpeth128', 'down');
  await ipIn(NODE, 'link', 'set', 'l2tpeth128', 'netns', POD);
  await ipIn(POD, 'link', 'set', 'l2tpeth128', 'name', 'net1');
  await ipIn(POD, 'addr', 'add', '192.168.213.1/24', 'dev', 'net1');
  await ipIn(POD, 'link', 'set', 'net1', 'up');
  await new AttachmentStore(join(env.dir, 'state')).put({
    v: 1,
    network: 'usx',
    containerID: 'usxcontainer',
    ifname: 'net1',
    netns: `/run/netns/${POD}`,
    mode: 'exclusive',
    pseudowire: { namespace: 'usx', name: 'wire' },
    device: 'l2tpeth128',
    createdAt: new Date().toISOString(),
  });
  assert.ok((await ping(POD, '192.168.213.2', 5, ['-i', '0.2'])) >= 4, 'pod -> peer');

  // the agent dies (SIGKILL: a crash, an OOM kill); the kubelet starts another
  a.proc.kill('SIGKILL');
  await a.exited;
  const b = startAgent();
  await until('the new agent reattached', async () =>
    b.log().includes('"msg":"session reattached to its TAP in a pod"') ? true : undefined,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${b.log().slice(-3000)}`);
  });
  assert.ok((await ping(POD, '192.168.213.2', 5, ['-i', '0.2'])) >= 4, 'pod -> peer after the restart');
  assert.equal(await ifindexIn(NODE, 'l2tpeth128'), undefined, 'no second TAP made on the node');
  assert.ok(!b.log().includes('"msg":"session up"'), 'no session made anew');
  await env.stopAgent(b.proc);
});

test("a pod's namespace the agent cannot open: the session says why and what to set, and no TAP is made on the node", async () => {
  // the runtime keeps this pod's namespace in a directory the datapath pod does not mount
  const store = new AttachmentStore(join(env.dir, 'state'));
  const rec = (await store.list())[0]!;
  await store.put({ ...rec, netns: `/run/usx-unmounted/netns/${POD}` });
  const c = startAgent();
  const failed = await until('the session reports the namespace it cannot open', async () => {
    const s = (await env.nodeState()).status?.sessions?.[0];
    return s?.state === 'Failed' ? s : undefined;
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n${c.log().slice(-3000)}`);
  });
  assert.match(failed.message ?? '', /\/run\/usx-unmounted\/netns\/usxpod1/);
  assert.match(failed.message ?? '', /cni\.netnsDir/);
  assert.equal(await ifindexIn(NODE, 'l2tpeth128'), undefined, 'no TAP made on the node');

  // the mount in place (here: the record names the path the agent sees): the agent attaches
  await store.put({ ...rec, netns: `/run/netns/${POD}` });
  await until('the agent reattached once it could open the namespace', async () =>
    c.log().includes('"msg":"session reattached to its TAP in a pod"') ? true : undefined,
  ).catch((e: Error) => {
    throw new Error(`${e.message}\n${c.log().slice(-3000)}`);
  });
  assert.ok((await ping(POD, '192.168.213.2', 5, ['-i', '0.2'])) >= 4, 'pod -> peer');
  assert.equal(await ifindexIn(NODE, 'l2tpeth128'), undefined, 'no TAP made on the node');
  await env.stopAgent(c.proc);
});
