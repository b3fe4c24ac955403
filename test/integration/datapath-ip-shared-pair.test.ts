// Two IP-encapsulated tunnels between the same two addresses (a tunnel per tenant to one router):
// each datagram is counted once, by the tunnel whose session it carries, and one that no session
// owns (unknown session ID, control message) once as well, over IPv4 and IPv6. The kernel gives every
// raw protocol-115 socket of an address pair each datagram of the pair, which the userspace pump must
// not count twice; the ebpf backend's receive program finds one entry for the pair, which must not
// count the other tunnel's datagrams, also after a restart that leaves one of the tunnels. Between two
// static datapaths with traffic on both sessions, and through the pump itself as tunnels and sessions
// come and go at run time (in a child process, in host 1's namespace).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { DROP_REASONS } from '../../datapath/backend/types.js';
import { sessionMtu } from '../../lib/wire/session.js';
import { Lab, inNs, ipIn, linkIn, ping, requireRoot } from '../harness/netns.js';
import { hostileCases, hostileSender, sum } from './hostile-traffic.js';
import { privateBpffs, startEbpfDatapath } from './datapath-ebpf-lab.js';
import {
  backgroundPing,
  podOn,
  startDatapath,
  twoHosts,
  type CountersDump,
  type DatapathProc,
  type Hosts,
} from './datapath-lab.js';

before(() => requireRoot());

const NET = 236;
const TUNNELS = [
  { tunnelId: 42, peerTunnelId: 45 },
  { tunnelId: 43, peerTunnelId: 46 },
];

/** Host n's side (1 or 2): tunnel i carries session n*1000 + 100*i + 1 (the other side's, mirrored). */
function sharedPairConfig(h: Hosts, n: 1 | 2, only?: number) {
  const [local, remote, mine, theirs] = n === 1 ? [h.u1, h.u2, 1, 2] : [h.u2, h.u1, 2, 1];
  return {
    tunnels: TUNNELS.map((t, i) => ({
      tunnelId: n === 1 ? t.tunnelId : t.peerTunnelId,
      peerTunnelId: n === 1 ? t.peerTunnelId : t.tunnelId,
      encap: 'ip',
      local,
      remote,
      sessions: [
        {
          sessionId: mine * 1000 + 100 * i + 1,
          peerSessionId: theirs * 1000 + 100 * i + 1,
          name: `l2tpeth${i}`,
          cookie: Buffer.alloc(4, mine * 16 + i + 1).toString('hex'),
          peerCookie: Buffer.alloc(4, theirs * 16 + i + 1).toString('hex'),
          l2specType: 'default',
        },
      ],
    })).filter((_, i) => only === undefined || i === only),
  };
}

/** Each tunnel's datagrams are its sessions' (forwarded or dropped) plus its own drops. */
function assertBalanced(k: CountersDump, who: string): void {
  for (const t of k.tunnels) {
    const sessions = t.sessions.reduce((n, s) => n + s.rxPackets + sum(s.drops), 0);
    assert.equal(t.rxPackets, sessions + sum(t.drops), `${who} tunnel ${t.tunnelId}: ${JSON.stringify(t)}`);
  }
}

const total = (k: CountersDump, reason: string) => k.tunnels.reduce((n, t) => n + (t.drops[reason] ?? 0), 0);

const ownersOf = (k: CountersDump, reason: string) =>
  k.tunnels.filter((t) => (t.drops[reason] ?? 0) > 0).map((t) => t.tunnelId);

