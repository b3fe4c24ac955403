// Runs inside a test's network namespace, as root, driving the ebpf backend through reconcile the
// way the agent does, and prints one JSON line. The namespace has two underlays: links A and B, the
// peer addresses 10.233.9.2 (routed over A) and 10.233.9.3 (over B); the local address 10.233.9.1.
//   reroute BPFFS: a tunnel to .2, then its route moves to link B; what the backend then uses.
//   recreate BPFFS: a tunnel over link A, then link A is deleted and made anew (a new ifindex).
//   retarget BPFFS: a tunnel to .2; a new process (restart) is given the tunnel to .3 instead.
//   release BPFFS: tunnels over A and over B; a new process is given only the one over B.
//   orphan BPFFS: a marked session pair with no map entries (an agent stopped between making it
//     and writing the maps); then a pass that wants no session.
import { reconcile, type DesiredState } from '../../datapath/agent/reconcile.js';
import { createPair, listVeths, peerName } from '../../datapath/backend/ebpf/devices.js';
import { createEbpfBackend, type EbpfBackend } from '../../datapath/backend/ebpf/index.js';
import { SIZES, decodeTunVal } from '../../datapath/backend/ebpf/maps.js';
import { mapEntries } from '../../datapath/backend/ebpf/native.js';
import { filterProgId } from '../../datapath/backend/ebpf/tc.js';
import { getLink } from '../../datapath/backend/userspace/tap.js';
import { run } from '../../lib/exec.js';
import { silentLogger } from '../../lib/log.js';

const LOCAL = '10.233.9.1';

function tunnel(tunnelId: number, remote: string, sessionIds: number[]): DesiredState['tunnels'][number] {
  return {
    spec: {
      tunnelId,
      peerTunnelId: tunnelId,
      encap: 'udp',
      local: LOCAL,
      remote,
      udpSourcePort: 7000 + tunnelId,
      udpDestinationPort: 7000 + tunnelId,
      udpChecksum: false,
    },
    sessions: sessionIds.map((sessionId) => ({
      tunnelId,
      sessionId,
      peerSessionId: sessionId,
      ifname: `l2tpeth${sessionId}`,
      name: `l2tpeth${sessionId}`,
      l2specType: 'default' as const,
      sendSequence: false,
      requireSequence: false,
      reorderTimeoutMs: 0,
      mtu: 1400,
    })),
  };
}

const open = (bpffs: string) => createEbpfBackend({ logger: silentLogger(), bpffs });

/** The backend's maps as the programs read them (through its own open descriptors). */
function maps(b: EbpfBackend) {
  const inner = b as unknown as {
    native: Parameters<typeof mapEntries>[0];
    set: { maps: Record<string, number> };
  };
  const tun = mapEntries(inner.native, inner.set.maps.tun_map!, SIZES.tunKey, SIZES.tunVal).map(([k, v]) => ({
    tunnelId: decodeTunVal(v).tunnelId,
    remote: [...k.subarray(16, 20)].join('.'),
  }));
  const tx = mapEntries(inner.native, inner.set.maps.tx_cfg!, 4, SIZES.txCfg).map(([, v]) => ({
    sessionId: v.readUInt32LE(0),
    underlayIfindex: v.readUInt32LE(8),
  }));
  return { tun, tx };
}

const ifindex = async (name: string) => (await getLink(name))?.ifindex;
const rxOn = async (dev: string) => ((await filterProgId((await ifindex(dev))!, 'ingress')) ?? 0) > 0;

async function reroute(bpffs: string) {
  const b = await open(bpffs);
  await reconcile(b, { tunnels: [tunnel(1, '10.233.9.2', [1])] }, silentLogger());
  await run('ip', ['route', 'replace', '10.233.9.2/32', 'via', '10.233.2.2', 'dev', 'aa3b1']);
  const r = await reconcile(b, { tunnels: [tunnel(1, '10.233.9.2', [1])] }, silentLogger());
  const out = {
    state: r.tunnels[0]?.state,
    txUnderlay: maps(b).tx.map((t) => t.underlayIfindex),
    linkB: await ifindex('aa3b1'),
    rxOnA: await rxOn('aa3a1'),
    rxOnB: await rxOn('aa3b1'),
  };
  await b.close({ keepDevices: false });
  return out;
}

