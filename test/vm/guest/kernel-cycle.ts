// Runs INSIDE the test VM (Debian's kernel, chrooted into the host root): drives the project's kernel
// backend through static mode and directly, checks the result with iproute2, and writes every
// observation to results.json in the shared directory for the host-side test to assert on.
//   node dist/test/vm/guest/kernel-cycle.js SHARE_DIR
// SHARE_DIR holds scenario.json (written by the host test) and receives logs, netlink traces and results.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapture } from '../../../lib/exec.js';
import { silentLogger } from '../../../lib/log.js';
import { deviceSysctls } from '../../../lib/netdev-hardening.js';
import { NetlinkError } from '../../../lib/netlink/errors.js';
import { L2TP_ATTR, L2TP_CMD, l2tpAttrName, L2TP_PWTYPE, L2tpNetlink } from '../../../lib/netlink/l2tp.js';
import { encodeGenl, GENL_HDRLEN } from '../../../lib/netlink/genl.js';
import { NETLINK_GENERIC, NetlinkSocket } from '../../../lib/netlink/socket.js';
import {
  createKernelBackend,
  KernelConflictError,
  probeKernelL2tp,
} from '../../../datapath/backend/kernel/index.js';
import { podMtuSync } from '../../../datapath/cni/pod-mtu.js';
import { AttachmentStore, ProcessLocker } from '../../../datapath/cni/state.js';
import { repoRoot } from '../../harness/vm.js';

export interface GuestSession {
  tunnelId: number;
  sessionId: number;
  ifname: string;
  /** Guest address on the l2tpeth device (CIDR) and the peer's overlay address to ping. */
  addr: string;
  peer: string;
}

export interface Scenario {
  /** Static config (YAML) for the guest side. */
  config: string;
  sessions: GuestSession[];
  /** Session pinged continuously across the restart. */
  restartPing: string;
  /** A session whose sublayer type is flipped (must be recreated) and flipped back. */
  flip: GuestSession & { peerSessionId: number; l2specType: 'none' | 'default'; mtu: number };
  /** A session whose sequencing is switched on in place (SESSION_MODIFY). */
  seq: GuestSession & { peerSessionId: number; l2specType: 'none' | 'default'; mtu: number };
}

const share = process.argv[2] ?? '/tmp/work';
const results: Record<string, unknown> = {};
const log = (m: string) => appendFile(join(share, 'driver.log'), `[${process.uptime().toFixed(1)}s] ${m}\n`);
const sh = async (file: string, ...args: string[]) => {
  const r = await runCapture(file, args, { timeoutMs: 60_000 });
  return r.stdout + r.stderr;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function startStatic(n: number): { child: ChildProcess; logFile: string; exit: Promise<number | null> } {
  const logFile = join(share, `static${n}.log`);
  const child = spawn(
    process.execPath,
    [
      join(repoRoot(), 'dist/datapath/main.js'),
      'static',
      '--config',
      join(share, 'guest.yaml'),
      '--backend',
      'kernel',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KUBE_L2TP_NETLINK_TRACE: join(share, `trace-static${n}.jsonl`) },
    },
  );
  child.stdout?.on('data', (d: Buffer) => void appendFile(logFile, d));
  child.stderr?.on('data', (d: Buffer) => void appendFile(logFile, d));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, logFile, exit };
}

const readLog = (f: string) => readFile(f, 'utf8').catch(() => '');
const logMsgs = async (f: string) =>
  (await readLog(f))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as { msg?: string; [k: string]: unknown };
      } catch {
        return { msg: l };
      }
    });

async function ifindexes(names: string[]): Promise<Record<string, number>> {
  const links = JSON.parse((await runCapture('ip', ['-j', 'link', 'show'])).stdout || '[]') as {
    ifname: string;
    ifindex: number;
  }[];
  return Object.fromEntries(names.map((n) => [n, links.find((l) => l.ifname === n)?.ifindex ?? -1]));
}

