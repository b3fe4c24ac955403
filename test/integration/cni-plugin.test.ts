// The kube-l2tp CNI plugin end to end: the real libcni client (cnitool), the native shim executable
// run with no node on PATH, CNI agents inside "node" network namespaces, pods as network
// namespaces, and Debian's host-local / static / loopback plugins as delegates and chain partners.
// "l2tpeth" devices are TAPs (the userspace datapath makes TAPs), and for pods on two nodes the
// pseudowire is stood in for by a veth pair between the two node namespaces: the packet pump that
// carries a real pseudowire has its own tests; here the subject is the CNI attachment on each end.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFERRED_DEL_DIR } from '../../lib/agent-protocol.js';
import { runCapture } from '../../lib/exec.js';
import { names } from '../../datapath/cni/netops.js';
import { HARDENED_SYSCTLS } from '../../lib/netdev-hardening.js';
import { deviceSysctlsIn, Lab, ip, ipIn, ping, requireRoot } from '../harness/netns.js';
import {
  Agent,
  CniRig,
  SHIM,
  buildShim,
  cniError,
  l2tpPlugin,
  POD_NAMESPACE,
  type PseudowireEntry,
} from '../harness/cnitool.js';

const N1 = 'kcn1';
const N2 = 'kcn2';
const RED: PseudowireEntry = { ifname: 'kcl2tp0', mtu: 1400, tunnelId: 10, sessionId: 20, up: true };
const BLUE: PseudowireEntry = {
  ifname: 'kcl2tp1',
  mtu: 1446,
  tunnelId: 10,
  sessionId: 21,
  up: true,
  mode: 'exclusive',
};
const GREY: PseudowireEntry = { ifname: 'kcl2tp9', mtu: 1446, tunnelId: 10, sessionId: 99, up: true };
/** What a runtime passes: pods of the pseudowires' namespace. */
const POD_ARGS = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NAMESPACE}`;
const GREEN_A: PseudowireEntry = { ifname: 'kcpwA', mtu: 1446, tunnelId: 11, sessionId: 30, up: true };
const GREEN_B: PseudowireEntry = { ifname: 'kcpwB', mtu: 1446, tunnelId: 11, sessionId: 30, up: true };
const PWS1 = { 'kc/red-wire': RED, 'kc/blue-wire': BLUE, 'kc/green-wire': GREEN_A };
const VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;

/** cnitool's container ID for a netns path. */
const cnitoolId = (netnsPath: string): string =>
  `cnitool-${createHash('sha512').update(netnsPath).digest('hex').slice(0, 20)}`;

const links = async (
  ns: string,
): Promise<{ ifname: string; master?: string; mtu: number; address: string }[]> =>
  JSON.parse(await ipIn(ns, '-j', 'link', 'show')) as {
    ifname: string;
    master?: string;
    mtu: number;
    address: string;
  }[];
const podPorts = async (ns: string): Promise<string[]> =>
  (await links(ns)).filter((l) => l.ifname.startsWith('kl2h')).map((l) => l.ifname);

describe('kube-l2tp CNI plugin (cnitool, shim, agent)', { concurrency: 1 }, () => {
  const lab = new Lab();
  let rig: CniRig;
  let a1: Agent;
  let a2: Agent;
  let podSeq = 0;
  const pod = async (): Promise<string> => lab.netns(`kcp${process.pid % 1000}x${++podSeq}`);
  const hostLocal = (subnet: string, extra: Record<string, unknown> = {}) => ({
    type: 'host-local',
    ranges: [[{ subnet, ...extra }]],
  });
  const leases = (net: string): string[] => rig.leases(net);

  before(async () => {
    requireRoot();
    await buildShim();
    rig = await CniRig.create();
    lab.onCleanup(() => rig.cleanup());
    await lab.netns(N1);
    await lab.netns(N2);
    for (const [ns, d] of [
      [N1, RED],
      [N1, BLUE],
    ] as const) {
      await ipIn(ns, 'tuntap', 'add', 'dev', d.ifname, 'mode', 'tap');
      await ipIn(ns, 'link', 'set', d.ifname, 'mtu', String(d.mtu), 'up');
    }
    // the stand-in for the green pseudowire between node 1 and node 2
    await ip(
      'link',
      'add',
      GREEN_A.ifname,
      'netns',
      N1,
      'mtu',
      '1446',
      'type',
      'veth',
      'peer',
      'name',
      GREEN_B.ifname,
      'netns',
      N2,
      'mtu',
      '1446',
    );
    a1 = await rig.agent(N1, true, PWS1);
    a2 = await rig.agent(N2, true, { 'kc/green-wire': GREEN_B });
  });
  after(async () => {
    await lab.cleanup();
  });

  it('is a static executable and runs with no node on PATH', async () => {
    const which = await runCapture('/bin/sh', ['-c', 'command -v node'], { env: { PATH: rig.noNodePath } });
    assert.notEqual(which.code, 0, 'node must not be reachable on the test PATH');
    const ldd = await runCapture('ldd', [SHIM]);
    assert.match(ldd.stdout + ldd.stderr, /not a dynamic executable|statically linked/);
  });

  it('answers VERSION itself for every supported version', async () => {
    for (const v of VERSIONS) {
      const r = await rig.shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: v });
      assert.equal(r.code, 0);
      assert.deepEqual(JSON.parse(r.stdout), { cniVersion: v, supportedVersions: [...VERSIONS] });
    }
    const none = await rig.shim({ CNI_COMMAND: 'VERSION' }, '');
    assert.equal(JSON.parse(none.stdout).cniVersion, '1.1.0');
  });

  for (const v of VERSIONS) {
    it(`cniVersion ${v}: ADD, CHECK, DEL, DEL (host-local)`, async () => {
      const net = `kcv${v.replaceAll('.', '')}`;
      await rig.network(net, v, [l2tpPlugin(a1, { ipam: hostLocal('10.202.2.0/24') })]);
      const p = await pod();
      const add = await rig.cnitool('add', net, p, { node: N1 });
      assert.equal(add.code, 0, add.stderr);
      const res = JSON.parse(add.stdout);
      assert.equal(res.cniVersion, v);
      const iface = res.interfaces[2];
      assert.equal(iface.name, 'net1');
      assert.equal(iface.sandbox, `/run/netns/${p}`);
      assert.equal(res.ips.length, 1);
      assert.equal(res.ips[0].interface, 2);
      if (v === '0.4.0') {
        assert.equal(res.ips[0].version, '4');
        assert.equal(iface.mtu, undefined);
      } else {
        assert.equal(iface.mtu, RED.mtu);
      }
      const inPod = (await links(p)).find((l) => l.ifname === 'net1');
      assert.ok(inPod);
      assert.equal(inPod.mtu, RED.mtu);
      assert.equal(inPod.address, iface.mac);
      assert.match(
        await ipIn(p, 'addr', 'show', 'net1'),
        new RegExp(res.ips[0].address.replace(/\./g, '\\.')),
      );
      assert.equal(leases(net).length, 1);

      const check = await rig.cnitool('check', net, p, { node: N1 });
      assert.equal(check.code, 0, check.stderr);
      for (let i = 0; i < 2; i++) {
        const del = await rig.cnitool('del', net, p, { node: N1 });
        assert.equal(del.code, 0, `DEL #${i + 1}: ${del.stderr}`);
      }
      assert.equal(
        (await links(p)).find((l) => l.ifname === 'net1'),
        undefined,
      );
      assert.deepEqual(await podPorts(N1), []);
      assert.equal(leases(net).length, 0);
    });
  }

  it('bridge mode: two pods on one node on the same pseudowire talk', async () => {
    await rig.network('kcred', '1.0.0', [l2tpPlugin(a1, { ipam: hostLocal('10.202.3.0/24') })]);
    const [p1, p2] = [await pod(), await pod()];
    const r1 = await rig.cnitool('add', 'kcred', p1, { node: N1 });
    const r2 = await rig.cnitool('add', 'kcred', p2, { node: N1 });
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    const ip2 = (JSON.parse(r2.stdout).ips[0].address as string).split('/')[0]!;
    const bridge = JSON.parse(r1.stdout).interfaces[0].name as string;
    const ports = (await links(N1)).filter((l) => l.master === bridge).map((l) => l.ifname);
    assert.ok(ports.includes(RED.ifname), `the l2tpeth device is a port of ${bridge}: ${ports.join(',')}`);
    assert.equal(ports.length, 3);
    // the bridge and the pods' node-side veth ends: nothing of the node reachable through them
    for (const dev of [bridge, ...ports.filter((x) => x !== RED.ifname)])
      assert.deepEqual(await deviceSysctlsIn(N1, dev), HARDENED_SYSCTLS, `${dev} hardened`);
    assert.equal(await ping(p1, ip2, 3), 3);
    for (const p of [p1, p2]) assert.equal((await rig.cnitool('del', 'kcred', p, { node: N1 })).code, 0);
    assert.deepEqual(await podPorts(N1), []);
  });

  it('pods on two nodes talk through the pseudowire (static IPAM)', async () => {
    const ipam = (a: string) => ({ type: 'static', addresses: [{ address: a }] });
    const pw = { namespace: 'kc', name: 'green-wire' };
    await rig.network('kcgreen1', '1.1.0', [l2tpPlugin(a1, { pseudowire: pw, ipam: ipam('10.202.4.1/24') })]);
    await rig.network('kcgreen2', '1.1.0', [l2tpPlugin(a2, { pseudowire: pw, ipam: ipam('10.202.4.2/24') })]);
    const [p1, p2] = [await pod(), await pod()];
    const r1 = await rig.cnitool('add', 'kcgreen1', p1, { node: N1 });
    const r2 = await rig.cnitool('add', 'kcgreen2', p2, { node: N2 });
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await ping(p1, '10.202.4.2', 3), 3);
    assert.equal((await rig.cnitool('del', 'kcgreen1', p1, { node: N1 })).code, 0);
    assert.equal((await rig.cnitool('del', 'kcgreen2', p2, { node: N2 })).code, 0);
  });

  it('dual stack (static IPAM): addresses, gateways and routes land in the pod; CHECK passes', async () => {
    const ipam = {
      type: 'static',
      addresses: [
        { address: '10.202.8.2/24', gateway: '10.202.8.1' },
        { address: 'fd00:202:8::2/64', gateway: 'fd00:202:8::1' },
      ],
      routes: [{ dst: '10.99.0.0/16' }, { dst: '10.98.0.0/16', gw: '10.202.8.254' }, { dst: 'fd00:99::/48' }],
    };
    await rig.network('kcdual', '1.1.0', [l2tpPlugin(a1, { ipam })]);
    const p = await pod();
    const add = await rig.cnitool('add', 'kcdual', p, { node: N1 });
    assert.equal(add.code, 0, add.stderr);
    const addrs = JSON.parse(await ipIn(p, '-j', 'addr', 'show', 'net1')) as {
      addr_info: { local: string; prefixlen: number }[];
    }[];
    const have = addrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    for (const a of ['10.202.8.2/24', 'fd00:202:8::2/64'])
      assert.ok(have.includes(a), `${a} in ${have.join(' ')}`);
    const v4 = JSON.parse(await ipIn(p, '-j', 'route', 'show', 'dev', 'net1')) as {
      dst: string;
      gateway?: string;
    }[];
    assert.equal(
      v4.find((r) => r.dst === '10.99.0.0/16')?.gateway,
      '10.202.8.1',
      'the gateway of the address',
    );
    assert.equal(
      v4.find((r) => r.dst === '10.98.0.0/16')?.gateway,
      '10.202.8.254',
      "the route's own gateway",
    );
    const v6 = JSON.parse(await ipIn(p, '-6', '-j', 'route', 'show', 'dev', 'net1')) as {
      dst: string;
      gateway?: string;
    }[];
    assert.equal(v6.find((r) => r.dst === 'fd00:99::/48')?.gateway, 'fd00:202:8::1');
    const check = await rig.cnitool('check', 'kcdual', p, { node: N1 });
    assert.equal(check.code, 0, check.stderr);
    assert.equal((await rig.cnitool('del', 'kcdual', p, { node: N1 })).code, 0);
    assert.deepEqual(
      (await links(p)).map((l) => l.ifname),
      ['lo'],
    );
  });

  it('exclusive mode: the l2tpeth device moves into the pod and back', async () => {
    const blue = { namespace: 'kc', name: 'blue-wire' };
    await rig.network('kcblue', '1.1.0', [
      l2tpPlugin(a1, {
        pseudowire: blue,
        mtu: 1400,
        mac: '02:00:00:aa:bb:01',
        ipam: { type: 'static', addresses: [{ address: '10.202.5.1/24' }] },
      }),
    ]);
    const before = (await links(N1)).find((l) => l.ifname === BLUE.ifname)!;
    const [p1, p2] = [await pod(), await pod()];
    const add = await rig.cnitool('add', 'kcblue', p1, { node: N1 });
    assert.equal(add.code, 0, add.stderr);
    assert.equal(JSON.parse(add.stdout).interfaces.length, 1);
    assert.equal(
      (await links(N1)).find((l) => l.ifname === BLUE.ifname),
      undefined,
      'gone from the node',
    );
    const dev = (await links(p1)).find((l) => l.ifname === 'net1')!;
    assert.equal(dev.mtu, 1400);
    assert.equal(dev.address, '02:00:00:aa:bb:01');
    assert.match(await ipIn(p1, '-d', 'link', 'show', 'net1'), /tun type tap/);
    const check = await rig.cnitool('check', 'kcblue', p1, { node: N1 });
    assert.equal(check.code, 0, check.stderr);

    // one pod owns it: a second ADD is refused (102), asking for bridge mode is refused (7: the
    // Pseudowire decides), and neither leaves anything
    const second = await rig.cnitool('add', 'kcblue', p2, { node: N1 });
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /attached exclusively/);
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'kcx2',
      CNI_NETNS: `/run/netns/${p2}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: POD_ARGS,
    };
    const bridgeTry = await rig.shim(env, {
      cniVersion: '1.1.0',
      name: 'kcb',
      ...l2tpPlugin(a1, { pseudowire: blue }),
    });
    assert.equal(cniError(bridgeTry)?.code, 102);
    const asBridge = await rig.shim(env, {
      cniVersion: '1.1.0',
      name: 'kcb',
      ...l2tpPlugin(a1, { pseudowire: blue, mode: 'bridge' }),
    });
    assert.equal(cniError(asBridge)?.code, 7);
    assert.match(cniError(asBridge)!.msg, /spec\.attachment\.mode Exclusive/);
    assert.deepEqual(
      (await links(p2)).map((l) => l.ifname),
      ['lo'],
    );

    for (let i = 0; i < 2; i++) assert.equal((await rig.cnitool('del', 'kcblue', p1, { node: N1 })).code, 0);
    const back = (await links(N1)).find((l) => l.ifname === BLUE.ifname);
    assert.ok(back, 'back on the node');
    assert.equal(back.mtu, BLUE.mtu);
    assert.equal(back.address, before.address);
    // it came back with the node's defaults: hardened again before it went up
    assert.deepEqual(await deviceSysctlsIn(N1, BLUE.ifname), HARDENED_SYSCTLS);
  });

  it('exclusive mode: a pod that went while no agent ran does not keep the device from the next pod', async () => {
    const blue = { namespace: 'kc', name: 'blue-wire' };
    await rig.network('kcblue2', '1.1.0', [l2tpPlugin(a1, { pseudowire: blue })]);
    const gone = await pod();
    assert.equal((await rig.cnitool('add', 'kcblue2', gone, { node: N1 })).code, 0);
    // its DEL finds no agent (restarting, or not yet started after a node reboot): the shim succeeds
    // without one, so the attachment record stays
    const noAgent = {
      cniVersion: '1.1.0',
      name: 'kcblue2',
      ...l2tpPlugin(a1, { pseudowire: blue }),
      agentSocket: join(rig.socketDir('none'), 'no-agent.sock'),
    };
    const del = await rig.shim(
      {
        CNI_COMMAND: 'DEL',
        CNI_CONTAINERID: cnitoolId(`/run/netns/${gone}`),
        CNI_NETNS: `/run/netns/${gone}`,
        CNI_IFNAME: 'net1',
        CNI_ARGS: POD_ARGS,
      },
      noAgent,
    );
    assert.equal(del.code, 0, del.stdout);
    // the runtime removes the pod's netns, the device goes with it and the datapath makes it again
    await ip('netns', 'del', gone);
    await ipIn(N1, 'tuntap', 'add', 'dev', BLUE.ifname, 'mode', 'tap');
    await ipIn(N1, 'link', 'set', BLUE.ifname, 'mtu', String(BLUE.mtu), 'up');
    const next = await pod();
    const add = await rig.cnitool('add', 'kcblue2', next, { node: N1 });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.ok((await links(next)).some((l) => l.ifname === 'net1'));
    assert.equal((await rig.cnitool('del', 'kcblue2', next, { node: N1 })).code, 0);
    assert.ok(
      (await links(N1)).some((l) => l.ifname === BLUE.ifname),
      'back on the node',
    );
  });

  it('bridges are named by session ID and marked; a link of that name that is not ours is never adopted', async () => {
    await ipIn(N1, 'tuntap', 'add', 'dev', GREY.ifname, 'mode', 'tap');
    await ipIn(N1, 'link', 'set', GREY.ifname, 'mtu', String(GREY.mtu), 'up');
    await a1.setPseudowires(true, { ...PWS1, 'kc/grey-wire': GREY });
    await rig.network('kcgrey', '1.1.0', [
      l2tpPlugin(a1, { pseudowire: { namespace: 'kc', name: 'grey-wire' } }),
    ]);
    const bridge = `kl2b${GREY.sessionId}`;
    // somebody else's bridge, under the name ours would get
    await ipIn(N1, 'link', 'add', bridge, 'type', 'bridge');
    const p = await pod();
    const refused = await rig.cnitool('add', 'kcgrey', p, { node: N1 });
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr + refused.stdout,
      /node link kl2b99 exists and is not kube-l2tp's bridge for kc\/grey-wire/,
    );
    const after = await links(N1);
    assert.equal(after.find((l) => l.ifname === GREY.ifname)?.master, undefined, 'the device joined nothing');
    assert.deepEqual(
      after.filter((l) => l.master === bridge),
      [],
      'the foreign bridge got no port',
    );
    assert.deepEqual(
      (await links(p)).map((l) => l.ifname),
      ['lo'],
    );
    await ipIn(N1, 'link', 'del', bridge);
    const add = await rig.cnitool('add', 'kcgrey', p, { node: N1 });
    assert.equal(add.code, 0, add.stderr);
    assert.equal((await links(N1)).find((l) => l.ifname === GREY.ifname)?.master, bridge);
    assert.equal(
      (await ipIn(N1, '-j', '-d', 'link', 'show', bridge)).includes(
        '"ifalias":"kube-l2tp bridge=kc/grey-wire"',
      ),
      true,
      'the bridge carries the ownership marker',
    );
    assert.equal((await rig.cnitool('del', 'kcgrey', p, { node: N1 })).code, 0);

    // an unmarked bridge of the name an earlier release gave it, holding the device: adopted
    await ipIn(N1, 'link', 'set', GREY.ifname, 'nomaster');
    await ipIn(N1, 'link', 'del', bridge);
    const legacy = names.legacyBridge('kc', 'grey-wire');
    await ipIn(N1, 'link', 'add', legacy, 'type', 'bridge');
    await ipIn(N1, 'link', 'set', GREY.ifname, 'master', legacy);
    const again = await rig.cnitool('add', 'kcgrey', p, { node: N1 });
    assert.equal(again.code, 0, again.stderr);
    const now = await links(N1);
    assert.equal(
      now.filter((l) => l.master === legacy).length,
      2,
      'the device and the pod on the old bridge',
    );
    assert.equal(
      now.find((l) => l.ifname === bridge),
      undefined,
      'no second bridge for the wire',
    );
    assert.equal((await rig.cnitool('del', 'kcgrey', p, { node: N1 })).code, 0);
    await a1.setPseudowires(true, PWS1);
  });

  it('a table of bad configs and environments gets the right codes', async () => {
    const p = await pod();
    const base = { cniVersion: '1.1.0', name: 'kcbad', ...l2tpPlugin(a1) };
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'kcbad1',
      CNI_NETNS: `/run/netns/${p}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: POD_ARGS,
      CNI_PATH: rig.bin,
    };
    const cases: [string, Record<string, string>, string | object, number, RegExp][] = [
      ['no CNI_COMMAND', { ...env, CNI_COMMAND: '' }, base, 4, /CNI_COMMAND/],
      ['unknown command', { ...env, CNI_COMMAND: 'FROB' }, base, 4, /CNI_COMMAND/],
      ['ADD without CNI_NETNS', { ...env, CNI_NETNS: '' }, base, 4, /CNI_NETNS/],
      ['ADD without CNI_CONTAINERID', { ...env, CNI_CONTAINERID: '' }, base, 4, /CNI_CONTAINERID/],
      ['bad container id', { ...env, CNI_CONTAINERID: '-x/y' }, base, 4, /CNI_CONTAINERID/],
      ['interface name too long', { ...env, CNI_IFNAME: 'abcdefghijklmnop' }, base, 4, /CNI_IFNAME/],
      ['CNI_ARGS unknown key', { ...env, CNI_ARGS: 'FOO=bar' }, base, 4, /CNI_ARGS.*FOO/],
      ['GC without CNI_PATH', { CNI_COMMAND: 'GC' }, base, 4, /CNI_PATH/],
      ['stdin not JSON', env, '{"cniVersion":', 6, /decode/],
      ['unsupported cniVersion', env, { ...base, cniVersion: '0.3.1' }, 1, /0\.3\.1/],
      ['no pseudowire', env, { ...base, pseudowire: undefined }, 7, /pseudowire/],
      ['bad mode', env, { ...base, mode: 'trunk' }, 7, /mode/],
      ['pod namespace unknown', { ...env, CNI_ARGS: '' }, base, 4, /K8S_POD_NAMESPACE is missing/],
      [
        "another namespace's pseudowire",
        { ...env, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=other' },
        base,
        109,
        /not shared with namespace other/,
      ],
      ['mtu too small', env, { ...base, mtu: 20 }, 7, /mtu/],
      ['multicast mac', env, { ...base, mac: '01:00:5e:00:00:01' }, 7, /mac/],
      ['bad network name', env, { ...base, name: '-bad name' }, 7, /name/],
      ['ipam plugin missing', env, { ...base, ipam: { type: 'nope' } }, 7, /ipam\.type/],
      [
        'unknown pseudowire',
        env,
        { ...base, pseudowire: { namespace: 'kc', name: 'nope' } },
        100,
        /pseudowire/,
      ],
      ['mtu above the pseudowire', env, { ...base, mtu: 9000 }, 103, /mtu/],
      ['netns missing', { ...env, CNI_NETNS: '/run/netns/kc-does-not-exist' }, base, 3, /CNI_NETNS/],
      ['CHECK without prevResult', { ...env, CNI_COMMAND: 'CHECK' }, base, 7, /prevResult/],
      ['GC on a 1.0.0 config', { ...env, CNI_COMMAND: 'GC' }, { ...base, cniVersion: '1.0.0' }, 1, /GC/],
      ['STATUS on a 1.0.0 config', { CNI_COMMAND: 'STATUS' }, { ...base, cniVersion: '1.0.0' }, 1, /STATUS/],
    ];
    for (const [what, e, conf, code, re] of cases) {
      const r = await rig.shim(e, conf);
      const err = cniError(r);
      assert.notEqual(r.code, 0, what);
      assert.equal(err?.code, code, `${what}: ${r.stdout}`);
      assert.match(err!.msg, re, what);
      assert.doesNotMatch(r.stdout, /at .*\.js:\d+/, `${what}: no stack trace`);
    }
    assert.deepEqual(
      (await links(p)).map((l) => l.ifname),
      ['lo'],
      'nothing was made',
    );
    const ok = await rig.shim(
      { ...env, CNI_ARGS: 'IgnoreUnknown=1;FOO=bar;K8S_POD_NAMESPACE=kc;K8S_POD_NAME=x' },
      base,
    );
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal((await rig.shim({ ...env, CNI_COMMAND: 'DEL' }, base)).code, 0);
  });

  it('an existing CNI_IFNAME is an error and nothing half-made is left', async () => {
    const p = await pod();
    await ipIn(p, 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'kcother');
    const conf = {
      cniVersion: '1.0.0',
      name: 'kcexist',
      ...l2tpPlugin(a1, { ipam: hostLocal('10.202.6.0/24') }),
    };
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'kcexist1',
      CNI_NETNS: `/run/netns/${p}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: POD_ARGS,
      CNI_PATH: rig.bin,
    };
    const r = await rig.shim(env, conf);
    assert.equal(cniError(r)?.code, 101, r.stdout);
    assert.match(cniError(r)!.msg, /CNI_IFNAME/);
    assert.deepEqual(await podPorts(N1), []);
    assert.equal(leases('kcexist').length, 0, 'the IPAM lease was rolled back');
    assert.deepEqual((await links(p)).map((l) => l.ifname).sort(), ['kcother', 'lo', 'net1']);
    // the runtime's DEL after a failed ADD must not touch the pod's own net1
    assert.equal((await rig.shim({ ...env, CNI_COMMAND: 'DEL' }, conf)).code, 0);
    assert.ok((await links(p)).some((l) => l.ifname === 'net1'));
  });

  it('an IPAM failure rolls the ADD back (delegate error passed through)', async () => {
    const one = hostLocal('10.202.7.0/24', { rangeStart: '10.202.7.9', rangeEnd: '10.202.7.9' });
    await rig.network('kcfull', '1.0.0', [l2tpPlugin(a1, { ipam: one })]);
    const [p1, p2] = [await pod(), await pod()];
    assert.equal((await rig.cnitool('add', 'kcfull', p1, { node: N1 })).code, 0);
    const conf = { cniVersion: '1.0.0', name: 'kcfull', ...l2tpPlugin(a1, { ipam: one }) };
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'kcfull2',
      CNI_NETNS: `/run/netns/${p2}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: POD_ARGS,
      CNI_PATH: rig.bin,
    };
    const r = await rig.shim(env, conf);
    assert.notEqual(r.code, 0);
    assert.match(cniError(r)?.msg ?? '', /no IP addresses available/);
    assert.deepEqual(
      (await links(p2)).map((l) => l.ifname),
      ['lo'],
    );
    assert.equal((await podPorts(N1)).length, 1, 'only the first pod is attached');
    assert.equal((await rig.cnitool('del', 'kcfull', p1, { node: N1 })).code, 0);
  });

  it('chaining: prevResult is passed through (loopback before kube-l2tp)', async () => {
    await rig.network('kcchain', '1.0.0', [
      { type: 'loopback' },
      l2tpPlugin(a1, { ipam: hostLocal('10.202.8.0/24') }),
    ]);
    const p = await pod();
    const add = await rig.cnitool('add', 'kcchain', p, { node: N1 });
    assert.equal(add.code, 0, add.stderr);
    const res = JSON.parse(add.stdout);
    assert.equal(res.interfaces[0].name, 'lo');
    assert.equal(res.interfaces[3].name, 'net1');
    assert.ok(
      res.ips.some(
        (i: { address: string; interface: number }) => i.address.startsWith('127.0.0.1') && i.interface === 0,
      ),
    );
    assert.ok(
      res.ips.some(
        (i: { address: string; interface: number }) => i.address.startsWith('10.202.8.') && i.interface === 3,
      ),
    );
    assert.equal((await rig.cnitool('check', 'kcchain', p, { node: N1 })).code, 0);
    assert.equal((await rig.cnitool('del', 'kcchain', p, { node: N1 })).code, 0);
  });

  it('chaining: CHECK accepts what a later plugin changed (tuning lowers the MTU and sets the MAC)', async () => {
    const tuning = { type: 'tuning', mtu: 1300, mac: '02:00:00:cc:dd:01' };
    await rig.network('kctune', '1.0.0', [l2tpPlugin(a1, { ipam: hostLocal('10.202.11.0/24') }), tuning]);
    const p = await pod();
    const add = await rig.cnitool('add', 'kctune', p, { node: N1 });
    assert.equal(add.code, 0, add.stderr);
    try {
      const net1 = (await links(p)).find((l) => l.ifname === 'net1')!;
      assert.equal(net1.mtu, 1300, 'tuning ran after kube-l2tp');
      assert.equal(net1.address, '02:00:00:cc:dd:01');
      const check = await rig.cnitool('check', 'kctune', p, { node: N1 });
      assert.equal(check.code, 0, check.stdout + check.stderr);
      // above the pseudowire's MTU is not something CHECK lets pass
      await ipIn(p, 'link', 'set', 'net1', 'mtu', String(RED.mtu + 100));
      const over = await rig.cnitool('check', 'kctune', p, { node: N1 });
      assert.notEqual(over.code, 0);
      assert.match(over.stdout + over.stderr, /above the MTU 1400 of pseudowire kc\/red-wire/);
    } finally {
      assert.equal((await rig.cnitool('del', 'kctune', p, { node: N1 })).code, 0);
    }
  });

  it('concurrent ADDs for different containers', async () => {
    await rig.network('kcconc', '1.1.0', [l2tpPlugin(a1, { ipam: hostLocal('10.202.9.0/24') })]);
    const pods: string[] = [];
    for (let i = 0; i < 6; i++) pods.push(await pod());
    const adds = await Promise.all(pods.map((p) => rig.cnitool('add', 'kcconc', p, { node: N1 })));
    for (const r of adds) assert.equal(r.code, 0, r.stderr);
    const ips = adds.map((r) => JSON.parse(r.stdout).ips[0].address as string);
    assert.equal(new Set(ips).size, 6);
    assert.equal((await podPorts(N1)).length, 6);
    assert.equal(await ping(pods[0]!, ips[5]!.split('/')[0]!, 2), 2);
    const dels = await Promise.all(pods.map((p) => rig.cnitool('del', 'kcconc', p, { node: N1 })));
    for (const r of dels) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await podPorts(N1), []);
    assert.equal(leases('kcconc').length, 0);
  });

  it('GC removes attachments absent from cni.dev/valid-attachments (and the older key)', async () => {
    await rig.network('kcgc', '1.1.0', [l2tpPlugin(a1, { ipam: hostLocal('10.202.10.0/24') })]);
    const [p1, p2, p3] = [await pod(), await pod(), await pod()];
    for (const p of [p1, p2, p3]) assert.equal((await rig.cnitool('add', 'kcgc', p, { node: N1 })).code, 0);
    assert.equal(leases('kcgc').length, 3);
    const conf = (key: string, keep: string[]) => ({
      cniVersion: '1.1.0',
      name: 'kcgc',
      ...l2tpPlugin(a1, { ipam: hostLocal('10.202.10.0/24') }),
      [key]: keep.map((p) => ({ containerID: cnitoolId(`/run/netns/${p}`), ifname: 'net1' })),
    });
    const gc1 = await rig.shim(
      { CNI_COMMAND: 'GC', CNI_PATH: rig.bin },
      conf('cni.dev/valid-attachments', [p1, p2]),
    );
    assert.equal(gc1.code, 0, gc1.stdout);
    assert.equal(gc1.stdout, '');
    assert.deepEqual(
      (await links(p3)).map((l) => l.ifname),
      ['lo'],
    );
    assert.equal((await links(p1)).filter((l) => l.ifname === 'net1').length, 1);
    assert.equal(leases('kcgc').length, 2);
    const gc2 = await rig.shim({ CNI_COMMAND: 'GC', CNI_PATH: rig.bin }, conf('cni.dev/attachments', [p1]));
    assert.equal(gc2.code, 0, gc2.stdout);
    assert.deepEqual(
      (await links(p2)).map((l) => l.ifname),
      ['lo'],
    );
    // cnitool gc passes no valid attachments: everything of this network goes
    const gc3 = await rig.cnitool('gc', 'kcgc', p1, { node: N1 });
    assert.equal(gc3.code, 0, gc3.stderr);
    assert.deepEqual(
      (await links(p1)).map((l) => l.ifname),
      ['lo'],
    );
    assert.equal(leases('kcgc').length, 0);
    assert.deepEqual(await podPorts(N1), []);
  });

  it('agent down: ADD/CHECK/GC 11, STATUS 50, DEL succeeds; not ready: STATUS 50, ADD 11', async () => {
    const p = await pod();
    await rig.network('kcstatus', '1.1.0', [l2tpPlugin(a1)]);
    assert.equal((await rig.cnitool('status', 'kcstatus', p)).code, 0);

    const env = {
      CNI_CONTAINERID: 'kcdown1',
      CNI_NETNS: `/run/netns/${p}`,
      CNI_IFNAME: 'net1',
      CNI_ARGS: POD_ARGS,
      CNI_PATH: rig.bin,
    };
    const down = {
      cniVersion: '1.1.0',
      name: 'kcdown',
      ...l2tpPlugin(a1),
      agentSocket: join(rig.socketDir('none'), 'no-agent.sock'),
    };
    const expect: [string, number | 0][] = [
      ['ADD', 11],
      ['CHECK', 11],
      ['GC', 11],
      ['STATUS', 50],
      ['DEL', 0],
    ];
    for (const [cmd, code] of expect) {
      const r = await rig.shim({ ...env, CNI_COMMAND: cmd }, down);
      if (code === 0) {
        assert.equal(r.code, 0, `${cmd}: ${r.stdout}`);
        assert.equal(r.stdout, '');
      } else {
        assert.equal(cniError(r)?.code, code, `${cmd}: ${r.stdout}`);
        assert.equal(JSON.parse(r.stdout).cniVersion, '1.1.0');
      }
    }
    const viaTool = await rig.cnitool('status', 'kcstatus', p);
    assert.equal(viaTool.code, 0);

    // not ready (node state not synced)
    await a2.setPseudowires(false, {});
    const st = { cniVersion: '1.1.0', name: 'kcnr', ...l2tpPlugin(a2) };
    assert.equal(cniError(await rig.shim({ CNI_COMMAND: 'STATUS' }, st))?.code, 50);
    assert.equal(cniError(await rig.shim({ ...env, CNI_COMMAND: 'ADD' }, st))?.code, 11);
    // really down: the agent process is killed, its socket file stays behind
    await a2.stop();
    assert.equal(cniError(await rig.shim({ CNI_COMMAND: 'STATUS' }, st))?.code, 50);
    assert.equal(cniError(await rig.shim({ ...env, CNI_COMMAND: 'ADD' }, st))?.code, 11);
    assert.equal((await rig.shim({ ...env, CNI_COMMAND: 'DEL' }, st)).code, 0);
    assert.deepEqual(
      (await links(p)).map((l) => l.ifname),
      ['lo'],
    );
  });

  it('a DEL while no agent runs succeeds, and the agent finishes it when it starts (IPAM, record)', async () => {
    await rig.network('kclate', '1.1.0', [l2tpPlugin(a1, { ipam: hostLocal('10.202.12.0/24') })]);
    const p = await pod();
    assert.equal((await rig.cnitool('add', 'kclate', p, { node: N1 })).code, 0);
    assert.equal(leases('kclate').length, 1);
    // the agent restarts (a rollout, or it is not up yet after a node reboot) while the pod goes
    await a1.stop();
    const del = await rig.cnitool('del', 'kclate', p, { node: N1 });
    assert.equal(del.code, 0, del.stderr);
    await ip('netns', 'del', p);
    assert.equal(leases('kclate').length, 1, 'nothing released without an agent');
    a1 = await rig.agent(N1, true, PWS1);
    assert.equal(leases('kclate').length, 0, 'released once the agent is back');
    const id = cnitoolId(`/run/netns/${p}`);
    assert.deepEqual(
      readdirSync(a1.stateDir).filter((f) => f.startsWith(id)),
      [],
      'its attachment record is gone',
    );
    assert.deepEqual(readdirSync(join(dirname(a1.socket), DEFERRED_DEL_DIR)), [], 'served once');
  });
});
