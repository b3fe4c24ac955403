// Runs inside host 1's network namespace: IP-encapsulated tunnels between the same two addresses,
// made, changed and closed at run time through the pump itself, with datagrams sent from host 2
// between the steps. Prints each step's counters as one JSON line for the test to judge.
import { loadPump, type TunnelHandle } from '../../datapath/backend/userspace/native.js';
import { hostileCases, hostileSender } from './hostile-traffic.js';

const [u1 = '', u2 = '', h2 = ''] = process.argv.slice(2);
const pump = loadPump();
const fatal: string[] = [];
const cfg = {
  encap: 'ip',
  family: u1.includes(':') ? 6 : 4,
  local: u1,
  remote: u2,
  udpChecksum: false,
} as const;
const { cases, msg } = hostileCases('ip');
const CONTROL = 0;

const tunnels = new Map<string, { h: TunnelHandle; sessions: Set<number> }>();
function open(name: string): void {
  tunnels.set(name, {
    h: pump.createTunnel(cfg, (e) => {
      if (e.fatal) fatal.push(e.message);
    }),
    sessions: new Set(),
  });
}
function close(name: string): void {
  pump.closeTunnel(tunnels.get(name)!.h, false);
  tunnels.delete(name);
}
let taps = 0;
function add(name: string, sessionId: number): void {
  const t = tunnels.get(name)!;
  const tap = pump.openTap(`kdspr${taps++}`, false);
  try {
    pump.addSession(t.h, {
      sessionId,
      peerSessionId: sessionId + 1000,
      l2specLength: 4,
      sendSequence: false,
      requireSequence: false,
      tapFd: tap.fd,
      vnetHdr: false,
    });
  } catch (err) {
    pump.closeFd(tap.fd);
    throw err;
  }
  t.sessions.add(sessionId);
}
function remove(name: string, sessionId: number): void {
  const t = tunnels.get(name)!;
  pump.removeSession(t.h, sessionId, false);
  t.sessions.delete(sessionId);
}

type Snapshot = Record<string, { rx: number; drops: number[]; sessions: Record<number, number> }>;
function snapshot(): Snapshot {
  const out: Snapshot = {};
  for (const [name, t] of tunnels) {
    const c = pump.tunnelCounters(t.h);
    const sessions: Record<number, number> = {};
    for (const sid of t.sessions) sessions[sid] = pump.sessionCounters(t.h, sid)!.rxPackets;
    out[name] = { rx: c.rxPackets, drops: c.drops, sessions };
  }
  return out;
}
const received = () => Object.values(snapshot()).reduce((n, t) => n + t.rx, 0);

/** Sends 5 datagrams for each session ID (0: a control message) and waits until they are counted. */
async function send(step: string, sids: number[]): Promise<{ step: string; after: Snapshot }> {
  const before = received();
  const packets = sids.flatMap((sid) =>
    Array<string>(5).fill(sid === CONTROL ? cases.control![0]! : msg(sid, '')),
  );
  await hostileSender({ h1: '', h2, u1, u2 }, 'ip')(packets);
  for (let i = 0; i < 60 && received() - before < packets.length; i++)
    await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200)); // a datagram counted twice would have arrived by now
  return { step, after: snapshot() };
}

const steps = [];
open('A');
open('B');
add('A', 11);
add('B', 21);
steps.push(await send('two tunnels', [11, 21, 99, CONTROL]));
add('B', 22);
remove('A', 11);
steps.push(await send('B gained 22, A lost 11', [11, 22]));
let duplicate = '';
try {
  add('A', 22);
} catch (err) {
  duplicate = err instanceof Error ? err.message : String(err);
}
close('A');
steps.push(await send('A, the first, closed', [21, 99]));
open('C');
add('C', 11);
steps.push(await send('C joined with 11', [11, 99]));
close('B');
close('C');
open('D');
add('D', 21);
steps.push(await send('all closed, D alone', [21, 99]));
close('D');
process.stdout.write(JSON.stringify({ steps, duplicate, fatal }) + '\n');
