// A pseudowire's MTU changes while pods are attached: the agent brings them along. Bridge mode: the
// pod's net1 and the host end of its veth (the bridge follows its ports); Exclusive mode: the
// session device the pod holds. Pods attach through the real shim and the agent's CNI socket, the
// MTU changes in the node state as the operator writes it, and the pods' links are read with
// `ip -n <pod> -j link`. A pod whose namespace the agent cannot open is named in its session's
// status while the other pods follow. Once with the userspace backend, once with ebpf.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { probeKernelL2tp } from '../../datapath/backend/kernel/index.js';
import { names } from '../../datapath/cni/netops.js';
import { AttachmentStore } from '../../datapath/cni/state.js';
import { AGENT_SOCKET_DIR } from '../../lib/agent-protocol.js';
import type { NodeSessionSpec } from '../../lib/api/schemas.js';
import { buildShim, CniRig } from '../harness/cnitool.js';
import { cookieSession, nodeStateWith } from '../harness/nodestate.js';
import { Lab, linkIn, requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';
import { AgentEnv, stopAgentEnv } from './agent-env.js';
import { privateBpffs } from './datapath-ebpf-lab.js';

const NODE = 'pmtnode1';
const PEER = 'pmtpeer1';
const SUBNET = '10.217.0';
const NETNS_DIR = '/run/netns';
const lab = new Lab();
let env: AgentEnv;
let rig: CniRig;
let bpffs: string;
const socket = join(AGENT_SOCKET_DIR, `pmtu-${process.pid}`, 'cni.sock');

const sessions = (bridgeId: number, exclusiveId: number, mtu: number): NodeSessionSpec[] => [
  { ...cookieSession(bridgeId, bridgeId + 1000), mtu },
  { ...cookieSession(exclusiveId, exclusiveId + 1000), mtu, mode: 'exclusive' },
];

before(async () => {
  requireRoot();
  await buildShim();
  env = await AgentEnv.start(lab, NODE, 'pmt-agent-', { ns: PEER, prefix: 'pmt-u', subnet: SUBNET });
  rig = await CniRig.create();
  lab.onCleanup(() => rig.cleanup());
  lab.onCleanup(() => rm(join(socket, '..'), { recursive: true, force: true }));
  bpffs = await privateBpffs(lab);
  mkdirSync(join(bpffs, 'node'));
});

after(() => stopAgentEnv(env, lab));

/** One backend: two pods attached, the MTU lowered and raised, one pod's namespace unreachable. */
async function scenario(backend: string[], tag: string, bridgeId: number, exclusiveId: number) {
  const podB = await lab.netns(`pmtb${tag}`);
  const podX = await lab.netns(`pmtx${tag}`);
  await env.applyNodeState(nodeStateWith(NODE, SUBNET, sessions(bridgeId, exclusiveId, 1400)));
  const agent = env.startAgent([...backend, '--cni-socket', socket], {
    KUBE_L2TP_NETNS_DIR: NETNS_DIR,
  });
  try {
    await attachedPodsFollow(agent, podB, podX, backend, bridgeId, exclusiveId);
  } finally {
    await env.stopAgent(agent.proc);
  }
}

async function attachedPodsFollow(
  agent: { log: () => string },
  podB: string,
  podX: string,
  backend: string[],
  bridgeId: number,
  exclusiveId: number,
) {
  const fail = (e: Error): never => {
    throw new Error(`${e.message}\n${agent.log().slice(-4000)}`);
  };
  const status = async () => (await env.nodeState()).status;
  const sessionOf = async (id: number) => (await status())?.sessions?.find((s) => s.sessionId === id);
  await until('both sessions Up at MTU 1400', async () => {
    const s = (await status())?.sessions ?? [];
    return s.length === 2 && s.every((x) => x.state === 'Up' && x.mtu === 1400) ? true : undefined;
  }).catch(fail);

  const attach = async (command: 'ADD' | 'DEL', pod: string, id: number) => {
    const r = await rig.shim(
      {
        CNI_COMMAND: command,
        CNI_CONTAINERID: `pmt-${pod}`,
        CNI_NETNS: `${NETNS_DIR}/${pod}`,
        CNI_IFNAME: 'net1',
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default',
      },
      {
        cniVersion: '1.1.0',
        name: 'pmtnet',
        type: 'kube-l2tp',
        pseudowire: { namespace: 'default', name: `wire-${id}` },
        agentSocket: socket,
      },
    );
    assert.equal(r.code, 0, `${command} ${pod}: ${r.stdout}${r.stderr}`);
  };
  await attach('ADD', podB, bridgeId);
  await attach('ADD', podX, exclusiveId);
  const hostVeth = names.hostVeth(`pmt-${podB}`, 'net1');
  const bridge = names.bridge(bridgeId);
  const mtus = async () => ({
    bridgePod: (await linkIn(podB, 'net1'))?.mtu,
    hostVeth: (await linkIn(NODE, hostVeth))?.mtu,
    bridge: (await linkIn(NODE, bridge))?.mtu,
    sessionDevice: (await linkIn(NODE, `l2tpeth${bridgeId}`))?.mtu,
    exclusivePod: (await linkIn(podX, 'net1'))?.mtu,
  });
  const all = (mtu: number) => ({
    bridgePod: mtu,
    hostVeth: mtu,
    bridge: mtu,
    sessionDevice: mtu,
    exclusivePod: mtu,
  });
  assert.deepEqual(await mtus(), all(1400), 'attached with the session MTU');

  // lowered, then raised: every link of both pods follows
  const reattached = () =>
    (agent.log().match(/"msg":"session reattached to its TAP in a pod"/g) ?? []).length;
  const reattachedBefore = reattached();
  for (const mtu of [1300, 1420]) {
    await env.applyNodeState(nodeStateWith(NODE, SUBNET, sessions(bridgeId, exclusiveId, mtu)));
    await until(`the pods at MTU ${mtu}`, async () =>
      JSON.stringify(await mtus()) === JSON.stringify(all(mtu)) ? true : undefined,
    ).catch((e: Error) => mtus().then((m) => fail(new Error(`${e.message}: ${JSON.stringify(m)}`))));
  }
  assert.match(agent.log(), /"msg":"pod's interface brought to the session's MTU"/);
  // the userspace pump keeps the exclusive pod's TAP through an MTU change (no gap)
  assert.equal(reattached(), reattachedBefore, 'no session reattached to its TAP for an MTU change');

  // the exclusive pod's namespace where the datapath pod has no mount: the session says so and
  // what to set; the bridge pod follows all the same
  const store = new AttachmentStore(join(env.dir, 'state'));
  const rec = await store.get(`pmt-${podX}`, 'net1');
  assert.ok(rec, 'the exclusive attachment is recorded');
  await store.put({ ...rec, netns: `/run/pmt-unmounted/netns/${podX}` });
  await env.applyNodeState(nodeStateWith(NODE, SUBNET, sessions(bridgeId, exclusiveId, 1350)));
  const noted = await until('the exclusive session names what to set', async () => {
    const s = await sessionOf(exclusiveId);
    return s?.message?.includes('cni.netnsDir') ? s : undefined;
  }).catch(fail);
  assert.equal(noted.state, 'Up', 'the session itself is fine');
  assert.match(noted.message ?? '', /1 attached pod keeps MTU 1420 instead of 1350/);
  assert.match(noted.message ?? '', /set the Helm value cni\.netnsDir to \/run\/pmt-unmounted\/netns/);
  assert.match(noted.message ?? '', /the datapath pod mounts \/run\/netns/);
  await until('the bridge pod at MTU 1350', async () =>
    (await linkIn(podB, 'net1'))?.mtu === 1350 ? true : undefined,
  ).catch(fail);
  assert.equal((await linkIn(podX, 'net1'))?.mtu, 1420, 'the unreachable pod is left as it is');
  assert.equal((await sessionOf(bridgeId))?.message, undefined, 'the other session says nothing');

  // the mount in place: the pod follows and the message goes
  await store.put({ ...(await store.get(`pmt-${podX}`, 'net1'))!, netns: `${NETNS_DIR}/${podX}` });
  await until('the exclusive pod at MTU 1350, its session without a message', async () =>
    (await linkIn(podX, 'net1'))?.mtu === 1350 && (await sessionOf(exclusiveId))?.message === undefined
      ? true
      : undefined,
  ).catch(fail);

  // DEL returns the exclusive device to the node with the session's MTU
  await attach('DEL', podB, bridgeId);
  await attach('DEL', podX, exclusiveId);
  assert.equal((await linkIn(NODE, `l2tpeth${exclusiveId}`))?.mtu, 1350);
}

describe("attached pods follow their session's MTU", () => {
  it('userspace backend', () => scenario(['--backend', 'userspace'], 'u1', 151, 152));

  it('ebpf backend', async (t) => {
    if ((await probeKernelL2tp()).available) {
      t.skip('this machine has kernel L2TP: the VM suite covers the kernel backend');
      return;
    }
    await scenario(['--backend', 'ebpf', '--bpffs', join(bpffs, 'node')], 'e1', 161, 162);
  });
});
