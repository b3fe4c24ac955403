// The kernel backend on a real kernel: Debian's linux-image (l2tp_eth as modules) booted under QEMU,
// the project's own dist/ run inside it. ONE boot covers: probe, create from a static config
// (three pseudowires: UDP, IP encapsulation, UDP with cookies), `ip l2tp show` as the independent
// checker, traffic both ways against the project's USERSPACE backend on the host (interop on the
// wire), crash + restart with adoption and no loss, typed kernel errors, and removal on stop.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HARDENED_SYSCTLS } from '../../lib/netdev-hardening.js';
import { ipIn, Lab, ping, requireRoot } from '../harness/netns.js';
import { chrootPrelude, repoRoot, runVm, vmUnavailable, type VmResult } from '../harness/vm.js';
import type { GuestSession, Scenario } from './guest/kernel-cycle.js';
import { stopProcess } from '../harness/process.js';
import { staticArgv } from '../integration/datapath-lab.js';

const skip = vmUnavailable();
const NS = `kkvm${process.pid % 10000}`;
const COOKIE_A = '0102030405060708'; // guest sends, host expects
const COOKIE_B = 'a1b2c3d4'; // host sends, guest expects

interface Pw {
  name: string;
  encap: 'udp' | 'ip';
  guestTunnel: number;
  hostTunnel: number;
  guestSession: number;
  hostSession: number;
  ports?: [number, number];
  l2spec: 'default' | 'none';
  cookies?: boolean;
  subnet: number;
}
const PWS: Pw[] = [
  {
    name: 'udp',
    encap: 'udp',
    guestTunnel: 100,
    hostTunnel: 200,
    guestSession: 1001,
    hostSession: 2001,
    ports: [17001, 17002],
    l2spec: 'default',
    subnet: 10,
  },
  {
    name: 'ip',
    encap: 'ip',
    guestTunnel: 101,
    hostTunnel: 201,
    guestSession: 1002,
    hostSession: 2002,
    l2spec: 'none',
    subnet: 11,
  },
  {
    name: 'ck',
    encap: 'udp',
    guestTunnel: 102,
    hostTunnel: 202,
    guestSession: 1003,
    hostSession: 2003,
    ports: [17003, 17004],
    l2spec: 'default',
    cookies: true,
    subnet: 12,
  },
];

