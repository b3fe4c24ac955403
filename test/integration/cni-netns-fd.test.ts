// The pod's network namespace reaches the agent as a descriptor, not a path. A runtime may keep pod
// netns where the agent's container cannot see them (containerd with netns_mounts_under_state_dir):
// here the pod netns is bind-mounted on a private tmpfs inside a private mount namespace, and the
// real shim runs there (as it runs in the runtime's mount namespace), while the CNI agent runs in
// the node's network namespace with a mount namespace of its own (ip netns exec). The path does not
// exist for the agent; the attach must work anyway, through the descriptor the shim passes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCapture } from '../../lib/exec.js';
import { Lab, ipIn, requireRoot } from '../harness/netns.js';
import { Agent, CniRig, IP_BIN, cniError, l2tpPlugin } from '../harness/cnitool.js';

const NODE = `cfn${process.pid % 1000}`;
const TAP = 'cftap0';

interface Step {
  code: number;
  stdout: string;
}

describe('CNI attach through a netns descriptor (path invisible to the agent)', { concurrency: 1 }, () => {
  const lab = new Lab();
  let rig: CniRig;
  let agent: Agent;
  let seq = 0;

  const conf = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    cniVersion: '1.0.0',
    name: 'cf-red',
    ...l2tpPlugin(agent, { pseudowire: { namespace: 'cf', name: 'red' } }),
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.77.0.0/24' }]] },
    ...extra,
  });
  const leases = (): string[] => rig.leases('cf-red');
  const nodePorts = async (): Promise<string[]> =>
    (JSON.parse(await ipIn(NODE, '-j', 'link', 'show')) as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => n.startsWith('kl2h'));
  const shimEnv = (command: string, id: string, netns: string): Record<string, string> => ({
    PATH: rig.noNodePath,
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: 'net1',
    CNI_PATH: rig.bin,
    CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=cf', // the pod's namespace, as the runtime says it
  });

  /**
   * In a private mount namespace: a tmpfs at `dir`, a new netns bound on dir/pod, then `steps`
   * (shell, with $NS the netns path and $SHIM the shim). Each step's output is one JSON line.
   */
  const inPrivateMountNs = async (dir: string, steps: string): Promise<Step[]> => {
    const script = [
      'set -e',
      `mount -t tmpfs cfpriv "${dir}"`,
      `NS="${dir}/pod"; SHIM="${join(rig.bin, 'kube-l2tp')}"; IP="${IP_BIN}"`,
      'touch "$NS"',
      'unshare --net="$NS" true',
      'nsenter --net="$NS" "$IP" link set lo up',
      // step NAME ENV...: runs the shim with the config on stdin, prints {"code":..,"stdout":..}
      'step() { set +e; out=$(env -i "$@" "$SHIM" < "$CONF"); rc=$?; set -e;',
      '  printf "%s\\n" "$out" > "$WORK/out";',
      '  printf "{\\"code\\":%d,\\"stdout\\":%s}\\n" "$rc" "$(jq -Rs . < "$WORK/out")"; }',
      steps,
    ].join('\n');
    const r = await runCapture('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], {
      env: { ...process.env, CONF: join(rig.dir, 'conf.json'), WORK: rig.dir },
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, `private mount namespace script failed: ${r.stderr}`);
    return r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Step);
  };
  const envArgs = (e: Record<string, string>): string =>
    Object.entries(e)
      .map(([k, v]) => `${k}="${v}"`)
      .join(' ');

  before(async () => {
    requireRoot();
    rig = await CniRig.forNode(lab, NODE, TAP, 1446);
    agent = await rig.agent(NODE, true, {
      'cf/red': { ifname: TAP, mtu: 1446, tunnelId: 1, sessionId: 2, up: true },
    });
  });
  after(() => lab.cleanup());

  it('ADD, CHECK and DEL work in a netns the agent cannot see', async () => {
    const dir = join(rig.dir, `private${++seq}`);
    await mkdir(dir);
    await writeFile(join(rig.dir, 'conf.json'), JSON.stringify(conf()));
    const nsPath = join(dir, 'pod');
    const id = 'cfvisible1';
    const [add, link, del, after] = await inPrivateMountNs(
      dir,
      [
        `step ${envArgs(shimEnv('ADD', id, '$NS'))}`,
        'printf "{\\"code\\":0,\\"stdout\\":%s}\\n" "$(nsenter --net="$NS" "$IP" -j addr show net1 | jq -Rs .)"',
        `step ${envArgs(shimEnv('DEL', id, '$NS'))}`,
        'printf "{\\"code\\":0,\\"stdout\\":%s}\\n" "$(nsenter --net="$NS" "$IP" -j link show | jq -Rs .)"',
      ].join('\n'),
    );
    assert.equal(
      existsSync(nsPath),
      false,
      'outside the private mount namespace the netns path does not exist',
    );
    assert.equal(add!.code, 0, `ADD: ${add!.stdout} ${agent.stderr.join('')}`);
    const res = JSON.parse(add!.stdout) as {
      interfaces: { name: string; sandbox?: string }[];
      ips: unknown[];
    };
    const pod = res.interfaces.find((i) => i.name === 'net1');
    assert.equal(pod?.sandbox, nsPath, 'the result names the netns by the runtime path');
    assert.equal(res.ips.length, 1);
    const addrs = JSON.parse(link!.stdout) as { mtu: number; addr_info: { local: string }[] }[];
    assert.equal(addrs[0]?.mtu, 1446);
    assert.ok(
      addrs[0]?.addr_info.some((a) => a.local.startsWith('10.77.0.')),
      link!.stdout,
    );
    assert.equal(del!.code, 0, `DEL: ${del!.stdout}`);
    const left = (JSON.parse(after!.stdout) as { ifname: string }[]).map((l) => l.ifname);
    assert.deepEqual(left, ['lo'], 'DEL removed net1 from the pod');
    assert.deepEqual(await nodePorts(), [], 'no node-side veth left');
    assert.deepEqual(leases(), [], 'the address was released');
  });

  it('DEL after the netns is gone succeeds and cleans the node side and the lease', async () => {
    const dir = join(rig.dir, `private${++seq}`);
    await mkdir(dir);
    await writeFile(join(rig.dir, 'conf.json'), JSON.stringify(conf()));
    const id = 'cfgone1';
    const [add] = await inPrivateMountNs(dir, `step ${envArgs(shimEnv('ADD', id, '$NS'))}`);
    assert.equal(add!.code, 0, add!.stdout);
    assert.equal(leases().length, 1);
    // the private mount namespace is gone, and with it the only reference to the pod netns
    const r = await rig.shim(shimEnv('DEL', id, join(dir, 'pod')), conf());
    assert.equal(r.code, 0, `DEL: ${r.stdout} ${r.stderr}`);
    assert.deepEqual(await nodePorts(), []);
    assert.deepEqual(leases(), []);
    const again = await rig.shim(shimEnv('DEL', id, join(dir, 'pod')), conf());
    assert.equal(again.code, 0, 'a second DEL succeeds too');
  });

  it('ADD with a CNI_NETNS that cannot be opened: spec error, nothing made', async () => {
    const cases: [string, string, number, RegExp][] = [
      [
        'missing',
        join(rig.dir, 'cf-no-such-netns'),
        3,
        /CNI_NETNS: network namespace .*cf-no-such-netns does not exist/,
      ],
      ['a regular file', join(rig.dir, 'conf.json'), 4, /CNI_NETNS: .*conf\.json is not a network namespace/],
      ['a directory path below a file', join(rig.dir, 'conf.json', 'x'), 3, /does not exist/],
    ];
    for (const [what, netns, code, msg] of cases) {
      const r = await rig.shim(shimEnv('ADD', 'cfbad1', netns), conf());
      const e = cniError(r);
      assert.equal(r.code, 1, what);
      assert.equal(e?.code, code, `${what}: ${r.stdout}`);
      assert.match(e!.msg, msg, what);
      assert.deepEqual(await nodePorts(), [], `${what}: no node-side veth`);
      assert.deepEqual(leases(), [], `${what}: no lease`);
    }
  });
});
