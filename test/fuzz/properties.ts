// The hostile-input properties, one FuzzTarget per decoder or parser. The unit suite
// (test/fuzz/*.test.ts) and the bench (bench/fuzz.ts) both run exactly these; only the budget
// differs. Each property: never crash, never let a foreign exception out, and every rejection
// carries a reason (which the run counts, so a bench shows what the inputs exercised).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  L2tpWireError,
  SEQ_MASK,
  SUBLAYER_S_BIT,
  decodeDataMessage,
  encodeDataMessage,
  headerLayout,
  parseDataMessage,
  type RxExpectation,
  type WireDropReason,
} from '../../lib/wire/codec.js';
import { agentSocketProblem } from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { KNOWN_CNI_ARGS, parseCniArgs } from '../../lib/cni/args.js';
import { silentLogger } from '../../lib/log.js';
import {
  COMMANDS,
  parseCommand,
  parseEnv,
  parseNetConf,
  type Command,
  type Env,
} from '../../datapath/cni/config.js';
import { dispatch, type PluginDeps } from '../../datapath/cni/dispatch.js';
import { ipamProblem } from '../../lib/api/ipam.js';
import { AttachmentStore, ProcessLocker } from '../../datapath/cni/state.js';
import { ConfigError, parseStaticConfig } from '../../datapath/static/config.js';
import {
  cniResponseHeaderSchema,
  decodeResponse,
  encodeResponse,
  type PseudowireResolver,
} from '../../lib/agent-protocol.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NetlinkDecodeError,
  AttrMap,
  encodeAttrs,
  encodeMessage,
  parseAttrs,
  parseMessages,
  type Attr,
  type NlMsg,
} from '../../lib/netlink/codec.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import { decodeReplies } from '../../lib/netlink/socket.js';
import { decodeFamily, decodeGenl, encodeGenl } from '../../lib/netlink/genl.js';
import { decodeSession, decodeTunnel } from '../../lib/netlink/l2tp.js';
import { decodeLink } from '../../lib/netlink/rtnl.js';
import { CURRENT_VERSION } from '../../lib/cni/versions.js';
import { assertThat, expectError, noStack, type FuzzTarget } from './framework.js';

// ---------------------------------------------------------------- shared arbitraries

const bytes = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** Hostile text: any UTF-16 (lone surrogates included), control characters, long runs. */
const hostileString = (maxLength = 40): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.constantFrom('', ' ', '\n', '\0', '\u2028', '..', '.', '/', ';', '=', '%', '\\', '"', '\ud800'),
  );

/** Mostly plausible values (so the parsers get past their first checks), sometimes hostile ones. */
function mostly<T, U>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: hostile });
}
/** A present-most-of-the-time value (undefined = the variable or key is absent). */
const usually = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.option(a, { nil: undefined, freq: 8 });

/** Anything JSON can carry, for fields that expect something specific. */
const jsonAny: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });

// ---------------------------------------------------------------- L2TP data messages

const WIRE_REASONS = new Set<WireDropReason>([
  'truncated',
  'badVersion',
  'control',
  'unknownSession',
  'badCookie',
]);

interface WireSession {
  sessionId: number;
  l2spec: boolean;
  peerCookie: Buffer;
}

const cookieArb = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)),
);
const sessionIdArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 0xffffffff }));
const wireSessionArb: fc.Arbitrary<WireSession> = fc.record({
  sessionId: sessionIdArb,
  l2spec: fc.boolean(),
  peerCookie: cookieArb,
});

type Mutation =
  | { op: 'truncate'; at: number }
  | { op: 'xor'; at: number; value: number }
  | { op: 'prefix'; bytes: Buffer }
  | { op: 'append'; bytes: Buffer };
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat(40) }),
  fc.record({ op: fc.constant('xor' as const), at: fc.nat(40), value: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('prefix' as const), bytes: bytes(6) }),
  fc.record({ op: fc.constant('append' as const), bytes: bytes(6) }),
);

function mutate(buf: Buffer, m: Mutation): Buffer {
  switch (m.op) {
    case 'truncate':
      return buf.subarray(0, Math.min(m.at, buf.length));
    case 'xor': {
      if (buf.length === 0) return buf;
      const out = Buffer.from(buf);
      const i = m.at % out.length;
      out[i] = out[i]! ^ m.value;
      return out;
    }
    case 'prefix':
      return Buffer.concat([m.bytes, buf]);
    case 'append':
      return Buffer.concat([buf, m.bytes]);
  }
}

type WireInput =
  | { kind: 'random'; data: Buffer }
  | { kind: 'valid'; pick: number; frame: Buffer; sequence: number | undefined; mutations: Mutation[] };

const wireInputArb: fc.Arbitrary<WireInput> = fc.oneof(
  fc.record({ kind: fc.constant('random' as const), data: bytes(48) }),
  fc.record({
    kind: fc.constant('valid' as const),
    pick: fc.nat(),
    frame: bytes(32),
    sequence: fc.option(fc.integer({ min: 0, max: SEQ_MASK }), { nil: undefined }),
    mutations: fc.array(mutationArb, { maxLength: 3 }),
  }),
);