for (const backend of ['userspace', 'ebpf'] as const) {
  for (const v6 of [false, true]) {
    describe(`${backend} datapath: two IP tunnels between the same addresses (IPv${v6 ? 6 : 4})`, () => {
      it('each datagram is counted once, by the tunnel owning its session', async () => {
        const lab = new Lab();
        try {
          const p = `kds${backend === 'ebpf' ? 'e' : 'p'}${v6 ? 6 : 4}`;
          const h = await twoHosts(lab, p, v6 ? 2 : 1, v6, NET);
          const bpffs = backend === 'ebpf' ? await privateBpffs(lab) : '';
          const start = (ns: string, config: unknown): Promise<DatapathProc> =>
            backend === 'ebpf' ? startEbpfDatapath(lab, ns, config, bpffs) : startDatapath(lab, ns, config);
          let d1 = await start(h.h1, sharedPairConfig(h, 1));
          const d2 = await start(h.h2, sharedPairConfig(h, 2));
          const mtu = sessionMtu({ encap: 'ip', ipv6: v6, cookieLength: 4, l2specType: 'default' });
          const net = (i: number) => `10.${NET}.${10 * (v6 ? 2 : 1) + i}`;
          for (const i of [0, 1]) {
            await podOn(lab, h.h1, `${p}a${i}`, `${p}br${i}`, `l2tpeth${i}`, `${net(i)}.1/24`, mtu);
            await podOn(lab, h.h2, `${p}b${i}`, `${p}br${i}`, `l2tpeth${i}`, `${net(i)}.2/24`, mtu);
          }
          for (const i of [0, 1])
            assert.equal(
              await ping(`${p}a${i}`, `${net(i)}.2`, 10, ['-i', '0.05']),
              10,
              `ping across session ${i}`,
            );
          for (const [who, d] of [
            ['host1', d1],
            ['host2', d2],
          ] as const) {
            const k = await d.counters();
            assert.equal(k.tunnels.length, 2);
            for (const t of k.tunnels) {
              const s = t.sessions[0]!;
              assert.ok(s.rxPackets >= 10, `${who} tunnel ${t.tunnelId} received ${s.rxPackets} frames`);
              assert.deepEqual(s.drops, {}, `${who} tunnel ${t.tunnelId} session drops`);
              assert.equal(
                t.drops.unknownSession ?? 0,
                0,
                `${who} tunnel ${t.tunnelId} counted the other tunnel's datagrams: ${JSON.stringify(t)}`,
              );
            }
            assertBalanced(k, who);
          }

          // From host 2's address: datagrams of no session, and control messages (session ID 0).
          const before = await d1.counters();
          const { cases, msg } = hostileCases('ip');
          const unknown = [msg(77777, '21'.repeat(4)), msg(2101, '21'.repeat(4))]; // 2101: host 2's own ID
          const control = cases.control!;
          const send = hostileSender(h, 'ip');
          await send([...unknown, ...control].flatMap((x) => Array<string>(10).fill(x)));
          await new Promise((r) => setTimeout(r, 300));
          const after = await d1.counters();
          assert.equal(
            total(after, 'unknownSession') - total(before, 'unknownSession'),
            unknown.length * 10,
            `unknown sessions counted once: ${JSON.stringify(after.tunnels)}`,
          );
          assert.equal(
            total(after, 'control') - total(before, 'control'),
            control.length * 10,
            'control messages counted once',
          );
          assertBalanced(after, 'host1');
          // and the sessions still carry traffic, each on its own tunnel
          assert.equal(await ping(`${p}b1`, `${net(1)}.1`, 3, ['-i', '0.1']), 3);

          if (backend === 'ebpf') {
            // The pair's one entry names the tunnel that counts what no session owns. Host 1 comes
            // back (killed, so nothing is torn down) with the other tunnel alone: the owner and its
            // session go, the survivor takes the entry over and keeps its counters, which the entry
            // never carried.
            const [owner, ...more] = ownersOf(after, 'unknownSession');
            assert.equal(
              more.length,
              0,
              `one tunnel counts the pair's unowned datagrams: ${JSON.stringify(after)}`,
            );
            const keep = TUNNELS.findIndex((t) => t.tunnelId !== owner);
            const survivor = TUNNELS[keep]!.tunnelId;
            const held = after.tunnels.find((t) => t.tunnelId === survivor)!;
            // host 2 keeps the removed session: its bridge (IPv6 on, as a host's) would still send
            // router solicitations and MLD reports over it, which host 1 counts as no session's
            await ipIn(h.h2, 'link', 'set', `l2tpeth${1 - keep}`, 'nomaster');
            // the survivor's traffic crosses the restart without a gap: the entry changes hands in
            // place, and the receive program stays on the underlay
            const COUNT = 600;
            let pinging = true;
            const pinged = backgroundPing(lab, `${p}a${keep}`, `${net(keep)}.2`, COUNT, ['-W', '1']).finally(
              () => (pinging = false),
            );
            await new Promise((r) => setTimeout(r, 500));
            await d1.kill9();
            d1 = await start(h.h1, sharedPairConfig(h, 1, keep));
            assert.ok(pinging, 'the ping outlasts the restart');
            const { received } = await pinged;
            assert.equal(received, COUNT, `the survivor lost ${COUNT - received} of ${COUNT} pings`);
            assert.equal(
              await linkIn(h.h1, `l2tpeth${1 - keep}`),
              undefined,
              "the removed tunnel's session device",
            );
            assert.equal(await ping(`${p}a${keep}`, `${net(keep)}.2`, 3, ['-i', '0.1']), 3);
            await send(unknown.flatMap((x) => Array<string>(10).fill(x)));
            await new Promise((r) => setTimeout(r, 300));
            const k = await d1.counters();
            assert.deepEqual(
              k.tunnels.map((t) => t.tunnelId),
              [survivor],
            );
            const t = k.tunnels[0]!;
            assert.ok(
              t.rxPackets >= held.rxPackets + COUNT + 3 + unknown.length * 10,
              `counters kept: ${JSON.stringify({ held, t })}`,
            );
            assert.equal(
              (t.drops.unknownSession ?? 0) - (held.drops.unknownSession ?? 0),
              unknown.length * 10,
              'the survivor counts what no session owns',
            );
            assertBalanced(k, 'host1 restarted');
          }
          assert.equal(await d1.stop(), 0);
          assert.equal(await d2.stop(), 0);
        } finally {
          await lab.cleanup();
        }
      });
    });
  }
}

