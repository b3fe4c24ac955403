// The rtnetlink link, address and route operations against the real kernel, in two throwaway
// network namespaces ("node" and "pod"), with sockets made inside them by NetlinkSocket.openIn. What
// the kernel ended up with is read back both through our decoders and through iproute2. Needs root.
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readlinkSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { run, runOk } from '../exec.js';
import { NetlinkError } from './errors.js';
import { AF_INET, AF_INET6, RtnlAddrs } from './rtnl-addr.js';
import { RtnlRoutes } from './rtnl-route.js';
import { RtnlLinks } from './rtnl.js';
import { NETLINK_ROUTE, NetlinkSocket } from './socket.js';

const root = process.getuid?.() === 0;
const NODE = `kn${process.pid % 10000}n`;
const POD = `kn${process.pid % 10000}p`;
const path = (ns: string): string => `/run/netns/${ns}`;
const ipj = async (ns: string, ...args: string[]): Promise<unknown[]> =>
  JSON.parse(await run('ip', ['-n', ns, '-j', ...args])) as unknown[];

interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  master?: string;
  flags: string[];
}

async function withFd<T>(p: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(p, 'r');
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

describe('rtnetlink in real network namespaces', { skip: !root && 'needs root', concurrency: 1 }, () => {
  let nodeSock: NetlinkSocket;
  let podSock: NetlinkSocket;
  let node: RtnlLinks;
  let pod: { links: RtnlLinks; addrs: RtnlAddrs; routes: RtnlRoutes };

  before(async () => {
    for (const ns of [NODE, POD]) {
      await runOk('ip', ['netns', 'del', ns]);
      await run('ip', ['netns', 'add', ns]);
    }
    nodeSock = NetlinkSocket.openIn(NETLINK_ROUTE, path(NODE));
    podSock = NetlinkSocket.openIn(NETLINK_ROUTE, path(POD));
    node = new RtnlLinks(nodeSock);
    pod = { links: new RtnlLinks(podSock), addrs: new RtnlAddrs(podSock), routes: new RtnlRoutes(podSock) };
  });

  after(async () => {
    nodeSock?.close();
    podSock?.close();
    for (const ns of [POD, NODE]) await runOk('ip', ['netns', 'del', ns]);
  });

  it('openIn: the socket sees the namespace it was made in, not ours', async () => {
    const ours = readlinkSync('/proc/thread-self/ns/net');
    const names = (await node.list()).map((l) => l.name);
    assert.deepEqual(names, ['lo']);
    assert.throws(
      () => NetlinkSocket.openIn(NETLINK_ROUTE, '/run/netns/kn-no-such-netns'),
      (e: Error & { errno?: number }) => e.errno === 2 && /open\(netns\)/.test(e.message),
    );
    assert.throws(
      () => NetlinkSocket.openIn(NETLINK_ROUTE, '/etc/hostname'),
      (e: Error & { errno?: number }) => e.errno === 22 && /setns/.test(e.message),
      'a file that is not a netns: EINVAL, and we are back in our own namespace',
    );
    assert.equal(readlinkSync('/proc/thread-self/ns/net'), ours, 'this thread is back in its own netns');
  });

  it('openIn with a descriptor: the namespace it names, and the descriptor stays open', async () => {
    await withFd(path(POD), async (fd) => {
      const sock = NetlinkSocket.openIn(NETLINK_ROUTE, fd);
      try {
        const names = (await new RtnlLinks(sock).list()).map((l) => l.name);
        assert.deepEqual(names, ['lo']);
      } finally {
        sock.close();
      }
      assert.equal(fstatSync(fd).ino, statSync(path(POD)).ino, 'still open, ours to close');
    });
    const notNs = openSync('/etc/hostname', 'r');
    try {
      assert.throws(
        () => NetlinkSocket.openIn(NETLINK_ROUTE, notNs),
        (e: Error & { errno?: number }) => e.errno === 22 && /setns/.test(e.message),
      );
    } finally {
      closeSync(notNs);
    }
  });

  it('bridge, veth with its peer created in the pod netns, master, up', async () => {
    await node.createBridge({ name: 'knbr0', mtu: 1400, address: '02:00:00:00:0b:01', up: true });
    const br = await node.byName('knbr0');
    assert.ok(br && br.up && br.mtu === 1400 && br.address === '02:00:00:00:0b:01');
    await withFd(path(POD), (fd) =>
      node.createVeth(
        { name: 'knh0', mtu: 1400, address: '02:00:00:00:0a:01', master: br.index, up: true },
        { name: 'net1', mtu: 1400, address: '02:00:00:00:0a:02', netnsFd: fd },
      ),
    );
    const host = (await ipj(NODE, 'link', 'show', 'knh0'))[0] as IpLink;
    assert.equal(host.master, 'knbr0');
    assert.equal(host.address, '02:00:00:00:0a:01');
    assert.ok(host.flags.includes('UP'));
    const peer = await pod.links.byName('net1');
    assert.ok(peer);
    assert.equal(peer.mtu, 1400);
    assert.equal(peer.address, '02:00:00:00:0a:02');
    assert.equal(peer.up, false);
    await pod.links.set(peer.index, { up: true }, 'net1');
    assert.equal((await pod.links.get(peer.index)).up, true);
    // the same names again: EEXIST, naming the link
    await assert.rejects(
      withFd(path(POD), (fd) => node.createVeth({ name: 'knh1' }, { name: 'net1', netnsFd: fd })),
      (e: unknown) => e instanceof NetlinkError && e.code === 'EEXIST' && e.ifname === 'knh1',
    );
    assert.equal(await node.byName('knh1'), undefined, 'nothing half-made');
  });

  it('addresses (IPv4, IPv6 nodad) and routes (gateway, metric, metrics, table, scope)', async () => {
    const idx = (await pod.links.byName('net1'))!.index;
    await pod.addrs.add(idx, '10.203.9.2/24', {}, 'net1');
    await pod.addrs.add(idx, 'fd00:203:9::2/64', { nodad: true }, 'net1');
    await assert.rejects(
      pod.addrs.add(idx, '10.203.9.2/24'),
      (e: unknown) => (e as NetlinkError).code === 'EEXIST',
    );
    const addrs = await pod.addrs.list(idx);
    assert.ok(addrs.some((a) => a.family === AF_INET && a.local === '10.203.9.2' && a.prefixlen === 24));
    const v6 = addrs.find((a) => a.family === AF_INET6 && a.local === 'fd00:203:9::2');
    assert.ok(v6 && v6.prefixlen === 64);
    assert.ok(v6.flags & 0x02, 'IFA_F_NODAD kept');

    await pod.routes.add({
      dst: '10.99.0.0/16',
      gateway: '10.203.9.1',
      oif: idx,
      priority: 7,
      mtu: 1300,
      advmss: 1200,
    });
    await pod.routes.add({ dst: '10.98.0.0/16', oif: idx });
    await pod.routes.add({ dst: '0.0.0.0/0', gateway: '10.203.9.1', oif: idx, table: 1000 });
    await pod.routes.add({ dst: 'fd00:99::/48', gateway: 'fd00:203:9::1', oif: idx });
    const routes = (await ipj(POD, 'route', 'show', 'table', 'all')) as {
      dst: string;
      gateway?: string;
      metric?: number;
      table?: string;
      scope?: string;
      metrics?: { mtu?: number; advmss?: number }[];
    }[];
    const r1 = routes.find((r) => r.dst === '10.99.0.0/16');
    assert.equal(r1?.gateway, '10.203.9.1');
    assert.equal(r1?.metric, 7);
    assert.deepEqual(r1?.metrics, [{ mtu: 1300, advmss: 1200 }]);
    assert.equal(routes.find((r) => r.dst === '10.98.0.0/16')?.scope, 'link');
    const def = routes.find((r) => r.dst === 'default' && r.table === '1000');
    assert.equal(def?.gateway, '10.203.9.1');
    const r6 = (await ipj(POD, '-6', 'route', 'show')) as { dst: string; gateway?: string }[];
    assert.equal(r6.find((r) => r.dst === 'fd00:99::/48')?.gateway, 'fd00:203:9::1');
    await assert.rejects(
      pod.routes.add({ dst: '10.98.0.0/16', oif: idx }),
      (e: unknown) =>
        e instanceof NetlinkError && e.code === 'EEXIST' && /RTM_NEWROUTE 10.98.0.0\/16/.test(e.message),
    );
  });

  it('nomaster, rename (down), move by fd and by pid, delete by name and index', async () => {
    const h = (await node.byName('knh0'))!;
    await node.set(h.index, { master: 0 }, 'knh0');
    assert.equal(((await ipj(NODE, 'link', 'show', 'knh0'))[0] as IpLink).master, undefined);
    await node.set(h.index, { up: false }, 'knh0');
    await node.set(h.index, { name: 'knh9', mtu: 1300, address: '02:00:00:00:0a:09' }, 'knh0');
    const renamed = (await node.get(h.index))!;
    assert.deepEqual([renamed.name, renamed.mtu, renamed.address], ['knh9', 1300, '02:00:00:00:0a:09']);

    // into the pod by fd, back to the node by the pid of a process living there
    await withFd(path(POD), (fd) => node.set(h.index, { netnsFd: fd }, 'knh9'));
    assert.equal(await node.byName('knh9'), undefined);
    const there = (await pod.links.byName('knh9'))!;
    assert.ok(there);
    const sleeper = spawn('ip', ['netns', 'exec', NODE, 'sleep', '30'], { stdio: 'ignore' });
    try {
      // the pid of `sleep` (ip netns exec execs it in place)
      await new Promise((r) => setTimeout(r, 200));
      await pod.links.set(there.index, { netnsPid: sleeper.pid! }, 'knh9');
    } finally {
      sleeper.kill();
    }
    assert.ok(await node.byName('knh9'), 'back on the node');

    await node.del('knh9');
    assert.equal(await pod.links.byName('net1'), undefined, 'the peer went with it');
    await assert.rejects(node.del('knh9'), (e: unknown) => (e as NetlinkError).code === 'ENODEV');
    const br = (await node.byName('knbr0'))!;
    await node.del(br.index);
    assert.deepEqual(
      (await node.list()).map((l) => l.name),
      ['lo'],
    );
  });
});