/** A message for a session, as the peer sends it (its tx cookie is our peer cookie). */
function encodeFor(encap: 'udp' | 'ip', s: WireSession, frame: Buffer, sequence: number | undefined): Buffer {
  const len = s.peerCookie.length as 0 | 4 | 8;
  const layout = headerLayout({
    encap,
    l2specType: s.l2spec ? 'default' : 'none',
    cookieLength: len,
    peerCookieLength: len,
  });
  return encodeDataMessage(layout, { peerSessionId: s.sessionId, cookie: s.peerCookie, sequence }, frame);
}

const wireTarget: FuzzTarget = {
  name: 'wire',
  summary: 'lib/wire/codec.ts parseDataMessage/decodeDataMessage on random and mutated L2TPv3 data messages',
  ciRuns: 20000,
  open(stats) {
    const property = fc.property(
      fc.constantFrom('udp' as const, 'ip' as const),
      fc.array(wireSessionArb, { maxLength: 4 }),
      wireInputArb,
      (encap, sessions, input) => {
        const table = new Map<number, RxExpectation>();
        for (const s of sessions) {
          const len = s.peerCookie.length as 0 | 4 | 8;
          table.set(s.sessionId, {
            layout: headerLayout({
              encap,
              l2specType: s.l2spec ? 'default' : 'none',
              cookieLength: len,
              peerCookieLength: len,
            }),
            peerCookie: s.peerCookie,
          });
        }
        const lookup = (sid: number): RxExpectation | undefined => table.get(sid);
        let buf: Buffer;
        let intact: { s: WireSession; frame: Buffer; sequence: number | undefined } | undefined;
        if (input.kind === 'random' || sessions.length === 0) {
          buf = input.kind === 'random' ? input.data : Buffer.alloc(0);
        } else {
          // the last session with an ID wins in the table, so build from that one
          const first = sessions[input.pick % sessions.length]!;
          const s = sessions.findLast((x) => x.sessionId === first.sessionId)!;
          const seq = s.l2spec ? input.sequence : undefined;
          buf = encodeFor(encap, s, input.frame, seq);
          for (const m of input.mutations) buf = mutate(buf, m);
          if (input.mutations.length === 0) intact = { s, frame: input.frame, sequence: seq };
        }

        let r;
        try {
          r = parseDataMessage(buf, encap, lookup);
        } catch (e) {
          throw new Error(`parseDataMessage threw (it must never throw): ${String(e)}`);
        }
        if (!r.ok) {
          assertThat(WIRE_REASONS.has(r.reason), `unknown drop reason ${String(r.reason)}`);
          assertThat(typeof r.detail === 'string' && r.detail !== '', 'rejection without a detail');
          stats.count(r.reason);
          assertThat(intact === undefined, `an intact message was dropped: ${r.reason} (${r.detail})`);
        } else {
          stats.count('accepted');
          const rx = lookup(r.sessionId);
          assertThat(r.sessionId !== 0 && rx !== undefined, 'accepted a message for no session');
          assertThat(r.cookie.equals(rx.peerCookie), 'accepted a wrong cookie');
          const off = rx.layout.rxLength;
          assertThat(
            r.frame.length === buf.length - off && r.frame.byteOffset === buf.byteOffset + off,
            'frame is not the rest of the buffer after the header',
          );
          if (rx.layout.l2spec) {
            const word = buf.readUInt32BE(rx.layout.cookieOffset + rx.layout.rxCookieLength);
            const want = word & SUBLAYER_S_BIT ? word & SEQ_MASK : undefined;
            assertThat(r.sequence === want, `sequence ${r.sequence} != ${want}`);
          } else {
            assertThat(r.sequence === undefined, 'sequence without a sublayer');
          }
          if (intact) {
            assertThat(r.frame.equals(intact.frame), 'round trip changed the frame');
            assertThat(r.sequence === intact.sequence, 'round trip changed the sequence');
          }
        }
        // the throwing form agrees and throws only its own error type
        try {
          const m = decodeDataMessage(buf, encap, lookup);
          assertThat(r.ok && m.sessionId === r.sessionId && m.frame.equals(r.frame), 'decode != parse');
        } catch (e) {
          const we = expectError(e, L2tpWireError, 'decodeDataMessage');
          assertThat(
            !r.ok && we.reason === r.reason,
            `decode threw ${we.reason}, parse said ${String(r.ok)}`,
          );
        }
      },
    );
    return Promise.resolve({ property, close: () => Promise.resolve() });
  },
};

// ---------------------------------------------------------------- CNI environment and config

const CODES = new Set<number>(Object.values(CniCode));