async function recreate(bpffs: string) {
  const b = await open(bpffs);
  await reconcile(b, { tunnels: [tunnel(1, '10.233.9.2', [1])] }, silentLogger());
  const before = await ifindex('aa3a1');
  await run('ip', ['link', 'del', 'aa3a1']);
  await run('ip', ['link', 'add', 'aa3a1', 'type', 'veth', 'peer', 'name', 'aa3a2', 'netns', 'aa3dh2']);
  await run('ip', ['addr', 'add', '10.233.1.1/24', 'dev', 'aa3a1']);
  await run('ip', ['link', 'set', 'aa3a1', 'up']);
  await run('ip', ['route', 'add', '10.233.9.2/32', 'via', '10.233.1.2', 'dev', 'aa3a1', 'src', LOCAL]);
  await run('ip', ['netns', 'exec', 'aa3dh2', 'ip', 'addr', 'add', '10.233.1.2/24', 'dev', 'aa3a2']);
  await run('ip', ['netns', 'exec', 'aa3dh2', 'ip', 'link', 'set', 'aa3a2', 'up']);
  const r = await reconcile(b, { tunnels: [tunnel(1, '10.233.9.2', [1])] }, silentLogger());
  const out = {
    changed: before !== (await ifindex('aa3a1')),
    state: r.tunnels[0]?.state,
    error: r.tunnels[0]?.error,
    txUnderlay: maps(b).tx.map((t) => t.underlayIfindex),
    linkA: await ifindex('aa3a1'),
    rxOnA: await rxOn('aa3a1'),
  };
  await b.close({ keepDevices: false });
  return out;
}

async function retarget(bpffs: string) {
  const b1 = await open(bpffs);
  await reconcile(b1, { tunnels: [tunnel(1, '10.233.9.2', [1])] }, silentLogger());
  await b1.close({ keepDevices: true });
  const b2 = await open(bpffs);
  const r = await reconcile(b2, { tunnels: [tunnel(1, '10.233.9.3', [1])] }, silentLogger());
  const out = { state: r.tunnels[0]?.state, tun: maps(b2).tun };
  await b2.close({ keepDevices: false });
  return out;
}

async function release(bpffs: string) {
  const b1 = await open(bpffs);
  const both = { tunnels: [tunnel(1, '10.233.9.2', [1]), tunnel(2, '10.233.9.3', [2])] };
  await reconcile(b1, both, silentLogger());
  const before = { rxOnA: await rxOn('aa3a1'), rxOnB: await rxOn('aa3b1') };
  await b1.close({ keepDevices: true });
  const b2 = await open(bpffs);
  await reconcile(b2, { tunnels: [tunnel(2, '10.233.9.3', [2])] }, silentLogger());
  const after = { rxOnA: await rxOn('aa3a1'), rxOnB: await rxOn('aa3b1') };
  await b2.close({ keepDevices: false });
  return { before, after };
}

async function orphan(bpffs: string) {
  const b = await open(bpffs);
  await createPair(
    'l2tpeth9',
    peerName(9),
    { tunnelId: 1, sessionId: 9 },
    { mtu: 1400, queues: 1 },
    async () => {},
  );
  const ours = async () =>
    (await listVeths())
      .filter((v) => v.owner)
      .map((v) => v.ifname)
      .sort();
  const made = await ours();
  const r = await reconcile(b, { tunnels: [tunnel(1, '10.233.9.2', [])] }, silentLogger());
  const afterPass = await ours();
  await b.close({ keepDevices: false });
  return { made, removed: r.removed, afterPass, afterClose: await ours() };
}

const [mode, bpffs] = process.argv.slice(2) as [string, string];
const modes: Record<string, (bpffs: string) => Promise<unknown>> = {
  reroute,
  recreate,
  retarget,
  release,
  orphan,
};
process.stdout.write(JSON.stringify(await modes[mode]!(bpffs)) + '\n');