interface ChildTunnel {
  rx: number;
  drops: number[];
  sessions: Record<string, number>;
}
interface ChildReport {
  steps: { step: string; after: Record<string, ChildTunnel> }[];
  duplicate: string;
  fatal: string[];
}

/** A tunnel's counters as the steps below expect them: datagrams, the two drops sent, sessions' rx. */
function brief(t: ChildTunnel) {
  const unknownSession = t.drops[DROP_REASONS.indexOf('unknownSession')] ?? 0;
  const control = t.drops[DROP_REASONS.indexOf('control')] ?? 0;
  const other = t.drops.reduce((n, x) => n + x, 0) - unknownSession - control;
  return { rx: t.rx, unknownSession, control, other, sessions: t.sessions };
}

for (const v6 of [false, true]) {
  describe(`userspace pump: tunnels joining and leaving an address pair at run time (IPv${v6 ? 6 : 4})`, () => {
    it('sessions added and removed move their datagrams; the first tunnel left counts the unowned', async () => {
      const lab = new Lab();
      try {
        const h = await twoHosts(lab, v6 ? 'kdsr6' : 'kdsr4', v6 ? 4 : 3, v6, NET);
        const child = fileURLToPath(new URL('./ip-shared-pair-child.js', import.meta.url));
        const out = await inNs(h.h1, process.execPath, child, h.u1, h.u2, h.h2);
        const r = JSON.parse(out.trim().split('\n').pop()!) as ChildReport;
        const steps = Object.fromEntries(
          r.steps.map((s) => [
            s.step,
            Object.fromEntries(Object.entries(s.after).map(([k, t]) => [k, brief(t)])),
          ]),
        );
        const none = { unknownSession: 0, control: 0, other: 0 };
        // 5 datagrams of each: sessions 11 (A) and 21 (B), unknown 99, a control message
        assert.deepEqual(steps['two tunnels'], {
          A: { rx: 15, unknownSession: 5, control: 5, other: 0, sessions: { 11: 5 } },
          B: { rx: 5, ...none, sessions: { 21: 5 } },
        });
        // 11 (now no one's) and 22 (B's since just now)
        assert.deepEqual(steps['B gained 22, A lost 11'], {
          A: { rx: 20, unknownSession: 10, control: 5, other: 0, sessions: {} },
          B: { rx: 10, ...none, sessions: { 21: 5, 22: 5 } },
        });
        assert.match(
          r.duplicate,
          /ID in use.*File exists/,
          'a session ID another tunnel of the pair has is refused',
        );
        // B, the oldest left, counts what no session owns from now on
        assert.deepEqual(steps['A, the first, closed'], {
          B: { rx: 20, unknownSession: 5, control: 0, other: 0, sessions: { 21: 10, 22: 5 } },
        });
        assert.deepEqual(steps['C joined with 11'], {
          B: { rx: 25, unknownSession: 10, control: 0, other: 0, sessions: { 21: 10, 22: 5 } },
          C: { rx: 5, ...none, sessions: { 11: 5 } },
        });
        // every tunnel closed: the next one opens the pair afresh
        assert.deepEqual(steps['all closed, D alone'], {
          D: { rx: 10, unknownSession: 5, control: 0, other: 0, sessions: { 21: 5 } },
        });
        assert.deepEqual(r.fatal, []);
      } finally {
        await lab.cleanup();
      }
    });
  });
}