/** The CNI error contract: a known code, a message naming the field, no stack trace, valid JSON. */
function checkCniError(e: unknown, what: string): CniError {
  const err = expectError(e, CniError, what);
  assertThat(CODES.has(err.code), `${what}: unknown CNI code ${err.code}`);
  assertThat(err.code !== CniCode.Internal, `${what}: internal error (a foreign exception): ${err.message}`);
  const msg = err.message;
  assertThat(typeof msg === 'string' && msg.trim() !== '', `${what}: empty msg`);
  assertThat(noStack(msg), `${what}: stack trace in msg: ${msg}`);
  const json = JSON.parse(JSON.stringify(err.toJSON(CURRENT_VERSION))) as { code?: unknown; msg?: unknown };
  assertThat(json.code === err.code && json.msg === msg, `${what}: error JSON does not round-trip`);
  const field: Partial<Record<number, RegExp>> = {
    [CniCode.InvalidEnvironment]: /CNI_[A-Z_]+/,
    [CniCode.DecodingFailure]: /^failed to decode network config: /,
    [CniCode.IncompatibleVersion]: /version/i,
    [CniCode.InvalidConfig]: /^invalid network config: (\(config\)|[A-Za-z][\w./-]*): \S/,
  };
  const re = field[err.code];
  if (re) assertThat(re.test(msg), `${what}: code ${err.code} msg does not name the field: ${msg}`);
  return err;
}

const macArb = mostly(
  fc.constantFrom('02:00:00:00:00:01', '0A:BB:cc:dd:ee:ff'),
  fc.oneof(fc.constantFrom('01:00:5e:00:00:01', 'zz', ''), hostileString(20)),
);
const cniArgsArb: fc.Arbitrary<string> = mostly(
  fc
    .array(
      fc.tuple(
        mostly(fc.constantFrom(...KNOWN_CNI_ARGS), fc.oneof(fc.constantFrom('FOO', ''), hostileString(8))),
        mostly(
          fc.constantFrom('1', 'true', 'T', '0', 'ns1', 'pod-a', '02:00:00:00:00:09'),
          hostileString(12),
        ),
        mostly(fc.constant('='), fc.constantFrom('', '==')),
      ),
      { maxLength: 5 },
    )
    .map((ps) => ps.map(([k, v, eq]) => `${k}${eq}${v}`).join(';')),
  hostileString(60),
);

const envArb: fc.Arbitrary<Env> = fc.record({
  CNI_COMMAND: usually(
    mostly(fc.constantFrom(...COMMANDS), fc.oneof(fc.constantFrom('add', '', 'FOO'), hostileString(8))),
  ),
  CNI_CONTAINERID: usually(mostly(fc.stringMatching(/^[a-f0-9]{1,64}$/), hostileString(20))),
  CNI_NETNS: usually(
    mostly(
      fc.constantFrom('/var/run/netns/pod1', '/proc/1/ns/net'),
      fc.oneof(fc.constant('netns'), hostileString(20)),
    ),
  ),
  CNI_IFNAME: usually(
    mostly(
      fc.constantFrom('eth0', 'net1'),
      fc.oneof(fc.constantFrom('a'.repeat(16), 'é'.repeat(8), '..'), hostileString(20)),
    ),
  ),
  CNI_ARGS: usually(cniArgsArb),
  CNI_PATH: usually(mostly(fc.constantFrom('/opt/cni/bin', '/opt/cni/bin::/usr/lib/cni'), hostileString(20))),
});

const netConfArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    cniVersion: mostly(
      fc.constantFrom('0.4.0', '1.0.0', '1.1.0'),
      fc.oneof(fc.constantFrom('0.3.1', '', '1.1'), jsonAny),
    ),
    name: mostly(
      fc.constantFrom('net1', 'a.b_c-d'),
      fc.oneof(fc.constantFrom('', '-x', 'a b'), hostileString(12), jsonAny),
    ),
    type: mostly(fc.constant('kube-l2tp'), fc.oneof(fc.constant(''), jsonAny)),
    pseudowire: mostly(
      fc.oneof(
        fc.constantFrom('ns1/pw1', 'pw1'),
        fc.record({ namespace: fc.constant('ns1'), name: fc.constant('pw1') }, { requiredKeys: ['name'] }),
      ),
      fc.oneof(
        fc.constantFrom('a/b/c', '/x', 'UP/x', ''),
        fc.record({ namespace: jsonAny, name: jsonAny }, { requiredKeys: [] }),
        hostileString(12),
        jsonAny,
      ),
    ),
    mode: mostly(fc.constantFrom('bridge', 'exclusive'), fc.oneof(fc.constant('BRIDGE'), jsonAny)),
    mtu: mostly(
      fc.integer({ min: 68, max: 9000 }),
      fc.oneof(fc.integer({ min: -10, max: 70000 }), fc.double(), jsonAny),
    ),
    mac: mostly(macArb, jsonAny),
    ipam: mostly(
      fc.constant({ type: 'host-local' }),
      fc.oneof(
        fc.constantFrom({}, { type: '' }, { type: 'bridge' }, { type: 'static', dataDir: '/etc' }),
        fc.record(
          { type: fc.constant('host-local'), DataDir: jsonAny, resolvconf: jsonAny },
          { requiredKeys: ['type'] },
        ),
        jsonAny,
      ),
    ),
    agentSocket: mostly(
      fc.constant('/run/kube-l2tp/x.sock'),
      fc.oneof(fc.constantFrom('x.sock', '', '/run/x.sock', '/run/kube-l2tp/../x'), jsonAny),
    ),
    prevResult: mostly(
      fc.constantFrom(
        { cniVersion: '1.1.0', interfaces: [{ name: 'net1', sandbox: '/var/run/netns/pod1' }] },
        { cniVersion: '1.0.0', interfaces: [], ips: [{ address: '10.1.0.2/24', interface: 0 }] },
      ),
      fc.oneof(fc.constant({}), fc.dictionary(hostileString(6), jsonAny, { maxKeys: 3 }), jsonAny),
    ),
    runtimeConfig: mostly(fc.record({ mac: mostly(macArb, jsonAny) }, { requiredKeys: [] }), jsonAny),
    'cni.dev/valid-attachments': mostly(
      fc.array(fc.record({ containerID: fc.string(), ifname: fc.string() }), { maxLength: 3 }),
      fc.oneof(fc.array(fc.record({ containerID: jsonAny, ifname: jsonAny }), { maxLength: 2 }), jsonAny),
    ),
    'cni.dev/attachments': jsonAny,
  },
  { requiredKeys: ['cniVersion', 'name', 'type', 'pseudowire'] },
);

const stdinArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: hostileString(60) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(netConfArb, fc.dictionary(hostileString(6), jsonAny, { maxKeys: 2 }), fc.nat(7))
      .map(([c, extra, cut]) => {
        const text = JSON.stringify({ ...extra, ...c });
        return cut === 0 ? text.slice(0, Math.floor(text.length / 2)) : text; // some truncated
      }),
  },
);

type Verdict =
  { kind: 'version' } | { kind: 'accepted'; command: Command } | { kind: 'rejected'; err: CniError };

/** The parse chain the dispatcher runs before any handler, as a pure function. */
function cniVerdict(env: Env, stdin: string): Verdict {
  try {
    const command = parseCommand(env);
    if (command === 'VERSION') return { kind: 'version' };
    const cmd = parseEnv(command, env);
    assertThat(COMMANDS.includes(cmd.command), 'parseEnv returned an unknown command');
    const conf = parseNetConf(stdin, cmd.args, { command });
    // DEL of a config whose pseudowire is unreadable goes by its record: a reference nothing matches
    const noPseudowire = conf.pseudowire.name === '' && conf.pseudowire.namespace === '';
    assertThat(conf.pseudowire.name !== '' || (command === 'DEL' && noPseudowire), 'empty pseudowire name');
    // no delegate outside spec.ipam's rules reaches a handler; only DEL and GC may carry a refused one, unrun
    assertThat(
      conf.ipam === undefined || ipamProblem(conf.ipam) === undefined,
      `ipam accepted: ${JSON.stringify(conf.ipam)}`,
    );
    assertThat(
      conf.ipamRefused === undefined || command === 'DEL' || command === 'GC',
      `${command} went on with a refused ipam`,
    );
    // no namespace only when neither the config nor the runtime names one (ADD and CHECK refuse it)
    assertThat(
      conf.pseudowire.namespace !== '' || !cmd.args.K8S_POD_NAMESPACE || noPseudowire,
      'the pod namespace was dropped',
    );
    assertThat(
      agentSocketProblem(conf.agentSocket) === undefined,
      `agent socket ${conf.agentSocket} accepted`,
    );
    if (conf.mac !== undefined) {
      assertThat(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(conf.mac), `bad mac accepted: ${conf.mac}`);
      assertThat((Number.parseInt(conf.mac.slice(0, 2), 16) & 1) === 0, 'multicast mac accepted');
    }
    if (conf.mtu !== undefined) assertThat(Number.isInteger(conf.mtu) && conf.mtu >= 68, 'bad mtu accepted');
    return { kind: 'accepted', command };
  } catch (e) {
    return { kind: 'rejected', err: checkCniError(e, 'CNI parse chain') };
  }
}

const cniConfigTarget: FuzzTarget = {
  name: 'cni-config',
  summary:
    'datapath/cni/config.ts parseCommand/parseEnv/parseNetConf and lib/cni/args.ts on hostile env and stdin',
  ciRuns: 6000,
  open(stats) {
    const property = fc.property(envArb, stdinArb, (env, stdin) => {
      // CNI_ARGS on its own, whatever the command
      try {
        parseCniArgs(env.CNI_ARGS);
      } catch (e) {
        const err = checkCniError(e, 'parseCniArgs');
        assertThat(
          err.code === CniCode.InvalidEnvironment && err.message.startsWith('CNI_ARGS: '),
          err.message,
        );
      }
      const v = cniVerdict(env, stdin);
      stats.count(
        v.kind === 'rejected'
          ? `rejected: code ${v.err.code}`
          : v.kind === 'version'
            ? 'VERSION'
            : `accepted ${v.command}`,
      );
    });
    return Promise.resolve({ property, close: () => Promise.resolve() });
  },
};

/** A resolver that is never ready: ADD/CHECK/STATUS stop before any link work, without side effects. */
const notReady: PseudowireResolver = {
  ready: () => false,
  lookup: () => Promise.reject(new Error('fuzz: the resolver must not be asked while not ready')),
};

/** Commands the dispatcher can run in-process without touching the host (given `notReady`). */
const SIDE_EFFECT_FREE = new Set<Command>(['ADD', 'CHECK', 'STATUS', 'VERSION']);

