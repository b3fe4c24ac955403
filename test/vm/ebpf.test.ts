// Interop of the ebpf backend with the Linux kernel's own l2tp_eth: Debian's kernel booted under QEMU
// runs `ip l2tp` pseudowires across encap x cookie x sublayer (UDP: one tunnel, IP encapsulation:
// another, six sessions each), and the host side runs the project's ebpf backend in static mode.
// Every session is pinged both ways, and with frames of the full computed MTU.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sessionMtu } from '../../lib/wire/session.js';
import { ipIn, Lab, ping, requireRoot } from '../harness/netns.js';
import { chrootPrelude, runVm, vmUnavailable, type VmResult } from '../harness/vm.js';
import { privateBpffs } from '../integration/datapath-ebpf-lab.js';
import { staticArgv } from '../integration/datapath-lab.js';
import { stopProcess } from '../harness/process.js';

const skip = vmUnavailable();

interface Dump {
  tunnels: { drops: Record<string, number>; sessions: { drops: Record<string, number> }[] }[];
}
const dropsOf = (d: Dump | undefined) => {
  const out: Record<string, number> = {};
  for (const t of d?.tunnels ?? [])
    for (const r of [t.drops, ...t.sessions.map((s) => s.drops)])
      for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
};
const NS = `ebvm${process.pid % 10000}`;
const HOST = '10.205.0.1';
const GUEST = '10.205.0.2';
const HOST6 = 'fd00:205::1';
const GUEST6 = 'fd00:205::2';

interface Pw {
  i: number;
  encap: 'udp' | 'ip';
  cookie: 0 | 4 | 8;
  l2spec: 'none' | 'default';
  /** Over the IPv6 underlay (the kernel accepts our zero UDP checksums with udp6_csum_rx off). */
  v6?: boolean;
  /** The tunnels ask for UDP checksums: the kernel's socket verifies ours and, over IPv6, refuses
   * zero ones. */
  csum?: boolean;
}
const PWS: Pw[] = [];
for (const encap of ['udp', 'ip'] as const)
  for (const cookie of [0, 4, 8] as const)
    for (const l2spec of ['none', 'default'] as const) PWS.push({ i: PWS.length, encap, cookie, l2spec });
PWS.push(
  { i: PWS.length, encap: 'udp', cookie: 4, l2spec: 'default', v6: true },
  { i: PWS.length + 1, encap: 'ip', cookie: 8, l2spec: 'none', v6: true },
  { i: PWS.length + 2, encap: 'udp', cookie: 4, l2spec: 'default', csum: true },
  { i: PWS.length + 3, encap: 'udp', cookie: 8, l2spec: 'none', v6: true, csum: true },
);

type TunnelKey = 'udp' | 'ip' | 'udp6' | 'ip6' | 'udpc' | 'udp6c';
const TUNNEL: Record<TunnelKey, { guest: number; host: number }> = {
  udp: { guest: 100, host: 200 },
  ip: { guest: 101, host: 201 },
  udp6: { guest: 102, host: 202 },
  ip6: { guest: 103, host: 203 },
  udpc: { guest: 104, host: 204 },
  udp6c: { guest: 105, host: 205 },
};
const tunnelOf = (p: Pw): TunnelKey => `${p.encap}${p.v6 ? '6' : ''}${p.csum ? 'c' : ''}` as TunnelKey;
const guestSession = (p: Pw) => 1000 + p.i;
const hostSession = (p: Pw) => 2000 + p.i;
/** What the guest sends (and the host expects), and the other way round. */
const guestCookie = (p: Pw) => (p.cookie ? Buffer.alloc(p.cookie, 0x30 + p.i).toString('hex') : undefined);
const hostCookie = (p: Pw) => (p.cookie ? Buffer.alloc(p.cookie, 0x60 + p.i).toString('hex') : undefined);
const mtuOf = (p: Pw) =>
  sessionMtu({ encap: p.encap, ipv6: !!p.v6, cookieLength: p.cookie, l2specType: p.l2spec });

