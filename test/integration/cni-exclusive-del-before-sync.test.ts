// Exclusive mode: the DEL that returns the session device to the node comes right after an agent
// restart, before the new agent's first sync (a DEL the shim deferred while no agent ran is served
// even before the socket listens). The agent cannot say the session's MTU yet; the device must still
// come back with it (from the attachment record), not with a default that is larger than what the
// pseudowire carries.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, CniRig, POD_NAMESPACE, l2tpPlugin } from '../harness/cnitool.js';
import { Lab, ipIn, requireRoot } from '../harness/netns.js';

const NODE = `ca2xn${process.pid % 1000}`;
const POD = `ca2xp${process.pid % 1000}`;
const TAP = 'ca2xtap0';
const SESSION_MTU = 1446;

const linkOf = async (ns: string, name: string): Promise<{ ifname: string; mtu: number } | undefined> =>
  (JSON.parse(await ipIn(ns, '-j', 'link', 'show')) as { ifname: string; mtu: number }[]).find(
    (l) => l.ifname === name,
  );

describe('CNI exclusive-mode DEL before the agent has synced', () => {
  const lab = new Lab();
  let rig: CniRig;
  let agent: Agent;
  const pws = {
    [`${POD_NAMESPACE}/ca2x-wire`]: {
      ifname: TAP,
      mtu: SESSION_MTU,
      tunnelId: 1,
      sessionId: 8,
      up: true,
      mode: 'exclusive' as const,
    },
  };

  before(async () => {
    requireRoot();
    rig = await CniRig.forNode(lab, NODE, TAP, SESSION_MTU);
    await lab.netns(POD);
    agent = await rig.agent(NODE, true, pws);
  });
  after(() => lab.cleanup());

  it("returns the device to the node with the session's MTU", async () => {
    const conf = {
      cniVersion: '1.1.0',
      name: 'ca2xnet',
      // the pod asks for less than the session carries: that is not what the node gets back
      ...l2tpPlugin(agent, { pseudowire: { namespace: POD_NAMESPACE, name: 'ca2x-wire' }, mtu: 1400 }),
    };
    const env = (command: string): Record<string, string> => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: 'ca2xclusive1',
      CNI_NETNS: `/run/netns/${POD}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE}`,
    });
    const add = await rig.shim(env('ADD'), conf);
    assert.equal(add.code, 0, add.stdout);
    assert.equal((await linkOf(POD, 'net1'))?.mtu, 1400, 'in the pod, with the MTU the pod asked for');
    assert.equal(await linkOf(NODE, TAP), undefined, 'gone from the node');

    // the agent restarts; the new one has not synced (its resolver knows no pseudowire yet)
    await agent.stop();
    agent = await rig.agent(NODE, false, {});
    const del = await rig.shim(env('DEL'), conf);
    assert.equal(del.code, 0, del.stdout);
    assert.equal(await linkOf(POD, 'net1'), undefined, 'gone from the pod');
    assert.equal((await linkOf(NODE, TAP))?.mtu, SESSION_MTU, "back on the node with the session's MTU");
  });
});
