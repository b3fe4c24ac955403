// Hostile traffic for the receive-path tests of both userspace and eBPF datapaths: a sender that
// speaks from the peer's own address (UDP or IP protocol 115), the bad packets by the drop reason they
// must be counted under, and the counters' totals.
import assert from 'node:assert/strict';
import { run } from '../../lib/exec.js';
import type { CountersDump, DatapathProc, Hosts } from './datapath-lab.js';

// Sends hex payloads (JSON on stdin) from (src, sport) to (dst, dport) over UDP, or as IP protocol 115.
// UDP goes through a raw socket with a header of its own: the peer's datapath holds (src, sport) and
// shares it with nobody. The checksum is 0 (none), which IPv4 receivers accept, unless csum asks for
// a right one ("good") or a wrong non-zero one ("bad"). The kernel leaves a raw socket's checksum
// alone (IPv6 too: IPV6_CHECKSUM is off) and marks nothing verified (CHECKSUM_NONE), so the
// receiver sees it as sent. IPv6 addresses make it an IPv6 sender.
export const SENDER = `
import json, socket, struct, sys
a = json.load(sys.stdin)
fam = socket.AF_INET6 if ":" in a["src"] else socket.AF_INET
def fold(b):
    if len(b) % 2: b += b"\\0"
    n = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while n >> 16: n = (n & 0xffff) + (n >> 16)
    return n
def udp(b):
    n = 8 + len(b)
    h = struct.pack("!HHHH", a["sport"], a["dport"], n, 0)
    c = a.get("csum")
    if not c:
        return h + b
    if fam == socket.AF_INET6:
        pseudo = (socket.inet_pton(fam, a["src"]) + socket.inet_pton(fam, a["dst"])
                  + struct.pack("!IHH", n, 0, 17))
    else:
        pseudo = socket.inet_aton(a["src"]) + socket.inet_aton(a["dst"]) + struct.pack("!HH", 17, n)
    good = (0xffff - fold(pseudo + h + b)) or 0xffff
    check = good
    if c == "bad":
        # wrong, non-zero, and not the pseudo-header's sum (what a checksum left to the device holds)
        check = good + 1 if good < 0xffff else 1
        if check == fold(pseudo):
            check = check + 1 if check < 0xffff else 1
    return h[:6] + struct.pack("!H", check) + b
if a["mode"] == "udp":
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.bind((a["src"], 0))
    dst = (a["dst"], 0)
    wrap = udp
else:
    s = socket.socket(fam, socket.SOCK_RAW, 115)
    s.bind((a["src"], 0))
    dst = (a["dst"], 0)
    wrap = lambda b: b
for p in a["packets"]:
    s.sendto(wrap(bytes.fromhex(p)), dst)
f = a.get("flood")
if f:
    b = wrap(bytes.fromhex(f["hex"]))
    for _ in range(f["count"]):
        try:
            s.sendto(b, dst)
        except OSError:
            pass
`;

export const ETH = Buffer.concat([
  Buffer.from('ffffffffffff02000000000108060001', 'hex'),
  Buffer.alloc(44),
]).toString('hex');

export function u32(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b.toString('hex');
}

export const sum = (r: Record<string, number>) => Object.values(r).reduce((x, y) => x + y, 0);

export function totals(k: CountersDump) {
  const t = k.tunnels[0]!;
  const s = t.sessions[0]!;
  return { t, s, tunnelDrops: t.drops, sessionDrops: s.drops };
}

/**
 * Bad packets for host1's session (id 1001, expecting cookie 0x21 x 8: see pairConfigs), by the reason
 * each must be dropped under, and how many of each a test sending every packet 10 times expects.
 */
export function hostileCases(encap: 'udp' | 'ip'): {
  cases: Record<string, string[]>;
  expected: Record<string, number>;
  /** A data message for a session id, with a cookie (hex) and what follows it. */
  msg: (sid: number, cookie: string, rest?: string) => string;
} {
  const goodCookie = '21'.repeat(8);
  const v3 = encap === 'udp' ? '00030000' : '';
  const msg = (sid: number, cookie: string, rest = '00000000' + ETH) => v3 + u32(sid) + cookie + rest;
  const cases: Record<string, string[]> = {
    unknownSession: [msg(999, goodCookie), msg(1002, goodCookie)],
    badCookie: [msg(1001, '22'.repeat(8)), msg(1001, goodCookie.slice(0, 8) + '00000000')],
    truncated: [msg(1001, goodCookie, '00000000' + ETH.slice(0, 20)), msg(1001, goodCookie.slice(0, 6), '')],
    control:
      encap === 'udp'
        ? ['c8030000' + u32(1001) + goodCookie, '80030000']
        : [u32(0) + 'c8030014' + u32(42) + u32(1), u32(0)],
  };
  if (encap === 'udp') {
    cases.badVersion = ['00020000' + u32(1001) + goodCookie + '00000000' + ETH, '0001'];
    cases.truncated!.push('000300');
  }
  const expected = Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, v.length * 10]));
  return { cases, expected, msg };
}

/** Sends hex payloads from host 2 to host 1's tunnel endpoint (see pairConfigs), then a flood. */
export function hostileSender(h: Hosts, encap: 'udp' | 'ip') {
  return (packets: string[], flood?: { hex: string; count: number }, csum?: 'good' | 'bad') =>
    run('ip', ['netns', 'exec', h.h2, 'python3', '-c', SENDER], {
      input: JSON.stringify({
        mode: encap,
        src: h.u2,
        sport: 5002,
        dst: h.u1,
        dport: 5001,
        packets,
        flood,
        csum,
      }),
    });
}

/**
 * Sends every hostile case 10 times and checks that host 1's datapath counted each under its reason
 * (tunnel and session drops together). Returns the counters before and after.
 */
export async function sendHostileCases(h: Hosts, encap: 'udp' | 'ip', d1: DatapathProc) {
  const { cases, expected } = hostileCases(encap);
  const before = totals(await d1.counters());
  assert.deepEqual(before.sessionDrops, {});
  await hostileSender(
    h,
    encap,
  )(
    Object.values(cases)
      .flat()
      .flatMap((x) => Array<string>(10).fill(x)),
  );
  await new Promise((r) => setTimeout(r, 300));
  const mid = totals(await d1.counters());
  const count = (x: ReturnType<typeof totals>, k: string) =>
    (x.tunnelDrops[k] ?? 0) + (x.sessionDrops[k] ?? 0);
  const delta: Record<string, number> = {};
  for (const k of new Set([...Object.keys(mid.tunnelDrops), ...Object.keys(mid.sessionDrops)])) {
    delta[k] = count(mid, k) - count(before, k);
  }
  for (const k of Object.keys(delta)) if (delta[k] === 0) delete delta[k];
  assert.deepEqual(delta, expected, 'each packet counted under its reason');
  return { before, mid };
}