function hostConfig() {
  const tunnel = (key: TunnelKey) => ({
    tunnelId: TUNNEL[key].host,
    peerTunnelId: TUNNEL[key].guest,
    encap: key.startsWith('udp') ? 'udp' : 'ip',
    local: key.includes('6') ? HOST6 : HOST,
    remote: key.includes('6') ? GUEST6 : GUEST,
    ...(key === 'udp' ? { udpSourcePort: 17002, udpDestinationPort: 17001 } : {}),
    ...(key === 'udp6' ? { udpSourcePort: 17004, udpDestinationPort: 17003 } : {}),
    ...(key === 'udpc' ? { udpSourcePort: 17006, udpDestinationPort: 17005, udpChecksum: true } : {}),
    ...(key === 'udp6c' ? { udpSourcePort: 17008, udpDestinationPort: 17007, udpChecksum: true } : {}),
    sessions: PWS.filter((p) => tunnelOf(p) === key).map((p) => ({
      sessionId: hostSession(p),
      peerSessionId: guestSession(p),
      name: `ebs${p.i}`,
      l2specType: p.l2spec,
      ...(p.cookie ? { cookie: hostCookie(p), peerCookie: guestCookie(p) } : {}),
    })),
  });
  return { tunnels: (Object.keys(TUNNEL) as TunnelKey[]).map(tunnel) };
}

/** busybox sh in the guest: the kernel's pseudowires made with the host's iproute2, then pings. */
function guestScript(): string {
  const ip = 'chroot /host /usr/sbin/ip';
  const lines = [
    chrootPrelude(),
    `${ip} l2tp add tunnel tunnel_id 100 peer_tunnel_id 200 encap udp local ${GUEST} remote ${HOST} udp_sport 17001 udp_dport 17002`,
    `${ip} l2tp add tunnel tunnel_id 101 peer_tunnel_id 201 encap ip local ${GUEST} remote ${HOST}`,
    `${ip} -6 addr add ${GUEST6}/64 dev eth0 nodad`,
    `${ip} l2tp add tunnel tunnel_id 102 peer_tunnel_id 202 encap udp local ${GUEST6} remote ${HOST6} udp_sport 17003 udp_dport 17004 udp6_csum_rx off`,
    `${ip} l2tp add tunnel tunnel_id 103 peer_tunnel_id 203 encap ip local ${GUEST6} remote ${HOST6}`,
    `${ip} l2tp add tunnel tunnel_id 104 peer_tunnel_id 204 encap udp local ${GUEST} remote ${HOST} udp_sport 17005 udp_dport 17006 udp_csum on`,
    `${ip} l2tp add tunnel tunnel_id 105 peer_tunnel_id 205 encap udp local ${GUEST6} remote ${HOST6} udp_sport 17007 udp_dport 17008 udp6_csum_tx on udp6_csum_rx on`,
  ];
  for (const p of PWS) {
    const cookies = p.cookie ? ` cookie ${guestCookie(p)} peer_cookie ${hostCookie(p)}` : '';
    lines.push(
      `${ip} l2tp add session name kl2tp${p.i} tunnel_id ${TUNNEL[tunnelOf(p)].guest} session_id ${guestSession(p)} peer_session_id ${hostSession(p)} l2spec_type ${p.l2spec}${cookies}`,
      `${ip} link set kl2tp${p.i} mtu ${mtuOf(p)} up`,
      `${ip} addr add 10.205.${10 + p.i}.2/24 dev kl2tp${p.i}`,
    );
  }
  lines.push(
    `${ip} l2tp show session > /work/sessions.txt 2>&1`,
    'touch /work/guest-ready',
    'n=0; while [ ! -f /work/host-ready ] && [ $n -lt 600 ]; do sleep 0.5; n=$((n+1)); done',
  );
  for (const p of PWS) {
    lines.push(
      `r=$(chroot /host /usr/bin/ping -c 3 -i 0.3 -W 3 10.205.${10 + p.i}.1 | grep -o '[0-9]* received' | cut -d' ' -f1)`,
      `echo "${p.i} $r" >> /work/guest-pings.txt`,
    );
  }
  lines.push(
    'touch /work/guest-done',
    'n=0; while [ ! -f /work/host-done ] && [ $n -lt 600 ]; do sleep 0.5; n=$((n+1)); done',
  );
  return lines.join('\n');
}