function yaml(side: 'guest' | 'host'): string {
  const g = side === 'guest';
  const lines = ['tunnels:'];
  for (const p of PWS) {
    lines.push(
      `  - tunnelId: ${g ? p.guestTunnel : p.hostTunnel}`,
      `    peerTunnelId: ${g ? p.hostTunnel : p.guestTunnel}`,
      `    encap: ${p.encap}`,
      `    local: 10.203.0.${g ? 2 : 1}`,
      `    remote: 10.203.0.${g ? 1 : 2}`,
    );
    if (p.ports) {
      lines.push(
        `    udpSourcePort: ${g ? p.ports[0] : p.ports[1]}`,
        `    udpDestinationPort: ${g ? p.ports[1] : p.ports[0]}`,
      );
    }
    lines.push(
      '    sessions:',
      `      - sessionId: ${g ? p.guestSession : p.hostSession}`,
      `        peerSessionId: ${g ? p.hostSession : p.guestSession}`,
      `        name: ${g ? 'kl2tp' : 'kkus'}-${p.name}`,
      `        l2specType: ${p.l2spec}`,
    );
    if (p.cookies) {
      lines.push(
        `        cookie: "${g ? COOKIE_A : COOKIE_B}"`,
        `        peerCookie: "${g ? COOKIE_B : COOKIE_A}"`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

type ErrorReport = {
  attribute?: string;
  kernelMessage?: string;
  type: string;
  code?: string;
  tunnelId?: number;
  sessionId?: number;
  message: string;
};
/** What the guest driver (guest/kernel-cycle.ts) writes to results.json. */
interface GuestResults {
  fatal?: string;
  uname: string;
  probe: { available: boolean; reason: string };
  tunnelsAfterProbe: string;
  probeUnprivileged: { available: boolean; reason: string };
  static1Messages: string[];
  static2Messages: string[];
  hardening1: Record<string, Record<string, string | undefined>>;
  showTunnel: string;
  showSession: string;
  links1: unknown;
  links2: unknown;
  ownedWithPreviousMarker: Record<string, boolean>;
  guestPings: Record<string, number>;
  sessionsWhileDown: string;
  restartPing: { transmitted: number; received: number };
  ifindexBefore: Record<string, number>;
  ifindexAfter: Record<string, number>;
  listTunnels: unknown;
  listSessions: unknown;
  counters: { txPackets: number; rxPackets: number; txBytes: number; rxBytes: number };
  countersMissing: unknown;
  allCounters: Record<string, { txPackets: number; rxPackets: number }>;
  firstKey: string;
  errors: Record<
    | 'tunnelExists'
    | 'sessionIdTakenInOtherTunnel'
    | 'noSuchTunnel'
    | 'pppNotSupported'
    | 'deleteMissingSession'
    | 'foreignTunnelConflict'
    | 'badAttribute',
    ErrorReport
  >;
  foreignStillThere: boolean;
  afterKeepClose: string;
  static2Exit: number | null;
  showTunnelAfter: string;
  showSessionAfter: string;
  linksAfter: Record<string, number>;
  exclusive?: {
    kernelIfname?: string;
    ownedWithoutRecords?: boolean;
    ownedWithRecords?: boolean;
    upWithRecords?: boolean;
    ensureError: string;
    sameDevice: boolean;
    mtuEnsureError: string;
    mtuProblems: string[];
    podMtuBackendOnly: number;
    podMtu: number;
    recordMtu: [number | undefined, number | undefined];
    sessionAfterDelete: boolean;
    podDeviceAfterDelete: number;
    sessionlessTunnelOwned?: boolean;
  };
  seqModified: { sendSequence?: boolean; sameIfindex: boolean };
  seqReverted?: boolean;
  flip: { i0: number; i1: number; i2: number; alias1: string; alias2: string; pingAfter: number };
  v6Show: string;
  v6Tunnels: { tunnelId: number; owned: boolean; params?: Record<string, unknown> }[];
  v6Sessions: [number, string, boolean, boolean, number][];
  v6After: boolean;
  v6LinksAfter: Record<string, number>;
}

describe('kernel backend on Debian kernel under QEMU', { skip: skip ?? false, timeout: 900_000 }, () => {
  const lab = new Lab();
  let hostStatic: ChildProcess | undefined;
  let hostDir = '';
  let vm: VmResult;
  let r = {} as GuestResults;
  const hostPings: Record<string, number> = {};

  before(async () => {
    requireRoot();
    const kernelDir = process.env.KUBE_L2TP_KERNEL_DIR!;
    await lab.netns(NS);
    hostDir = await mkdtemp(join(tmpdir(), 'kkvm-host-'));
    lab.onCleanup(() => rm(hostDir, { recursive: true, force: true }));
    await writeFile(join(hostDir, 'host.yaml'), yaml('host'));
    const sessions: GuestSession[] = PWS.map((p) => ({
      tunnelId: p.guestTunnel,
      sessionId: p.guestSession,
      ifname: `kl2tp-${p.name}`,
      addr: `10.203.${p.subnet}.2/24`,
      peer: `10.203.${p.subnet}.1`,
    }));
    const scenario: Scenario = {
      config: yaml('guest'),
      sessions,
      restartPing: '10.203.10.1',
      flip: { ...sessions[1]!, peerSessionId: 2002, l2specType: 'none', mtu: 1462 },
      seq: { ...sessions[0]!, peerSessionId: 2001, l2specType: 'default', mtu: 1446 },
    };
    const t0 = Date.now();
    vm = await runVm({
      kernelDir,
      netns: NS,
      tap: 'kkvmtap0',
      hostAddr: '10.203.0.1/24',
      guestAddr: '10.203.0.2/24',
      timeoutMs: 600_000,
      files: { 'scenario.json': JSON.stringify(scenario) },
      guestScript: [
        chrootPrelude(),
        `chroot /host /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp ${process.execPath} ${join(repoRoot(), 'dist/test/vm/guest/kernel-cycle.js')} /tmp/work`,
      ].join('\n'),
      whileRunning: async (_work, running) => {
        // the host peer: the project's userspace backend in static mode, in the uplink namespace
        const logFile = join(hostDir, 'host-static.log');
        hostStatic = spawn('ip', staticArgv(NS, join(hostDir, 'host.yaml'), '--backend', 'userspace'), {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        hostStatic.stdout?.on('data', (d: Buffer) => void appendFile(logFile, d));
        hostStatic.stderr?.on('data', (d: Buffer) => void appendFile(logFile, d));
        const end = Date.now() + 60_000;
        while (!(await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"ready"')) {
          if (Date.now() > end || hostStatic.exitCode !== null) {
            throw new Error(
              `userspace static mode did not become ready:\n${await readFile(logFile, 'utf8').catch(() => '')}`,
            );
          }
          await new Promise((res) => setTimeout(res, 200));
        }
        for (const p of PWS) {
          await ipIn(NS, 'addr', 'add', `10.203.${p.subnet}.1/24`, 'dev', `kkus-${p.name}`);
          await ipIn(NS, 'link', 'set', `kkus-${p.name}`, 'up');
        }
        await running.waitForFile('guest-ready', 400_000);
        for (const p of PWS) hostPings[p.name] = await ping(NS, `10.203.${p.subnet}.2`, 3);
        await writeFile(join(_work, 'host-done'), '1');
      },
    });
    console.log(`VM run took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    try {
      r = JSON.parse(vm.files['results.json'] ?? '{}') as GuestResults;
    } catch {
      r = {} as GuestResults;
    }
    if (!vm.files['results.json'] || r.fatal) {
      console.log('--- console\n' + vm.console.slice(-4000));
      console.log('--- guest log\n' + vm.guestLog.slice(-4000));
      console.log('--- driver log\n' + (vm.files['driver.log'] ?? ''));
      for (const f of ['static1.log', 'static2.log'])
        console.log(`--- ${f}\n${(vm.files[f] ?? '').slice(-3000)}`);
    }
  });

  after(async () => {
    await stopProcess(hostStatic);
    await lab.cleanup();
  });

  it('the guest ran to the end', () => {
    assert.equal(vm.timedOut, false, 'VM timed out');
    assert.equal(r.fatal, undefined, `guest driver failed: ${r.fatal}`);
    assert.match(r.uname, /^\d+\.\d+/);
  });

  it('probe: family resolves and ETH pseudowires work, without leaving the probe tunnel', () => {
    assert.equal(r.probe.available, true, r.probe.reason);
    assert.match(r.probe.reason, /l2tp/);
    assert.equal(r.tunnelsAfterProbe, '');
  });

  it('probe without CAP_NET_ADMIN: unavailable, and the reason says so (EPERM)', () => {
    assert.deepEqual(r.probeUnprivileged, {
      available: false,
      reason: 'no CAP_NET_ADMIN in this network namespace',
    });
  });

  it('static config -> kernel tunnels and sessions, seen by ip l2tp show', () => {
    assert.ok(r.static1Messages.includes('ready'), `static run 1: ${r.static1Messages.join(' | ')}`);
    for (const p of PWS) {
      assert.match(r.showTunnel, new RegExp(`Tunnel ${p.guestTunnel}, encap ${p.encap.toUpperCase()}`));
      assert.match(r.showTunnel, new RegExp(`Peer tunnel ${p.hostTunnel}`));
      assert.match(r.showSession, new RegExp(`Session ${p.guestSession} in tunnel ${p.guestTunnel}`));
      assert.match(r.showSession, new RegExp(`Peer session ${p.hostSession}, tunnel ${p.hostTunnel}`));
      assert.match(r.showSession, new RegExp(`interface name: kl2tp-${p.name}`));
    }
    assert.match(r.showTunnel, /From 10\.203\.0\.2 to 10\.203\.0\.1/);
    assert.match(r.showTunnel, /UDP source \/ dest ports: 17001\/17002/);
    assert.match(r.showSession, new RegExp(`cookie ${COOKIE_A}`));
    assert.match(r.showSession, new RegExp(`peer cookie ${COOKIE_B}`));
    const links = r.links1 as { ifname: string; mtu: number; ifalias?: string; flags: string[] }[];
    const mtus: Record<string, number> = { udp: 1446, ip: 1462, ck: 1438 };
    for (const p of PWS) {
      const l = links.find((x) => x.ifname === `kl2tp-${p.name}`)!;
      assert.ok(l, `kl2tp-${p.name} exists`);
      assert.equal(
        l.ifalias,
        `kube-l2tp tunnel=${p.guestTunnel} session=${p.guestSession} l2spec=${p.l2spec}`,
      );
      assert.ok(l.flags.includes('UP'));
      assert.equal(l.mtu, mtus[p.name], `MTU of kl2tp-${p.name}`);
      // no IPv6 and no ARP for the node's addresses on the kernel's l2tpeth either
      assert.deepEqual(r.hardening1[`kl2tp-${p.name}`], HARDENED_SYSCTLS, `kl2tp-${p.name} hardened`);
    }
  });

  it('interop: kernel (guest) <-> userspace backend (host), UDP, IP encapsulation, cookies, both ways', () => {
    for (const p of PWS) {
      assert.ok(
        (r.guestPings[`kl2tp-${p.name}`] ?? 0) >= 3,
        `guest -> host over ${p.name}: ${r.guestPings[`kl2tp-${p.name}`]}/4`,
      );
      assert.ok(hostPings[p.name]! >= 2, `host -> guest over ${p.name}: ${hostPings[p.name]}/3`);
    }
  });

  it('a crashed process leaves the sessions forwarding; the restarted (upgraded) one adopts them', () => {
    for (const p of PWS) assert.match(r.sessionsWhileDown, new RegExp(`Session ${p.guestSession} in tunnel`));
    assert.ok(r.static2Messages.includes('ready'), `static run 2: ${r.static2Messages.join(' | ')}`);
    assert.equal(
      r.static2Messages.filter((m: string) => m === 'kernel backend: adopted existing session').length,
      PWS.length,
    );
    assert.equal(
      r.static2Messages.filter((m: string) => m === 'kernel backend: adopted existing tunnel').length,
      PWS.length,
    );
    assert.ok(!r.static2Messages.includes('kernel backend: session created'));
    assert.deepEqual(r.ifindexAfter, r.ifindexBefore, 'same devices (ifindex) after the restart');
    // the guest wrote the previous release's marker before the restart: still ours, adopted, re-marked
    assert.deepEqual(
      r.ownedWithPreviousMarker,
      Object.fromEntries(PWS.map((p) => [`kl2tp-${p.name}`, true])),
    );
    const links = r.links2 as { ifname: string; ifalias?: string }[];
    for (const p of PWS) {
      assert.equal(
        links.find((x) => x.ifname === `kl2tp-${p.name}`)?.ifalias,
        `kube-l2tp tunnel=${p.guestTunnel} session=${p.guestSession} l2spec=${p.l2spec}`,
      );
    }
    assert.ok(r.restartPing.transmitted >= 5, `pings during restart: ${JSON.stringify(r.restartPing)}`);
    assert.equal(
      r.restartPing.received,
      r.restartPing.transmitted,
      `no loss across the restart: ${JSON.stringify(r.restartPing)}`,
    );
  });

  it('observation and per-session statistics through the backend API', () => {
    const sessions = r.listSessions as {
      tunnelId: number;
      sessionId: number;
      owned: boolean;
      up: boolean;
      mtu: number;
      params: Record<string, unknown>;
    }[];
    for (const p of PWS) {
      const s = sessions.find((x) => x.sessionId === p.guestSession);
      assert.ok(s && s.owned && s.up && s.tunnelId === p.guestTunnel);
      assert.equal(s.params.peerSessionId, p.hostSession);
      if (p.cookies) assert.equal(s.params.cookie, COOKIE_A);
    }
    const tunnels = r.listTunnels as { tunnelId: number; owned: boolean; params?: Record<string, unknown> }[];
    const t = tunnels.find((x) => x.tunnelId === 100);
    assert.ok(t?.owned);
    assert.deepEqual(
      { ...t.params },
      {
        tunnelId: 100,
        peerTunnelId: 200,
        encap: 'udp',
        local: '10.203.0.2',
        remote: '10.203.0.1',
        udpChecksum: false,
        udpSourcePort: 17001,
        udpDestinationPort: 17002,
      },
    );
    assert.ok(r.counters.txPackets > 0 && r.counters.rxPackets > 0, JSON.stringify(r.counters));
    assert.ok(r.counters.rxBytes > 0 && r.counters.txBytes > 0);
    assert.equal(r.countersMissing, null);
    // the dump the agent reads every pass has the same session, counted at least as far
    const d = r.allCounters[r.firstKey];
    assert.ok(d, `${r.firstKey} in the counters dump: ${JSON.stringify(r.allCounters)}`);
    assert.ok(d.txPackets >= r.counters.txPackets && d.rxPackets >= r.counters.rxPackets);
  });

  it('kernel errors become typed errors naming the ID at fault', () => {
    const e = r.errors;
    assert.deepEqual(
      [e.tunnelExists.type, e.tunnelExists.code, e.tunnelExists.tunnelId],
      ['NetlinkError', 'EEXIST', 100],
    );
    assert.deepEqual(
      [e.sessionIdTakenInOtherTunnel.code, e.sessionIdTakenInOtherTunnel.sessionId],
      ['EEXIST', 1001],
    );
    assert.deepEqual([e.noSuchTunnel.code, e.noSuchTunnel.tunnelId], ['ENODEV', 424242]);
    assert.deepEqual([e.pppNotSupported.code, e.pppNotSupported.sessionId], ['EPROTONOSUPPORT', 4040]);
    assert.equal(e.deleteMissingSession.code, 'ENODEV');
    // extended ACK: the kernel's message and the attribute it points at
    assert.equal(e.badAttribute.code, 'ERANGE');
    assert.equal(e.badAttribute.attribute, 'L2TP_ATTR_CONN_ID');
    assert.match(e.badAttribute.kernelMessage ?? '', /policy validation/);
    assert.equal(e.foreignTunnelConflict.type, 'KernelConflictError');
    assert.equal(e.foreignTunnelConflict.tunnelId, 4343);
    assert.equal(r.foreignStillThere, true, 'a foreign tunnel is never deleted');
  });

  it('live changes: sequencing in place, sublayer type by recreating the session (detected via ifalias)', () => {
    assert.deepEqual(r.seqModified, { sendSequence: true, sameIfindex: true });
    assert.equal(r.seqReverted, false);
    const f = r.flip;
    assert.notEqual(f.i1, f.i0, 'l2spec change recreates the device');
    assert.equal(f.alias1, 'kube-l2tp tunnel=101 session=1002 l2spec=default');
    assert.notEqual(f.i2, f.i1);
    assert.equal(f.alias2, 'kube-l2tp tunnel=101 session=1002 l2spec=none');
    assert.ok(f.pingAfter >= 2, `traffic over the recreated session: ${f.pingAfter}/3`);
  });

  it('IPv6 underlay: UDP (zero checksums) and IP encapsulation tunnels created, read back, deleted', () => {
    assert.match(
      r.v6Show,
      /Tunnel 300, encap UDP\s+From fd00:203::2 to fd00:203::1\s+Peer tunnel 400\s+UDP source \/ dest ports: 17005\/17006/,
    );
    assert.match(r.v6Show, /Tunnel 301, encap IP\s+From fd00:203::2 to fd00:203::1/);
    const t300 = r.v6Tunnels.find((t) => t.tunnelId === 300);
    assert.deepEqual(t300?.params, {
      tunnelId: 300,
      peerTunnelId: 400,
      encap: 'udp',
      local: 'fd00:203::2',
      remote: 'fd00:203::1',
      udpChecksum: false,
      udpSourcePort: 17005,
      udpDestinationPort: 17006,
    });
    assert.equal(r.v6Tunnels.find((t) => t.tunnelId === 301)?.params?.encap, 'ip');
    assert.deepEqual(r.v6Sessions, [
      [3001, 'kl2tp-v6', true, true, 1280],
      [3002, 'kl2tp-v6ip', true, true, 1280],
    ]);
    assert.equal(r.v6After, false);
    assert.deepEqual(r.v6LinksAfter, { 'kl2tp-v6': -1, 'kl2tp-v6ip': -1 });
  });

  it("Exclusive mode: a session whose device the CNI moved into a pod is known as ours by the CNI's records, converged, given a changed MTU in the pod, and removed with the pod's device", () => {
    const x = r.exclusive;
    assert.ok(x, 'the guest ran the exclusive-mode step');
    // the kernel reports the device by the name the session was made with, which the node no longer has
    assert.equal(x.kernelIfname, 'kl2tp-ex');
    assert.equal(x.ownedWithoutRecords, false, 'without the records the session reads as not ours');
    assert.equal(x.ownedWithRecords, true);
    assert.equal(x.upWithRecords, true);
    assert.equal(x.ensureError, 'no error');
    assert.equal(x.sameDevice, true, "the pod's device is left as it is");
    assert.equal(x.mtuEnsureError, 'no error', 'a changed MTU: the backend still leaves the pod alone');
    assert.equal(x.podMtuBackendOnly, 1280, 'the backend alone leaves the pod on the old MTU');
    assert.deepEqual(x.mtuProblems, []);
    assert.equal(x.podMtu, 1300, "the agent's pod step gives the pod's l2tpeth the session's new MTU");
    assert.deepEqual(x.recordMtu, [1300, 1300], 'and records it');
    assert.equal(x.sessionAfterDelete, false);
    assert.equal(x.podDeviceAfterDelete, -1, "the pod's device goes with the session");
    assert.equal(
      x.sessionlessTunnelOwned,
      false,
      'a tunnel without sessions reads as not ours in a new process',
    );
  });

  it('close({keepDevices:true}) leaves sessions; stopping static mode removes everything', () => {
    for (const p of PWS) assert.match(r.afterKeepClose, new RegExp(`Session ${p.guestSession} in tunnel`));
    assert.equal(r.static2Exit, 0);
    assert.equal(r.showTunnelAfter, '');
    assert.equal(r.showSessionAfter, '');
    for (const p of PWS) assert.equal(r.linksAfter[`kl2tp-${p.name}`], -1, `kl2tp-${p.name} removed`);
  });
});
