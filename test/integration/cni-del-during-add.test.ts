// A DEL that reaches the agent while the ADD of the same attachment (container ID + ifname) is still
// running: a runtime whose ADD timed out, or that was killed and tears the sandbox down, sends DEL
// at once, and the agent may still be inside the ADD. The DEL must see the ADD's work, not run
// beside it: otherwise it finds no record, removes nothing, and the ADD then finishes and leaves a
// pod link, a node-side port, an address lease and a record that nothing removes.
//
// The ADD is held inside its IPAM delegate (a wrapper around the real host-local that waits for a
// file), the DEL is sent through the real shim to the real agent CNI server, then the ADD is let go.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunResult } from '../../lib/exec.js';
import { names } from '../../datapath/cni/netops.js';
import { Agent, CniRig, POD_NAMESPACE, SYSTEM_CNI_DIR, l2tpPlugin } from '../harness/cnitool.js';
import { Lab, ipIn, requireRoot } from '../harness/netns.js';
import { until } from '../harness/wait.js';

const NODE = `ca2n${process.pid % 1000}`;
const TAP = 'ca2tap0';

describe('CNI DEL while the ADD of the same attachment is in flight', { concurrency: 1 }, () => {
  const lab = new Lab();
  let rig: CniRig;
  let agent: Agent;
  const gate = (f: string): string => join(rig.dir, f);

  before(async () => {
    requireRoot();
    rig = await CniRig.forNode(lab, NODE, TAP, 1446);
    // host-local, except that the first call of the command named in gate-command announces itself
    // and waits for the test's word
    const hostLocal = join(rig.bin, 'host-local');
    await rm(hostLocal);
    await writeFile(
      hostLocal,
      [
        '#!/bin/sh',
        `read -r held < "${gate('gate-command')}"`,
        `if [ "$CNI_COMMAND" = "$held" ] && /bin/mkdir "${gate('gate-taken')}" 2>/dev/null; then`,
        `  : > "${gate('gate-started')}"`,
        `  while [ ! -e "${gate('gate-go')}" ]; do /bin/sleep 0.05; done`,
        'fi',
        `exec "${join(SYSTEM_CNI_DIR, 'host-local')}" "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(hostLocal, 0o755);
    agent = await rig.agent(NODE, true, {
      [`${POD_NAMESPACE}/ca2-wire`]: { ifname: TAP, mtu: 1446, tunnelId: 1, sessionId: 7, up: true },
    });
  });
  after(() => lab.cleanup());

  /** What is left of attachment `id` (in `pod`) on the node, in the pod, in IPAM and in the agent's records. */
  const leftovers = async (id: string, pod: string) => ({
    podLinks: (JSON.parse(await ipIn(pod, '-j', 'link', 'show')) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n !== 'lo'),
    nodePorts: (JSON.parse(await ipIn(NODE, '-j', 'link', 'show')) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n === names.hostVeth(id, 'net1')),
    leases: rig.leases(`ca2net-${id}`),
    records: (existsSync(agent.stateDir) ? readdirSync(agent.stateDir) : []).filter((f) => f.startsWith(id)),
  });

  /**
   * ADD, held where `held` (the IPAM delegate's command) first runs; DEL meanwhile; then the ADD is
   * let go. Both must succeed (the ADD was not broken by the DEL) and nothing may be left.
   */
  const raceDelIntoAdd = async (id: string, held: 'VERSION' | 'ADD'): Promise<void> => {
    for (const f of ['gate-taken', 'gate-started', 'gate-go'])
      await rm(gate(f), { recursive: true, force: true });
    await writeFile(gate('gate-command'), `${held}\n`);
    const pod = await lab.netns(`ca2p${process.pid % 1000}${id.slice(-1)}`);
    const conf = {
      cniVersion: '1.1.0',
      name: `ca2net-${id}`,
      ...l2tpPlugin(agent, { pseudowire: { namespace: POD_NAMESPACE, name: 'ca2-wire' } }),
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.92.0.0/24' }]] },
    };
    const env = (command: string): Record<string, string> => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: `/run/netns/${pod}`,
      CNI_IFNAME: 'net1',
      CNI_PATH: rig.bin,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE}`,
    });
    const add = rig.shim(env('ADD'), conf);
    await until(`the ADD is held in its IPAM delegate's ${held}`, () =>
      Promise.resolve(existsSync(gate('gate-started'))),
    );
    let delDone: RunResult | undefined;
    const del = rig.shim(env('DEL'), conf).then((r) => (delDone = r));
    // either the DEL ran beside the ADD and is over, or the agent holds it behind the ADD
    await until('the DEL answered or is held', () =>
      Promise.resolve(
        delDone !== undefined ||
          (agent.stderr.join('').includes(`"containerID":"${id}"`) &&
            agent.stderr.join('').includes('waits for the command in flight')),
      ),
    );
    await writeFile(gate('gate-go'), '');
    const [a, d] = await Promise.all([add, del]);
    assert.deepEqual(
      {
        add: a.code === 0 ? 'ok' : a.stdout.trim(),
        del: d.code === 0 ? 'ok' : d.stdout.trim(),
        ...(await leftovers(id, pod)),
      },
      { add: 'ok', del: 'ok', podLinks: [], nodePorts: [], leases: [], records: [] },
    );
  };

  it('a DEL that comes before the ADD made anything waits for it, then removes all of it', () =>
    raceDelIntoAdd('ca2race1', 'VERSION'));

  it('a DEL that comes while the ADD waits for its address does not break the ADD, and removes all of it', () =>
    raceDelIntoAdd('ca2race2', 'ADD'));
});
