// The pump's C receive path (datapath/native/src/wire.c) has no pure entry reachable from JS (the
// addon only exposes the running pump), so it is fuzzed through a small harness
// (test/fuzz/wire-harness.c) compiled with -fsanitize=address,undefined. The property checks:
//   - no sanitizer report, no crash (the harness copies each packet into an exact-size heap block);
//   - l2tp_locate/l2tp_verify agree with a model of the C contract, including the 24-bit sequence
//     state machine (the kernel's reorder_timeout 0 behaviour);
//   - differential: they agree with the TypeScript reference codec (lib/wire/codec.ts) wherever
//     the two are meant to agree, and the known divergences are counted, not hidden.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SEQ_MASK, SUBLAYER_S_BIT, headerLayout, parseDataMessage } from '../../lib/wire/codec.js';
import { assertThat, type FuzzTarget } from './framework.js';
import { bytes, mutate, mutationArb, type Mutation } from './properties.js';

// enum drop_reason in wire.h (same order as DROP_REASONS in datapath/backend/types.ts)
const C_REASONS = ['unknownSession', 'badCookie', 'truncated', 'badVersion', 'control', 'sequence'];
const RX_OK = -1;
const VERIFY_NOT_CALLED = -100;
const ETH_HLEN_MIN = 14;
const cName = (r: number): string => (r === RX_OK ? 'ok' : (C_REASONS[r] ?? `unknown(${r})`));

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Compiles the harness into `dir`; throws with the compiler output when that fails. */
export function buildHarness(dir: string): string {
  const out = join(dir, 'wire-harness');
  const cc = process.env.CC ?? 'gcc';
  const r = spawnSync(
    cc,
    [
      '-std=gnu11',
      '-O1',
      '-g',
      '-fsanitize=address,undefined',
      '-fno-sanitize-recover=all',
      '-fno-omit-frame-pointer',
      '-I',
      join(ROOT, 'datapath/native/src'),
      join(ROOT, 'test/fuzz/wire-harness.c'),
      join(ROOT, 'datapath/native/src/wire.c'),
      '-o',
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.error) throw new Error(`native-wire: cannot run ${cc}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`native-wire: ${cc} failed:\n${r.stderr}`);
  return out;
}

interface CSession {
  udp: boolean;
  peerCookie: Buffer;
  l2spec: boolean;
  recvSeq: boolean;
  sessionId: number;
  nr: number;
  nrOos: number;
  nrOosCount: number;
  reorderSkip: number;
}

interface CAnswer {
  locate: number;
  sid: number;
  off: number;
  verify: number;
  payload: number;
  nr: number;
  nrOos: number;
  nrOosCount: number;
  reorderSkip: number;
}

/** The harness as a long-lived child; restarted after it dies (a sanitizer report ends it). */
class Harness {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buf = Buffer.alloc(0);
  private stderr = '';
  private pending: { resolve: (a: CAnswer) => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly bin: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const c = spawn(this.bin, [], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0',
        UBSAN_OPTIONS: 'print_stacktrace=1',
      },
    });
    this.buf = Buffer.alloc(0);
    this.stderr = '';
    c.stdout.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (this.buf.length >= 36 && this.pending) {
        const b = this.buf;
        const i = (k: number): number => b.readInt32LE(k * 4);
        const u = (k: number): number => b.readUInt32LE(k * 4);
        const a: CAnswer = {
          locate: i(0),
          sid: u(1),
          off: u(2),
          verify: i(3),
          payload: u(4),
          nr: u(5),
          nrOos: u(6),
          nrOosCount: i(7),
          reorderSkip: i(8),
        };
        this.buf = this.buf.subarray(36);
        const p = this.pending;
        this.pending = undefined;
        p.resolve(a);
      }
    });
    c.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    c.stdin.on('error', () => undefined); // EPIPE when it died; reported through 'exit'
    c.on('exit', (code, signal) => {
      this.child = undefined;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(
        new Error(`the C harness died (exit ${code}, signal ${signal}):\n${this.stderr.slice(0, 4000)}`),
      );
    });
    this.child = c;
    return c;
  }

  run(s: CSession, pkt: Buffer): Promise<CAnswer> {
    const c = this.child ?? this.start();
    const h = Buffer.alloc(36);
    h[0] = s.udp ? 1 : 0;
    h[1] = s.peerCookie.length;
    h[2] = s.l2spec ? 4 : 0;
    h[3] = s.recvSeq ? 1 : 0;
    s.peerCookie.copy(h, 4);
    h.writeUInt32LE(s.sessionId >>> 0, 12);
    h.writeUInt32LE(s.nr >>> 0, 16);
    h.writeUInt32LE(s.nrOos >>> 0, 20);
    h.writeInt32LE(s.nrOosCount, 24);
    h.writeInt32LE(s.reorderSkip, 28);
    h.writeUInt32LE(pkt.length, 32);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      c.stdin.write(Buffer.concat([h, pkt]));
    });
  }

  close(): Promise<void> {
    const c = this.child;
    if (!c) return Promise.resolve();
    return new Promise((resolve) => {
      c.once('exit', () => resolve());
      c.stdin.end();
    });
  }
}

/** The C contract of l2tp_locate + l2tp_verify, written from wire.h and the kernel's rules. */
function model(s: CSession, p: Buffer): CAnswer {
  const st = { nr: s.nr, nrOos: s.nrOos, nrOosCount: s.nrOosCount, reorderSkip: s.reorderSkip };
  const ans = (locate: number, sid = 0, off = 0, verify = VERIFY_NOT_CALLED, payload = 0): CAnswer => ({
    locate,
    sid,
    off,
    verify,
    payload,
    ...st,
  });
  const TRUNC = 2;
  let sid: number;
  let off: number;
  if (s.udp) {
    if (p.length < 2) return ans(TRUNC);
    if (p[0]! & 0x80) return ans(4);
    if ((p[1]! & 0x0f) !== 3) return ans(3);
    if (p.length < 8) return ans(TRUNC);
    sid = p.readUInt32BE(4);
    off = 8;
  } else {
    if (p.length < 4) return ans(TRUNC);
    sid = p.readUInt32BE(0);
    if (sid === 0) return ans(4);
    off = 4;
  }
  if (sid !== s.sessionId >>> 0) return ans(RX_OK, sid, off);
  const ck = s.peerCookie.length;
  const l2 = s.l2spec ? 4 : 0;
  if (p.length < off + ck + l2 + ETH_HLEN_MIN) return ans(RX_OK, sid, off, TRUNC);
  if (ck > 0 && !p.subarray(off, off + ck).equals(s.peerCookie)) return ans(RX_OK, sid, off, 1);
  let o = off + ck;
  const SEQ = 5;
  if (l2) {
    const w = p.readUInt32BE(o);
    o += 4;
    if (s.recvSeq) {
      if (!(w & SUBLAYER_S_BIT)) return ans(RX_OK, sid, off, SEQ);
      const ns = w & SEQ_MASK;
      const window = Math.floor(SEQ_MASK / 2) + 1;
      const nws = (ns - st.nr) & SEQ_MASK;
      if (nws >= window) return ans(RX_OK, sid, off, SEQ);
      if (ns !== st.nr) {
        if (ns === ((st.nrOos + 1) & SEQ_MASK)) st.nrOosCount++;
        else st.nrOosCount = 0;
        st.nrOos = ns;
        if (st.nrOosCount > 4) st.reorderSkip = 1;
        if (!st.reorderSkip) return ans(RX_OK, sid, off, SEQ);
      }
      st.reorderSkip = 0;
      st.nrOosCount = 0;
      st.nr = (ns + 1) & SEQ_MASK;
    }
  } else if (s.recvSeq) {
    return ans(RX_OK, sid, off, SEQ);
  }
  return ans(RX_OK, sid, off, RX_OK, o);
}

const seq24 = fc.integer({ min: 0, max: SEQ_MASK });
const cSessionArb: fc.Arbitrary<CSession> = fc.record({
  udp: fc.boolean(),
  peerCookie: fc.oneof(
    fc.constant(Buffer.alloc(0)),
    fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)),
    fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)),
  ),
  l2spec: fc.boolean(),
  recvSeq: fc.boolean(),
  sessionId: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 0xffffffff })),
  nr: seq24,
  nrOos: seq24,
  nrOosCount: fc.integer({ min: 0, max: 6 }),
  reorderSkip: fc.integer({ min: 0, max: 1 }),
});

type CPacket =
  | { kind: 'random'; data: Buffer }
  | {
      kind: 'valid';
      frame: Buffer;
      seq: { near: 'nr' | 'oos' | 'any'; delta: number; s: boolean };
      mutations: Mutation[];
    };
const cPacketArb: fc.Arbitrary<CPacket> = fc.oneof(
  fc.record({ kind: fc.constant('random' as const), data: bytes(48) }),
  fc.record({
    kind: fc.constant('valid' as const),
    frame: fc
      .oneof(
        bytes(13),
        fc.uint8Array({ minLength: 14, maxLength: 40 }).map((a) => Buffer.from(a)),
        bytes(13),
      )
      .map((b) => b),
    seq: fc.record({
      near: fc.constantFrom('nr' as const, 'oos' as const, 'any' as const),
      delta: fc.integer({ min: -3, max: 3 }),
      s: fc.boolean(),
    }),
    mutations: fc.oneof(
      fc.constant<Mutation[]>([]),
      fc.constant<Mutation[]>([]),
      fc.array(mutationArb, { maxLength: 2 }),
    ),
  }),
);

function buildPacket(s: CSession, pk: CPacket): Buffer {
  if (pk.kind === 'random') return pk.data;
  const ck = s.peerCookie.length;
  const parts: Buffer[] = [];
  if (s.udp) parts.push(Buffer.from([0, 3, 0, 0]));
  const sid = Buffer.alloc(4);
  sid.writeUInt32BE(s.sessionId >>> 0);
  parts.push(sid, s.peerCookie.subarray(0, ck));
  if (s.l2spec) {
    const base = pk.seq.near === 'nr' ? s.nr : pk.seq.near === 'oos' ? s.nrOos + 1 : pk.seq.delta * 0x100000;
    const ns = (base + pk.seq.delta) & SEQ_MASK;
    const w = Buffer.alloc(4);
    w.writeUInt32BE(((pk.seq.s ? SUBLAYER_S_BIT : 0) | ns) >>> 0);
    parts.push(w);
  }
  parts.push(pk.frame);
  let b: Buffer = Buffer.concat(parts);
  for (const m of pk.mutations) b = mutate(b, m);
  return b;
}

export const nativeWireTarget: FuzzTarget = {
  name: 'native-wire',
  summary:
    'datapath/native/src/wire.c l2tp_locate/l2tp_verify under ASan+UBSan, against a model and the TS codec',
  ciRuns: 3000,
  async open(stats) {
    const dir = await mkdtemp(join(tmpdir(), 'kl2tp-fuzz-native-'));
    let harness: Harness;
    try {
      harness = new Harness(buildHarness(dir));
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    const property = fc.asyncProperty(cSessionArb, cPacketArb, async (s, pk) => {
      const pkt = buildPacket(s, pk);
      const got = await harness.run(s, pkt);
      const want = model(s, pkt);
      assertThat(
        JSON.stringify(got) === JSON.stringify(want),
        `C and model disagree on ${pkt.toString('hex')}:\n  C:     ${JSON.stringify(got)}\n  model: ${JSON.stringify(want)}`,
      );
      // differential against the TypeScript codec with the same session
      const ck = s.peerCookie.length as 0 | 4 | 8;
      const layout = headerLayout({
        encap: s.udp ? 'udp' : 'ip',
        l2specType: s.l2spec ? 'default' : 'none',
        cookieLength: ck,
        peerCookieLength: ck,
      });
      const ts = parseDataMessage(pkt, s.udp ? 'udp' : 'ip', (sid) =>
        sid === s.sessionId >>> 0 ? { layout, peerCookie: s.peerCookie } : undefined,
      );
      let outcome: string;
      if (got.locate !== RX_OK) {
        assertThat(
          !ts.ok && ts.reason === cName(got.locate),
          `locate ${cName(got.locate)}, TS ${ts.ok ? 'ok' : ts.reason}`,
        );
        outcome = `locate: ${cName(got.locate)}`;
      } else if (got.verify === VERIFY_NOT_CALLED) {
        assertThat(
          !ts.ok && ts.reason === 'unknownSession',
          `unknown session, TS ${ts.ok ? 'ok' : ts.reason}`,
        );
        outcome = 'locate ok, unknownSession';
      } else if (got.verify === RX_OK) {
        assertThat(ts.ok, `C accepted, TS ${ts.ok ? '' : ts.reason}`);
        assertThat(ts.frame.byteOffset - pkt.byteOffset === got.payload, 'frame offsets differ');
        outcome = 'verify: ok';
      } else {
        const r = cName(got.verify);
        if (!ts.ok) {
          // TS has no minimum frame length (C requires 14 bytes of Ethernet) and no sequence check
          const same = ts.reason === r || (r === 'truncated' && ts.reason === 'badCookie');
          assertThat(same, `verify ${r}, TS ${ts.reason}`);
        } else {
          assertThat(r === 'truncated' || r === 'sequence', `verify ${r}, TS accepted`);
        }
        outcome = `verify: ${r}${ts.ok && r === 'truncated' ? ' (short frame; TS accepts)' : ''}`;
      }
      stats.count(outcome);
    });
    return {
      property,
      async close() {
        await harness.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};