function checkOutcome(o: { exitCode: number; stdout: string }, v: Verdict, stdin: string): string {
  assertThat(
    o.stdout.endsWith('\n') && o.stdout.indexOf('\n') === o.stdout.length - 1,
    'stdout is not one line',
  );
  const out = JSON.parse(o.stdout) as Record<string, unknown>;
  if (v.kind === 'version') {
    assertThat(o.exitCode === 0 && Array.isArray(out.supportedVersions), 'VERSION did not answer');
    return 'VERSION';
  }
  assertThat(o.exitCode === 1, `exit ${o.exitCode} for an input that cannot succeed here`);
  const code = out.code;
  const msg = out.msg;
  assertThat(typeof code === 'number' && typeof msg === 'string', 'error JSON without code and msg');
  checkCniError(new CniError(code, msg), 'dispatch');
  assertThat(typeof out.cniVersion === 'string' && out.cniVersion !== '', 'error JSON without cniVersion');
  if (v.kind === 'rejected') {
    assertThat(
      code === v.err.code && msg === v.err.message,
      `dispatch said ${code} "${msg}", the parser ${v.err.code}`,
    );
  } else {
    const allowed: number[] = [
      CniCode.TryAgainLater,
      CniCode.NotAvailable,
      CniCode.IncompatibleVersion,
      CniCode.InvalidConfig,
      CniCode.NamespaceNotAllowed,
    ];
    // the agent fails closed when the runtime does not name the pod's namespace
    if (
      code === CniCode.InvalidEnvironment &&
      String(msg).startsWith('CNI_ARGS: K8S_POD_NAMESPACE is missing')
    )
      return `exit 1: code ${code}`;
    if (!allowed.includes(code)) {
      // prevResult errors of CHECK are the only other way out before the resolver
      assertThat(v.command === 'CHECK', `unexpected code ${code} for ${v.command}: ${msg} (stdin ${stdin})`);
    }
  }
  return `exit 1: code ${code}`;
}

const cniDispatchTarget: FuzzTarget = {
  name: 'cni-dispatch',
  summary:
    'datapath/cni/dispatch.ts dispatch() in-process with injected env/stdin (inputs that fail before link work)',
  ciRuns: 2000,
  async open(stats) {
    const dir = await mkdtemp(join(tmpdir(), 'kl2tp-fuzz-dispatch-'));
    const deps: PluginDeps = {
      resolver: notReady,
      logger: silentLogger(),
      store: new AttachmentStore(join(dir, 'state')),
      locker: new ProcessLocker(),
      nodePid: process.pid,
    };
    const property = fc.asyncProperty(envArb, stdinArb, async (env, stdin) => {
      const v = cniVerdict(env, stdin);
      if (v.kind === 'accepted' && !SIDE_EFFECT_FREE.has(v.command)) {
        stats.count(`accepted ${v.command} (not dispatched: it would run delegates)`);
        return;
      }
      const o = await dispatch({ env, stdin }, deps);
      stats.count(checkOutcome(o, v, stdin));
    });
    return { property, close: () => rm(dir, { recursive: true, force: true }) };
  },
};

// ---------------------------------------------------------------- static config (YAML)

const ipArb = mostly(
  fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::1', 'fd00::2'),
  fc.oneof(fc.constantFrom('::1', '300.1.1.1', '10.0.0', ''), fc.ipV4(), fc.ipV6(), jsonAny),
);
const idArb = mostly(
  fc.integer({ min: 1, max: 6 }),
  fc.oneof(fc.constantFrom(0, -1, 4294967295, 4294967296, 1.5), jsonAny),
);
const portArb = mostly(
  fc.integer({ min: 1000, max: 1003 }),
  fc.oneof(fc.integer({ min: 0, max: 70000 }), jsonAny),
);
const boolArb = mostly(fc.boolean(), jsonAny);
const staticSessionArb = fc.record(
  {
    sessionId: idArb,
    peerSessionId: idArb,
    name: mostly(
      fc.constantFrom('l2tp0', 'l2tp1', 'pw-a'),
      fc.oneof(fc.constantFrom('a/b', '', 'x'.repeat(16), '..'), jsonAny),
    ),
    cookie: mostly(
      fc.constantFrom('01020304', '0x0102030405060708', '01:02:03:04'),
      fc.oneof(fc.constantFrom('xyz', '', '010203'), jsonAny),
    ),
    peerCookie: mostly(fc.constantFrom('11121314', '1112131415161718'), fc.oneof(fc.constant('zz'), jsonAny)),
    l2specType: mostly(fc.constantFrom('none', 'default'), fc.oneof(fc.constant('x'), jsonAny)),
    sendSequence: boolArb,
    requireSequence: boolArb,
    reorderTimeoutMs: mostly(fc.nat(1000), jsonAny),
    mtu: mostly(fc.integer({ min: 68, max: 9000 }), fc.oneof(fc.integer({ min: 0, max: 70000 }), jsonAny)),
  },
  { requiredKeys: ['sessionId', 'peerSessionId'] },
);
const staticTunnelArb = fc
  .record(
    {
      tunnelId: idArb,
      peerTunnelId: idArb,
      encap: mostly(fc.constantFrom('udp', 'ip'), fc.oneof(fc.constant('gre'), jsonAny)),
      local: ipArb,
      remote: ipArb,
      udpSourcePort: portArb,
      udpDestinationPort: portArb,
      udpChecksum: boolArb,
      sessions: mostly(fc.array(staticSessionArb, { minLength: 1, maxLength: 3 }), jsonAny),
    },
    { requiredKeys: ['tunnelId', 'peerTunnelId', 'local', 'remote', 'sessions'] },
  )
  .chain((t) =>
    // mostly consistent: udp tunnels have ports, ip tunnels none (the schema's cross-field rules)
    fc.constantFrom('asIs', 'fixed', 'fixed').map((how): Record<string, unknown> => {
      if (how === 'asIs') return t;
      const { udpSourcePort: sp, udpDestinationPort: dp, ...rest } = t;
      return t.encap === 'ip' ? rest : { ...rest, udpSourcePort: sp ?? 1701, udpDestinationPort: dp ?? 1701 };
    }),
  );
const staticDocArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ tunnels: fc.array(staticTunnelArb, { minLength: 1, maxLength: 3 }) }) },
  {
    weight: 1,
    arbitrary: fc.record(
      { tunnels: fc.oneof(jsonAny, fc.array(staticTunnelArb, { maxLength: 2 })), other: jsonAny },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: jsonAny },
);

/** YAML text that mostly parses: a document rendered as YAML-flow (JSON) or block style, then cut. */
const yamlish = (doc: unknown, block: boolean): string => {
  if (!block) return JSON.stringify(doc) ?? 'null';
  const render = (v: unknown, ind: string): string => {
    if (Array.isArray(v))
      return v.length === 0 ? ' []' : v.map((x) => `\n${ind}- ${render(x, ind + '  ').trimStart()}`).join('');
    if (v !== null && typeof v === 'object') {
      const es = Object.entries(v);
      return es.length === 0
        ? ' {}'
        : es.map(([k, x]) => `\n${ind}${JSON.stringify(k)}:${render(x, ind + '  ')}`).join('');
    }
    return ` ${JSON.stringify(v) ?? 'null'}`;
  };
  return render(doc, '').trimStart();
};

/** YAML features a hand-written file (or an attacker) may use: anchors, tags, directives, documents. */
const yamlSnippetArb = fc.constantFrom(
  'tunnels: &a [*a]',
  'a: &a [x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
  'tunnels: !!foo 1',
  'tunnels: !!binary aGVsbG8=',
  '!!binary aGVsbG8=',
  '%YAML 1.1\n---\ntunnels: 2001-01-01',
  'tunnels: []\n---\ntunnels: []',
  '? [a]\n: 1',
  '"": 1',
  'tunnels:\n  - <<: {tunnelId: 1}\n',
  'tunnels: [{sessions: [{sessionId: 0x10, peerSessionId: 0o7}]}]',
  '\t tunnels: x',
  'tunnels: "\\ud800"',
  '__proto__: {tunnels: []}',
  'tunnels: [{__proto__: {x: 1}}]',
  '{',
  '[',
  'tunnels: *nope',
);

const staticTextArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: hostileString(80) },
  { weight: 1, arbitrary: yamlSnippetArb },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        staticDocArb,
        fc.boolean(),
        fc.oneof(fc.constant<Mutation[]>([]), fc.array(mutationArb, { maxLength: 2 })),
      )
      .map(([doc, block, muts]) => {
        let b: Buffer = Buffer.from(yamlish(doc, block));
        for (const m of muts) b = mutate(b, m);
        return b.toString('utf8');
      }),
  },
);

const PROBLEM = /^(\(top level\)|YAML|tunnels(\[\d+\])?(\.[A-Za-z]\w*)?(\[\d+\])?(\.[A-Za-z]\w*)?): \S/;

const staticConfigTarget: FuzzTarget = {
  name: 'static-config',
  summary: 'datapath/static/config.ts parseStaticConfig on hostile YAML text',
  ciRuns: 2000,
  open(stats) {
    // the yaml library reports unresolved tags, unknown directives and collection keys through
    // process.emitWarning: count them instead of printing thousands of them
    const printers = process.listeners('warning');
    process.removeAllListeners('warning');
    const onWarning = (w: Error): void => stats.count(`(process warning: ${w.name})`);
    process.on('warning', onWarning);
    const close = (): Promise<void> => {
      process.off('warning', onWarning);
      for (const l of printers) process.on('warning', l);
      return Promise.resolve();
    };
    const property = fc.property(staticTextArb, (text) => {
      try {
        const c = parseStaticConfig(text);
        assertThat(
          c.tunnels.length > 0 && c.tunnels.every((t) => t.sessions.length > 0),
          'empty config accepted',
        );
        stats.count('accepted');
      } catch (e) {
        const err = expectError(e, ConfigError, 'parseStaticConfig');
        assertThat(err.problems.length > 0, 'ConfigError without problems');
        for (const p of err.problems) {
          // a top-level key the loader does not know is named as written (it may be any string)
          const ok = PROBLEM.test(p) || p.endsWith(': unknown field');
          assertThat(ok, `problem without a field path and reason: ${JSON.stringify(p)}`);
          assertThat(noStack(p), `stack trace in a problem: ${p}`);
        }
        const first = err.problems[0]!;
        stats.count(
          first.startsWith('YAML')
            ? 'rejected: YAML syntax'
            : first.endsWith(': unknown field')
              ? 'rejected: unknown top-level field'
              : `rejected: ${first.replace(/\[\d+\]/g, '[]').split(':')[0]!}`,
        );
      }
    });
    return Promise.resolve({ property, close });
  },
};