async function pingCount(target: string, count: number): Promise<number> {
  const r = await runCapture('ping', ['-c', String(count), '-W', '3', '-i', '0.5', target]);
  return Number(/(\d+) (?:packets )?received/.exec(r.stdout)?.[1] ?? 0);
}

async function main(): Promise<void> {
  const sc = JSON.parse(await readFile(join(share, 'scenario.json'), 'utf8')) as Scenario;
  await writeFile(join(share, 'guest.yaml'), sc.config);
  const names = sc.sessions.map((s) => s.ifname);
  results.uname = (await sh('uname', '-r')).trim();

  await log('probe');
  results.probe = await probeKernelL2tp();
  results.tunnelsAfterProbe = (await sh('ip', 'l2tp', 'show', 'tunnel')).trim();
  // without CAP_NET_ADMIN: the family resolves, creating fails with EPERM, and the probe says why
  const unprivileged = [
    'process.setgid(65534); process.setuid(65534);',
    `const m = await import(${JSON.stringify(join(repoRoot(), 'dist/datapath/backend/kernel/index.js'))});`,
    'console.log(JSON.stringify(await m.probeKernelL2tp()));',
  ].join(' ');
  const np = await runCapture(process.execPath, ['--input-type=module', '-e', unprivileged], {
    timeoutMs: 60_000,
  });
  results.probeUnprivileged = np.code === 0 ? JSON.parse(np.stdout) : { error: np.stderr };

  // 1. create from the static config
  await log('static run 1');
  const s1 = startStatic(1);
  await waitFor(
    async () => (await logMsgs(s1.logFile)).some((m) => m.msg === 'ready' || m.msg === 'static setup failed'),
    180_000,
    'static run 1 ready',
  );
  results.static1Messages = (await logMsgs(s1.logFile)).map((m) => m.msg);
  results.showTunnel = await sh('ip', 'l2tp', 'show', 'tunnel');
  results.showSession = await sh('ip', 'l2tp', 'show', 'session');
  results.links1 = JSON.parse((await runCapture('ip', ['-j', '-d', 'link', 'show'])).stdout || '[]');
  // what each l2tpeth exposes of the node (lib/netdev-hardening.ts), read back from the kernel
  results.hardening1 = Object.fromEntries(
    await Promise.all(sc.sessions.map(async (s) => [s.ifname, await deviceSysctls(s.ifname)] as const)),
  );

  // 2. traffic both ways
  for (const s of sc.sessions) await sh('ip', 'addr', 'add', s.addr, 'dev', s.ifname);
  const pings: Record<string, number> = {};
  for (const s of sc.sessions) pings[s.ifname] = await pingCount(s.peer, 4);
  results.guestPings = pings;
  await writeFile(join(share, 'guest-ready'), '1');
  await log('waiting for the host to ping');
  await waitFor(async () => existsSync(join(share, 'host-done')), 180_000, 'host pings');

  // 3. crash + restart: the kernel keeps forwarding, the new process adopts
  await log('restart');
  const before = await ifindexes(names);
  const bg = spawn('ping', ['-i', '0.2', '-W', '2', sc.restartPing], { stdio: ['ignore', 'pipe', 'ignore'] });
  let bgOut = '';
  bg.stdout?.on('data', (d: Buffer) => (bgOut += d.toString()));
  await sleep(2000);
  s1.child.kill('SIGKILL');
  await s1.exit;
  results.sessionsWhileDown = await sh('ip', 'l2tp', 'show', 'session');
  // the restarted process is an upgrade: the devices carry the previous release's marker
  const l2specOf = new Map(
    (results.links1 as { ifname: string; ifalias?: string }[]).map((l) => [
      l.ifname,
      / l2spec=(none|default)$/.exec(l.ifalias ?? '')?.[1] ?? 'default',
    ]),
  );
  for (const n of names)
    await sh('ip', 'link', 'set', 'dev', n, 'alias', `kube-l2tp l2spec=${l2specOf.get(n)}`);
  const upgraded = createKernelBackend({ logger: silentLogger() });
  results.ownedWithPreviousMarker = Object.fromEntries(
    (await upgraded.listSessions()).filter((x) => names.includes(x.ifname)).map((x) => [x.ifname, x.owned]),
  );
  await upgraded.close({ keepDevices: true });
  await sleep(1000);
  const s2 = startStatic(2);
  await waitFor(
    async () => (await logMsgs(s2.logFile)).some((m) => m.msg === 'ready' || m.msg === 'static setup failed'),
    180_000,
    'static run 2 ready',
  );
  await sleep(2000);
  bg.kill('SIGINT');
  await new Promise((r) => bg.on('exit', r));
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(bgOut);
  results.restartPing = { transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
  results.static2Messages = (await logMsgs(s2.logFile)).map((x) => x.msg);
  results.ifindexBefore = before;
  results.ifindexAfter = await ifindexes(names);
  results.links2 = JSON.parse((await runCapture('ip', ['-j', '-d', 'link', 'show'])).stdout || '[]');

  // 4. the backend API directly: observation, counters, typed errors, ownership
  await log('backend API');
  process.env.KUBE_L2TP_NETLINK_TRACE = join(share, 'trace-api.jsonl');
  const be = createKernelBackend({ logger: silentLogger() });
  results.listTunnels = await be.listTunnels();
  results.listSessions = await be.listSessions();
  const first = sc.sessions[0]!;
  results.counters = await be.counters(first.tunnelId, first.sessionId);
  results.countersMissing = (await be.counters(first.tunnelId, 0x7fffffff)) ?? null;
  results.allCounters = Object.fromEntries(await be.allCounters()); // one dump
  results.firstKey = `${first.tunnelId}/${first.sessionId}`;
  const sock = NetlinkSocket.open(NETLINK_GENERIC);
  const l2tp = await L2tpNetlink.open(sock);
  const errs: Record<string, unknown> = {};
  const capture = async (name: string, f: () => Promise<unknown>) => {
    try {
      await f();
      errs[name] = 'no error';
    } catch (e) {
      errs[name] =
        e instanceof NetlinkError
          ? {
              type: 'NetlinkError',
              code: e.code,
              tunnelId: e.tunnelId,
              sessionId: e.sessionId,
              attribute: e.attribute,
              kernelMessage: e.kernelMessage,
              message: e.message,
            }
          : e instanceof KernelConflictError
            ? { type: 'KernelConflictError', tunnelId: e.tunnelId, message: e.message }
            : { type: (e as Error).name, message: (e as Error).message };
    }
  };
  await capture('tunnelExists', () =>
    l2tp.createTunnel({
      tunnelId: first.tunnelId,
      peerTunnelId: 9,
      encap: 'udp',
      local: '127.0.0.1',
      remote: '127.0.0.1',
      udpSourcePort: 0,
      udpDestinationPort: 9,
    }),
  );
  const other = sc.sessions.find((s) => s.tunnelId !== first.tunnelId)!;
  await capture('sessionIdTakenInOtherTunnel', () =>
    l2tp.createSession({
      tunnelId: other.tunnelId,
      sessionId: first.sessionId,
      peerSessionId: 77,
      l2specType: 'none',
    }),
  );
  await capture('noSuchTunnel', () =>
    l2tp.createSession({ tunnelId: 424242, sessionId: 5, peerSessionId: 5, l2specType: 'none' }),
  );
  await capture('pppNotSupported', () =>
    l2tp.createSession({
      tunnelId: first.tunnelId,
      sessionId: 4040,
      peerSessionId: 4040,
      l2specType: 'none',
      pwType: L2TP_PWTYPE.PPP,
    }),
  );
  // a malformed attribute (CONN_ID as u16): policy validation answers with an extended ACK
  await capture('badAttribute', () =>
    sock.request(
      l2tp.family.id,
      encodeGenl(L2TP_CMD.TUNNEL_CREATE, 1, [
        { type: L2TP_ATTR.PEER_CONN_ID, u32: 5 },
        { type: L2TP_ATTR.CONN_ID, u16: 5 },
      ]),
      {
        op: 'l2tp TUNNEL_CREATE',
        familyHeaderLen: GENL_HDRLEN,
        attrName: l2tpAttrName,
        context: { tunnelId: 5 },
      },
    ),
  );
  await capture('deleteMissingSession', () => l2tp.deleteSession(first.tunnelId, 0x7ffffff0));
  // a tunnel someone else made with our ID but other parameters: reported, never deleted
  await sh(
    'ip',
    'l2tp',
    'add',
    'tunnel',
    'tunnel_id',
    '4343',
    'peer_tunnel_id',
    '1',
    'encap',
    'udp',
    'local',
    '127.0.0.1',
    'remote',
    '127.0.0.1',
    'udp_sport',
    '40001',
    'udp_dport',
    '40002',
  );
  await capture('foreignTunnelConflict', () =>
    be.ensureTunnel({
      tunnelId: 4343,
      peerTunnelId: 2,
      encap: 'udp',
      local: '127.0.0.1',
      remote: '127.0.0.1',
      udpSourcePort: 40001,
      udpDestinationPort: 40002,
      udpChecksum: false,
    }),
  );
  results.foreignStillThere = (await sh('ip', 'l2tp', 'show', 'tunnel', 'tunnel_id', '4343')).includes(
    'Tunnel 4343',
  );
  await sh('ip', 'l2tp', 'del', 'tunnel', 'tunnel_id', '4343');
  // a tunnel someone else made that matches: adopted, and close({keepDevices:true}) leaves it
  results.errors = errs;

  // changes on live sessions: sequencing in place (same device), sublayer type by recreation
  const base = { sendSequence: false, requireSequence: false, reorderTimeoutMs: 0 };
  const specOf = (q: typeof sc.seq) => ({
    ...base,
    tunnelId: q.tunnelId,
    sessionId: q.sessionId,
    peerSessionId: q.peerSessionId,
    ifname: q.ifname,
    mtu: q.mtu,
    l2specType: q.l2specType,
  });
  const seqSpec = specOf(sc.seq);
  const seqBefore = (await ifindexes([sc.seq.ifname]))[sc.seq.ifname];
  await be.ensureSession({ ...seqSpec, sendSequence: true });
  const seqObs = (await be.listSessions()).find((x) => x.sessionId === sc.seq.sessionId);
  results.seqModified = {
    sendSequence: seqObs?.params?.sendSequence,
    sameIfindex: (await ifindexes([sc.seq.ifname]))[sc.seq.ifname] === seqBefore,
  };
  await be.ensureSession(seqSpec);
  results.seqReverted = (await be.listSessions()).find((x) => x.sessionId === sc.seq.sessionId)?.params
    ?.sendSequence;
  const flip = sc.flip;
  const flipSpec = specOf(flip);
  const i0 = (await ifindexes([flip.ifname]))[flip.ifname];
  const other2 = flip.l2specType === 'none' ? 'default' : 'none';
  await be.ensureSession({ ...flipSpec, l2specType: other2 });
  const i1 = (await ifindexes([flip.ifname]))[flip.ifname];
  const aliasOf = async (n: string) =>
    (
      JSON.parse((await runCapture('ip', ['-j', 'link', 'show', 'dev', n])).stdout || '[]') as {
        ifalias?: string;
      }[]
    )[0]?.ifalias ?? '';
  const alias1 = await aliasOf(flip.ifname);
  await be.ensureSession({ ...flipSpec, l2specType: flip.l2specType });
  const i2 = (await ifindexes([flip.ifname]))[flip.ifname];
  await sh('ip', 'addr', 'add', flip.addr, 'dev', flip.ifname);
  results.flip = {
    i0,
    i1,
    i2,
    alias1,
    alias2: await aliasOf(flip.ifname),
    pingAfter: await pingCount(flip.peer, 3),
  };

  // IPv6 underlay: UDP and IP encapsulation (created, read back, deleted; no traffic)
  await sh('ip', '-6', 'addr', 'add', 'fd00:203::2/64', 'dev', 'eth0', 'nodad');
  const v6 = { udpChecksum: false, local: 'fd00:203::2', remote: 'fd00:203::1' };
  await be.ensureTunnel({
    ...v6,
    tunnelId: 300,
    peerTunnelId: 400,
    encap: 'udp',
    udpSourcePort: 17005,
    udpDestinationPort: 17006,
  });
  await be.ensureTunnel({ ...v6, tunnelId: 301, peerTunnelId: 401, encap: 'ip' });
  await be.ensureSession({
    ...base,
    tunnelId: 300,
    sessionId: 3001,
    peerSessionId: 4001,
    ifname: 'kl2tp-v6',
    mtu: 1280,
    l2specType: 'none',
  });
  await be.ensureSession({
    ...base,
    tunnelId: 301,
    sessionId: 3002,
    peerSessionId: 4002,
    ifname: 'kl2tp-v6ip',
    mtu: 1280,
    l2specType: 'default',
  });
  results.v6Show = await sh('ip', 'l2tp', 'show', 'tunnel');
  results.v6Tunnels = (await be.listTunnels()).filter((t) => t.tunnelId >= 300);
  results.v6Sessions = (await be.listSessions())
    .filter((x) => x.tunnelId >= 300)
    .map((x) => [x.sessionId, x.ifname, x.owned, x.up, x.mtu]);
  await be.deleteTunnel(300);
  await be.deleteTunnel(301);
  results.v6After = (await sh('ip', 'l2tp', 'show', 'tunnel')).includes('Tunnel 30');
  results.v6LinksAfter = await ifindexes(['kl2tp-v6', 'kl2tp-v6ip']);

  // Exclusive mode: the CNI moves a session's device into the pod and renames it there. What the
  // kernel then reports, and whether the backend knows the session as its own with the CNI's records
  // (podDevice) and without them; converged as it is; deleted with the pod's device.
  await log('exclusive');
  const POD = 'kx-pod';
  await sh('ip', 'netns', 'add', POD);
  const podDevice = async (n: string) =>
    n === 'kl2tp-ex' ? { netns: `/run/netns/${POD}`, ifname: 'net1' } : undefined;
  await be.ensureTunnel({
    ...v6,
    tunnelId: 302,
    peerTunnelId: 402,
    encap: 'udp',
    udpSourcePort: 17007,
    udpDestinationPort: 17008,
  });
  const exSpec = {
    ...base,
    tunnelId: 302,
    sessionId: 3003,
    peerSessionId: 4003,
    ifname: 'kl2tp-ex',
    mtu: 1280,
    l2specType: 'default' as const,
  };
  await be.ensureSession(exSpec);
  await sh('ip', 'link', 'set', 'kl2tp-ex', 'netns', POD);
  await sh('ip', '-n', POD, 'link', 'set', 'kl2tp-ex', 'name', 'net1');
  const podIfindex = async () =>
    Number((await sh('ip', 'netns', 'exec', POD, 'cat', '/sys/class/net/net1/ifindex')).trim()) || -1;
  const exIfindex = await podIfindex();
  const exOf = async (b: typeof be) => (await b.listSessions()).find((x) => x.sessionId === 3003);
  const plain = createKernelBackend({ logger: silentLogger() });
  const withRecords = createKernelBackend({ logger: silentLogger(), podDevice });
  const reported = await exOf(plain);
  const seen = await exOf(withRecords);
  let ensureError = 'no error';
  await withRecords.ensureSession(exSpec).catch((e: unknown) => (ensureError = (e as Error).message));
  const ifindexAfterEnsure = await podIfindex();
  // a changed session MTU: the backend leaves the pod's device as it is, the agent's pod step (from
  // the CNI's record of the attachment) gives it the new one inside the pod
  const mtuSpec = { ...exSpec, mtu: 1300 };
  let mtuEnsureError = 'no error';
  await withRecords.ensureSession(mtuSpec).catch((e: unknown) => (mtuEnsureError = (e as Error).message));
  const podMtuOf = async () =>
    Number((await sh('ip', 'netns', 'exec', POD, 'cat', '/sys/class/net/net1/mtu')).trim());
  const podMtuBackendOnly = await podMtuOf();
  const stateDir = await mkdtemp(join(tmpdir(), 'kx-cni-state-'));
  const store = new AttachmentStore(stateDir);
  const wire = { namespace: 'kx', name: 'wire' };
  await store.put({
    v: 1,
    network: 'kx',
    containerID: 'kx-container',
    ifname: 'net1',
    netns: `/run/netns/${POD}`,
    mode: 'exclusive',
    pseudowire: wire,
    device: 'kl2tp-ex',
    createdAt: new Date().toISOString(),
    mtu: exSpec.mtu,
    deviceMtu: exSpec.mtu,
  });
  const syncPodMtu = podMtuSync({ store, locker: new ProcessLocker(), logger: silentLogger() });
  const mtuProblems = await syncPodMtu([{ pseudowire: wire, ifname: 'kl2tp-ex', mtu: mtuSpec.mtu }], 'all');
  const podMtu = await podMtuOf();
  const recordAfter = await store.get('kx-container', 'net1');
  await rm(stateDir, { recursive: true, force: true });
  await withRecords.deleteSession(302, 3003);
  results.exclusive = {
    kernelIfname: reported?.ifname,
    ownedWithoutRecords: reported?.owned,
    ownedWithRecords: seen?.owned,
    upWithRecords: seen?.up,
    ensureError,
    sameDevice: exIfindex > 0 && ifindexAfterEnsure === exIfindex,
    mtuEnsureError,
    mtuProblems: [...mtuProblems.values()].flat().map((x) => x.why),
    podMtuBackendOnly,
    podMtu,
    recordMtu: [recordAfter?.mtu, recordAfter?.deviceMtu],
    sessionAfterDelete: (await sh('ip', 'l2tp', 'show', 'session')).includes('Session 3003 '),
    podDeviceAfterDelete: await podIfindex(),
    // a tunnel left without sessions carries no sign of whose it is: another process (a restarted
    // agent) lists it as not its own, which is why the agent keeps the tunnels it reported up
    sessionlessTunnelOwned: (await plain.listTunnels()).find((t) => t.tunnelId === 302)?.owned,
  };
  await plain.close({ keepDevices: true });
  await withRecords.close({ keepDevices: true });
  await be.deleteTunnel(302);
  await sh('ip', 'netns', 'del', POD);
  results.dumpTunnels = (await l2tp.dumpTunnels()).map((t) => ({
    ...t,
    stats: t.stats ? 'present' : 'absent',
  }));
  sock.close();
  await be.close({ keepDevices: true });
  results.afterKeepClose = await sh('ip', 'l2tp', 'show', 'session');

  // 5. stop: static mode removes what it created
  await log('stop');
  s2.child.kill('SIGTERM');
  results.static2Exit = await s2.exit;
  results.showTunnelAfter = (await sh('ip', 'l2tp', 'show', 'tunnel')).trim();
  results.showSessionAfter = (await sh('ip', 'l2tp', 'show', 'session')).trim();
  results.linksAfter = await ifindexes(names);
}

main()
  .catch((e: unknown) => {
    results.fatal = e instanceof Error ? (e.stack ?? e.message) : String(e);
  })
  .finally(async () => {
    await writeFile(
      join(share, 'results.json'),
      JSON.stringify(results, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2),
    );
    process.exit(0);
  });
