// Parsing of the plugin's inputs: the CNI_* environment (skel.go rules) and the request config (zod).
import { z } from 'zod';
import { parseCniArgs, type K8sArgs } from '../../lib/cni/args.js';
import { ipamProblem } from '../../lib/api/ipam.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import {
  CURRENT_VERSION,
  SUPPORTED_VERSIONS,
  isSupportedVersion,
  type CniVersion,
} from '../../lib/cni/versions.js';
import {
  DEFAULT_CNI_SOCKET,
  agentSocketProblem,
  type AttachMode,
  type PseudowireRef,
} from '../../lib/agent-protocol.js';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
export const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

export type Env = Readonly<Record<string, string | undefined>>;

export interface CmdArgs {
  command: Command;
  containerID: string;
  netns: string;
  ifname: string;
  args: K8sArgs;
  path: string[];
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** libcni utils.ValidateInterfaceName (names go to the kernel over netlink as they are). */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/u.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}

const REQUIRED: Record<Command, readonly string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

export function parseCommand(env: Env): Command {
  const c = env.CNI_COMMAND;
  if (c === undefined || c === '')
    throw new CniError(CniCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!(COMMANDS as readonly string[]).includes(c)) {
    throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND: ${c}`);
  }
  return c as Command;
}

export function parseEnv(command: Command, env: Env): CmdArgs {
  const missing = REQUIRED[command].filter((k) => (env[k] ?? '') === '');
  if (missing.length > 0) {
    throw new CniError(CniCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  const containerID = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (containerID !== '' && !ID_RE.test(containerID)) {
    throw new CniError(CniCode.InvalidEnvironment, `CNI_CONTAINERID: invalid characters in "${containerID}"`);
  }
  if (ifname !== '') {
    const p = interfaceNameProblem(ifname);
    if (p) throw new CniError(CniCode.InvalidEnvironment, `CNI_IFNAME: interface name "${ifname}" ${p}`);
  }
  const netns = env.CNI_NETNS ?? '';
  if (netns !== '' && !netns.startsWith('/')) {
    throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS: "${netns}" is not an absolute path`);
  }
  const args =
    command === 'ADD' || command === 'DEL' || command === 'CHECK' ? parseCniArgs(env.CNI_ARGS) : {};
  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  return { command, containerID, netns, ifname, args, path };
}

const attachmentList = z.array(z.object({ containerID: z.string(), ifname: z.string() }));

const pseudowireSchema = z.union([
  z.object({ namespace: z.string().min(1).optional(), name: z.string().min(1) }),
  z.string().regex(/^([a-z0-9][a-z0-9.-]*\/)?[a-z0-9][a-z0-9.-]*$/, 'expected "namespace/name" or "name"'),
]);

export const netConfSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.string().regex(ID_RE, 'must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$'),
  type: z.string().min(1),
  pseudowire: pseudowireSchema,
  mode: z.enum(['bridge', 'exclusive']).optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  mac: z
    .string()
    .regex(MAC_RE, 'expected a MAC like 02:00:00:00:00:01')
    .refine((m) => (Number.parseInt(m.slice(0, 2), 16) & 1) === 0, 'must be a unicast MAC')
    .optional(),
  // validated apart (ipamProblem): by spec.ipam's rules, and DEL treats a refusal its own way
  ipam: z.unknown().optional(),
  agentSocket: z
    .string()
    .check((ctx) => {
      const p = agentSocketProblem(ctx.value);
      if (p) ctx.issues.push({ code: 'custom', message: `"${ctx.value}" ${p}`, input: ctx.value });
    })
    .optional(),
  prevResult: z.record(z.string(), z.unknown()).optional(),
  runtimeConfig: z.looseObject({ mac: z.string().regex(MAC_RE).optional() }).optional(),
  'cni.dev/valid-attachments': attachmentList.optional(),
  'cni.dev/attachments': attachmentList.optional(),
});
export type RawNetConf = z.infer<typeof netConfSchema>;

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** The namespace is the config's, else the pod's; whether the pod may use it is the agent's call. */
  pseudowire: PseudowireRef;
  /** What the config asks for; the Pseudowire's spec decides, a different ask is refused. */
  mode?: AttachMode;
  mtu?: number;
  mac?: string;
  ipam?: { type: string; [k: string]: unknown };
  /** DEL and GC: why the config's ipam was refused (then ipam is absent: nothing of it was allocated). */
  ipamRefused?: string;
  agentSocket: string;
  prevResult?: Record<string, unknown>;
  validAttachments?: { containerID: string; ifname: string }[];
  /** The config exactly as received (delegates get it unchanged). */
  raw: Record<string, unknown>;
}