// ---------------------------------------------------------------- agent protocol (pure part)

type ProtoInput =
  | { kind: 'roundtrip'; exitCode: number; stdout: string }
  | { kind: 'random'; data: Buffer }
  | { kind: 'header'; header: unknown; body: Buffer; mutations: Mutation[] };

const protoInputArb: fc.Arbitrary<ProtoInput> = fc.oneof(
  fc.record({
    kind: fc.constant('roundtrip' as const),
    exitCode: fc.integer({ min: 0, max: 255 }),
    stdout: fc.string({ unit: 'grapheme', maxLength: 80 }),
  }),
  fc.record({ kind: fc.constant('random' as const), data: bytes(64) }),
  fc.record({
    kind: fc.constant('header' as const),
    header: fc.oneof(
      fc.record(
        {
          v: fc.oneof(fc.constantFrom(1, 2, 0), jsonAny),
          exitCode: fc.oneof(fc.integer({ min: -1, max: 300 }), jsonAny),
          stdoutBytes: fc.oneof(fc.integer({ min: -1, max: 40 }), fc.double(), jsonAny),
        },
        { requiredKeys: [] },
      ),
      jsonAny,
    ),
    body: bytes(40),
    mutations: fc.array(mutationArb, { maxLength: 2 }),
  }),
);