describe(
  'ebpf backend against the kernel l2tp_eth (Debian kernel under QEMU)',
  { skip: skip ?? false, timeout: 900_000 },
  () => {
    const lab = new Lab();
    let host: ChildProcess | undefined;
    let vm: VmResult;
    let hostLog = '';
    const hostPings: Record<number, number> = {};
    const mtuPings: Record<number, number> = {};
    let guestPings: Record<number, number> = {};
    let countersBefore: Dump | undefined;
    let counters: Dump | undefined;

    before(async () => {
      requireRoot();
      await lab.netns(NS);
      const dir = await mkdtemp(join(tmpdir(), 'ebvm-host-'));
      lab.onCleanup(() => rm(dir, { recursive: true, force: true }));
      await writeFile(join(dir, 'host.json'), JSON.stringify(hostConfig()));
      const bpffs = await privateBpffs(lab);
      await mkdir(join(bpffs, 'host'));
      vm = await runVm({
        kernelDir: process.env.KUBE_L2TP_KERNEL_DIR!,
        netns: NS,
        tap: 'ebvmtap0',
        hostAddr: `${HOST}/24`,
        guestAddr: `${GUEST}/24`,
        timeoutMs: 600_000,
        guestScript: guestScript(),
        whileRunning: async (work, running) => {
          await running.waitForFile('guest-ready', 400_000);
          await ipIn(NS, 'addr', 'add', `${HOST6}/64`, 'dev', 'ebvmtap0', 'nodad');
          const logFile = join(dir, 'host.log');
          host = spawn(
            'ip',
            staticArgv(NS, join(dir, 'host.json'), '--backend', 'ebpf', '--bpffs', join(bpffs, 'host')),
            { stdio: ['ignore', 'pipe', 'pipe'] },
          );
          host.stdout?.on('data', (d: Buffer) => void appendFile(logFile, d));
          host.stderr?.on('data', (d: Buffer) => void appendFile(logFile, d));
          const end = Date.now() + 60_000;
          while (!(hostLog = await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"ready"')) {
            if (Date.now() > end || host.exitCode !== null)
              throw new Error(`ebpf static mode not ready:\n${hostLog}`);
            await new Promise((res) => setTimeout(res, 200));
          }
          // frames the kernel sent before our sessions existed were rightly dropped: count from here
          const dump = async (): Promise<Dump | undefined> => {
            const from = (await readFile(logFile, 'utf8')).length;
            host!.kill('SIGUSR2');
            for (let i = 0; i < 50; i++) {
              await new Promise((res) => setTimeout(res, 100));
              const line = (await readFile(logFile, 'utf8'))
                .slice(from)
                .split('\n')
                .find((l) => l.includes('"msg":"counters"'));
              if (line) return JSON.parse(line) as Dump;
            }
            return undefined;
          };
          countersBefore = await dump();
          for (const p of PWS) await ipIn(NS, 'addr', 'add', `10.205.${10 + p.i}.1/24`, 'dev', `ebs${p.i}`);
          await writeFile(join(work, 'host-ready'), '1');
          await running.waitForFile('guest-done', 400_000);
          for (const p of PWS) {
            hostPings[p.i] = await ping(NS, `10.205.${10 + p.i}.2`, 3, ['-i', '0.3', '-W', '3']);
            mtuPings[p.i] = await ping(NS, `10.205.${10 + p.i}.2`, 2, [
              '-s',
              String(mtuOf(p) - 28),
              '-M',
              'do',
              '-W',
              '3',
            ]);
          }
          counters = await dump();
          await writeFile(join(work, 'host-done'), '1');
        },
      });
      guestPings = Object.fromEntries(
        (vm.files['guest-pings.txt'] ?? '')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' ').map(Number) as [number, number]),
      );
      if (vm.timedOut || vm.files['guest-done'] === undefined) {
        console.log('--- console\n' + vm.console.slice(-3000));
        console.log('--- guest log\n' + vm.guestLog.slice(-3000));
        console.log('--- host log\n' + hostLog.slice(-3000));
      }
    });

    after(async () => {
      await stopProcess(host);
      await lab.cleanup();
    });

    it('the guest made its kernel sessions and ran to the end', () => {
      assert.equal(vm.timedOut, false, 'VM timed out');
      for (const p of PWS)
        assert.match(vm.files['sessions.txt'] ?? '', new RegExp(`Session ${guestSession(p)} in tunnel`));
      assert.ok(vm.files['guest-done'] !== undefined, vm.guestLog.slice(-2000));
    });

    for (const p of PWS) {
      it(`${p.v6 ? 'IPv6 underlay, ' : ''}encap ${p.encap}, cookie ${p.cookie}, sublayer ${p.l2spec}${p.csum ? ', UDP checksums' : ''}: both ways, full MTU`, () => {
        assert.ok((guestPings[p.i] ?? 0) >= 2, `kernel -> ebpf: ${guestPings[p.i]}/3`);
        assert.ok((hostPings[p.i] ?? 0) >= 2, `ebpf -> kernel: ${hostPings[p.i]}/3`);
        assert.ok((mtuPings[p.i] ?? 0) >= 1, `MTU-sized frames (${mtuOf(p)}): ${mtuPings[p.i]}/2`);
      });
    }

    it('nothing the kernel sent was dropped by the ebpf receive path', () => {
      assert.ok(countersBefore && counters, 'counters dumped');
      assert.deepEqual(dropsOf(counters), dropsOf(countersBefore), 'no drop while the pings ran');
    });
  },
);