/** The cniVersion of a config, for error output, without validating anything else. */
export function peekVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && v !== '' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function decodeJson(stdin: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CniCode.DecodingFailure, `failed to decode network config: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(CniCode.DecodingFailure, 'failed to decode network config: not a JSON object');
  }
  return raw as Record<string, unknown>;
}

/** Config keys only ADD reads (the pod link's MAC, MTU and the mode asked for); DEL goes by its record. */
const ADD_ONLY_KEYS = ['mac', 'mtu', 'mode', 'runtimeConfig'] as const;
/**
 * DEL's view: a pseudowire it cannot read is only a fallback lost (the record names the real one),
 * and its cniVersion was read above.
 */
const delConfSchema = netConfSchema.partial({ pseudowire: true, cniVersion: true });

const withoutKeys = (o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

export interface ParseOptions {
  /**
   * DEL and GC parse a refused ipam into NetConf.ipamRefused instead of failing, and DEL ignores the
   * keys only ADD reads and a pseudowire it cannot read (see parseNetConf).
   */
  command?: Command;
  /** IPAM types allowed; default IPAM_TYPES (tests add stand-in delegates). */
  ipamTypes?: readonly string[] | undefined;
}

/**
 * The request's config, validated. An ipam that breaks spec.ipam's rules is refused (code 7) before
 * any handler runs, so no link, record or allocation is made and no delegate is started. DEL is the
 * exception that still succeeds: such an ADD was refused, so there is no allocation to release, and a
 * DEL that failed would keep the pod from ever being torn down; its ipam is dropped, not run.
 */
export function parseNetConf(stdin: string, args: K8sArgs, opts: ParseOptions = {}): NetConf {
  const raw = decodeJson(stdin);
  // skel: a config without cniVersion is 0.1.0, which nobody here supports
  const version = typeof raw.cniVersion === 'string' && raw.cniVersion !== '' ? raw.cniVersion : '0.1.0';
  // DEL goes on with a version ADD refused (nothing was made; DEL prints nothing version-specific)
  if (!isSupportedVersion(version) && opts.command !== 'DEL') {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `incompatible CNI versions: config is "${version}", plugin supports [${SUPPORTED_VERSIONS.join(', ')}]`,
    );
  }
  // DEL ignores what only shapes the link ADD makes: a bad value there made ADD refuse, so nothing was
  // made with it, and a DEL refused for it would keep the pod from ever being torn down. The IPAM
  // delegate still gets the full config.
  const del = opts.command === 'DEL';
  const unreadablePw = del && !pseudowireSchema.safeParse(raw.pseudowire).success;
  const r = del
    ? delConfSchema.safeParse(
        withoutKeys(raw, [...ADD_ONLY_KEYS, 'cniVersion', ...(unreadablePw ? ['pseudowire'] : [])]),
      )
    : netConfSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const field = i.path.map(String).join('.') || '(config)';
    let msg = i.message;
    if (i.code === 'invalid_union') msg = 'expected {"namespace","name"} or "namespace/name"';
    throw new CniError(CniCode.InvalidConfig, `invalid network config: ${field}: ${msg}`);
  }
  const c = r.data;
  const pw = c.pseudowire;
  const ns = typeof pw === 'string' ? (pw.includes('/') ? pw.split('/')[0] : undefined) : pw?.namespace;
  const name = typeof pw === 'string' ? pw.split('/').pop()! : (pw?.name ?? '');
  // ADD and CHECK refuse a pod whose namespace is unknown (lookupPseudowire); DEL and GC go by records.
  // No pseudowire (DEL of an unreadable one): a reference nothing matches.
  const pseudowire: PseudowireRef = { namespace: pw ? (ns ?? args.K8S_POD_NAMESPACE ?? '') : '', name };
  const out: NetConf = {
    cniVersion: isSupportedVersion(version) ? version : CURRENT_VERSION,
    name: c.name,
    type: c.type,
    pseudowire,
    agentSocket: c.agentSocket ?? DEFAULT_CNI_SOCKET,
    raw,
  };
  if (c.mode !== undefined) out.mode = c.mode;
  if (c.mtu !== undefined) out.mtu = c.mtu;
  const mac = del ? undefined : (c.runtimeConfig?.mac ?? args.MAC ?? c.mac);
  if (mac !== undefined) {
    if (!MAC_RE.test(mac) || (Number.parseInt(mac.slice(0, 2), 16) & 1) !== 0) {
      throw new CniError(CniCode.InvalidConfig, `invalid network config: mac: "${mac}" is not a unicast MAC`);
    }
    out.mac = mac.toLowerCase();
  }
  if (c.ipam !== undefined) {
    const problem = ipamProblem(c.ipam, { types: opts.ipamTypes });
    if (problem === undefined) out.ipam = c.ipam as NonNullable<NetConf['ipam']>;
    else if (opts.command === 'DEL' || opts.command === 'GC') out.ipamRefused = problem;
    else throw new CniError(CniCode.InvalidConfig, `invalid network config: ${problem}`);
  }
  if (c.prevResult !== undefined) out.prevResult = c.prevResult;
  const valid = c['cni.dev/valid-attachments'] ?? c['cni.dev/attachments'];
  if (valid !== undefined) out.validAttachments = valid;
  return out;
}