const agentProtocolTarget: FuzzTarget = {
  name: 'agent-protocol',
  summary: 'lib/agent-protocol.ts encodeResponse/decodeResponse on round trips, random and mutated replies',
  ciRuns: 20000,
  open(stats) {
    const property = fc.property(protoInputArb, (input) => {
      let buf: Buffer;
      if (input.kind === 'roundtrip') buf = encodeResponse(input.exitCode, input.stdout);
      else if (input.kind === 'random') buf = input.data;
      else {
        buf = Buffer.concat([Buffer.from(`${JSON.stringify(input.header) ?? ''}\n`), input.body]);
        for (const m of input.mutations) buf = mutate(buf, m);
      }
      try {
        const r = decodeResponse(buf);
        assertThat(cniResponseHeaderSchema.safeParse(r.header).success, 'decoded an invalid header');
        assertThat(
          Buffer.byteLength(r.stdout) <= r.header.stdoutBytes || /\ufffd/.test(r.stdout),
          'body size',
        );
        if (input.kind === 'roundtrip') {
          assertThat(
            r.header.exitCode === input.exitCode && r.stdout === input.stdout,
            'round trip changed the reply',
          );
        }
        stats.count('accepted');
      } catch (e) {
        // decodeResponse's own errors are plain Errors that say "agent response: ..."
        assertThat(
          e instanceof Error && e.constructor === Error && e.message.startsWith('agent response: '),
          `decodeResponse: foreign exception ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
        );
        assertThat(input.kind !== 'roundtrip', `an encoded reply did not decode: ${e.message}`);
        assertThat(noStack(e.message), 'stack trace in the message');
        stats.count(`rejected: ${e.message.replace(/\d+/g, 'N').slice(0, 40)}`);
      }
    });
    return Promise.resolve({ property, close: () => Promise.resolve() });
  },
};

// ---------------------------------------------------------------- netlink replies

const attrLeafArb: fc.Arbitrary<Attr> = fc.oneof(
  fc.record({ type: fc.nat(40), u8: fc.nat(255) }),
  fc.record({ type: fc.nat(40), u16: fc.nat(65535) }),
  fc.record({ type: fc.nat(40), u32: fc.nat() }),
  fc.record({ type: fc.nat(40), u64: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  fc.record({ type: fc.nat(40), str: fc.string({ maxLength: 12 }) }),
  fc.record({ type: fc.nat(40), bytes: bytes(20) }),
  fc.record({ type: fc.nat(40), flag: fc.constant(true as const) }),
);
const attrArb: fc.Arbitrary<Attr> = fc.letrec<{ attr: Attr }>((tie) => ({
  attr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    attrLeafArb,
    fc.record({ type: fc.nat(40), nested: fc.array(tie('attr'), { maxLength: 4 }) }),
  ),
})).attr;

const REQ_SEQ = 7;
const request = encodeMessage(
  { type: 0x18, flags: 0x5, seq: REQ_SEQ, pid: 0 },
  encodeGenl(4, 1, [
    { type: 9, u32: 1 },
    {
      type: 2,
      nested: [
        { type: 1, u64: 5n },
        { type: 3, str: 'l2tpeth0' },
      ],
    },
    { type: 7, bytes: Buffer.alloc(6) },
  ]),
);

const nlPayloadArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytes(48),
  fc
    .tuple(bytes(4), fc.array(attrArb, { maxLength: 5 }))
    .map(([h, as]) => Buffer.concat([h, encodeAttrs(as)])),
  fc
    .tuple(bytes(16), fc.array(attrArb, { maxLength: 4 }))
    .map(([h, as]) => Buffer.concat([h, encodeAttrs(as)])),
  // NLMSG_ERROR: errno, the echoed request header (or the whole request), then ext-ack TLVs
  fc
    .tuple(fc.integer({ min: -200, max: 0 }), fc.boolean(), fc.array(attrArb, { maxLength: 4 }), fc.nat(64))
    .map(([errno, whole, tlvs, off]) => {
      const e = Buffer.alloc(4);
      e.writeInt32LE(errno);
      const echo = whole ? request : request.subarray(0, 16);
      const t = encodeAttrs([{ type: 2, u32: off }, ...tlvs]);
      return Buffer.concat([e, echo, t]);
    }),
);
const nlMessageArb = fc.record({
  type: fc.oneof(fc.constantFrom(NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, 16, 0x18, 0x10), fc.nat(65535)),
  flags: fc.oneof(
    fc.constantFrom(0, NLM_F_MULTI, NLM_F_ACK_TLVS, NLM_F_ACK_TLVS | NLM_F_CAPPED),
    fc.nat(65535),
  ),
  seq: fc.oneof(fc.constant(REQ_SEQ), fc.nat()),
  payload: nlPayloadArb,
});
const datagramArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytes(64),
  fc
    .tuple(fc.array(nlMessageArb, { minLength: 1, maxLength: 4 }), fc.array(mutationArb, { maxLength: 2 }))
    .map(([ms, muts]) => {
      let b: Buffer = Buffer.concat(
        ms.map((m) => encodeMessage({ type: m.type, flags: m.flags, seq: m.seq, pid: 0 }, m.payload)),
      );
      for (const m of muts) b = mutate(b, m);
      return b;
    }),
);

function walkAttrs(buf: Buffer, depth: number): number {
  let n = 0;
  for (const a of parseAttrs(buf)) {
    n++;
    if (depth < 4 && a.value.length >= 4) {
      try {
        n += walkAttrs(a.value, depth + 1);
      } catch (e) {
        expectError(e, NetlinkDecodeError, 'parseAttrs (nested)');
      }
    }
  }
  const m = AttrMap.parse(buf);
  for (const a of m.list) {
    m.u8(a.type);
    m.u16(a.type);
    m.u32(a.type);
    m.u64(a.type);
    m.str(a.type);
  }
  return n;
}

const DECODERS: [string, (m: NlMsg) => unknown][] = [
  ['decodeGenl', decodeGenl],
  ['decodeFamily', decodeFamily],
  ['decodeTunnel', decodeTunnel],
  ['decodeSession', decodeSession],
  ['decodeLink', decodeLink],
];

const netlinkTarget: FuzzTarget = {
  name: 'netlink',
  summary:
    'lib/netlink codec + socket.decodeReplies + genl/l2tp/rtnl reply decoders on random and mutated replies',
  ciRuns: 8000,
  open(stats) {
    const property = fc.property(fc.array(datagramArb, { minLength: 1, maxLength: 3 }), (datagrams) => {
      // the raw splitters on each datagram
      for (const d of datagrams) {
        try {
          for (const m of parseMessages(d)) {
            try {
              walkAttrs(m.payload.subarray(m.payload.length >= 4 ? 4 : 0), 0);
            } catch (e) {
              expectError(e, NetlinkDecodeError, 'parseAttrs');
            }
          }
        } catch (e) {
          expectError(e, NetlinkDecodeError, 'parseMessages');
        }
      }
      // what the socket does with a reply, then what the backends do with its messages
      let msgs: NlMsg[];
      try {
        msgs = decodeReplies(request, REQ_SEQ, datagrams, {
          op: 'fuzz',
          familyHeaderLen: 4,
          attrName: (t) => `attr${t}`,
        });
      } catch (e) {
        if (e instanceof NetlinkError) {
          assertThat(noStack(e.message) && e.message !== '', 'NetlinkError without a message');
          stats.count('kernel error (NetlinkError)');
          return;
        }
        const de = expectError(e, NetlinkDecodeError, 'decodeReplies');
        stats.count(`rejected: ${de.message.replace(/\d+/g, 'N')}`);
        return;
      }
      stats.count(`accepted: ${Math.min(msgs.length, 3)}${msgs.length > 3 ? '+' : ''} data messages`);
      for (const m of msgs) {
        for (const [name, decode] of DECODERS) {
          try {
            decode(m);
          } catch (e) {
            expectError(e, NetlinkDecodeError, name);
          }
        }
      }
    });
    return Promise.resolve({ property, close: () => Promise.resolve() });
  },
};

export const PURE_TARGETS: readonly FuzzTarget[] = [
  wireTarget,
  cniConfigTarget,
  cniDispatchTarget,
  staticConfigTarget,
  agentProtocolTarget,
  netlinkTarget,
];

export { envArb, stdinArb, cniVerdict, checkCniError, notReady, bytes, hostileString, mutate, mutationArb };
export type { Verdict, Mutation };
