// The CNI plugin's entry, skel-style: parse the injected env and stdin, answer VERSION, hand every
// other command to its handler (one file each), and turn any failure into the spec's error JSON.
// It runs inside the agent, behind the CNI socket the shim on the node talks to.
// The commands of one attachment (container ID + ifname) run one at a time, under its lock.
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/versions.js';
import { cmdAdd } from './add.js';
import { cmdCheck } from './check.js';
import { parseCommand, parseEnv, parseNetConf, peekVersion, type Command, type Env } from './config.js';
import { attachmentKey, type Ctx, type Handler, type PluginDeps } from './context.js';
import { cmdDel } from './del.js';
import { cmdGc } from './gc.js';
import { cmdStatus } from './status.js';

export type { PluginDeps } from './context.js';

export interface Invocation {
  env: Env;
  stdin: string;
  /** CNI_NETNS opened by the shim (the caller closes it after the invocation). */
  netnsFd?: number;
  /** The shim could not open CNI_NETNS. */
  netnsOpenError?: { errno: number; message: string };
}
export interface Outcome {
  exitCode: number;
  stdout: string;
}

const HANDLERS: Record<Exclude<Command, 'VERSION'>, Handler> = {
  ADD: cmdAdd,
  DEL: cmdDel,
  CHECK: cmdCheck,
  STATUS: cmdStatus,
  GC: cmdGc,
};

/** The commands of one attachment, which run one at a time (attachmentKey). */
const PER_ATTACHMENT: ReadonlySet<Command> = new Set(['ADD', 'CHECK', 'DEL']);

function runHandler(command: Exclude<Command, 'VERSION'>, c: Ctx): Promise<string | undefined> {
  if (!PER_ATTACHMENT.has(command)) return HANDLERS[command](c);
  const key = attachmentKey(c.cmd.containerID, c.cmd.ifname);
  if (c.deps.locker.held(key)) c.log.info('waits for the command in flight for this attachment');
  return c.deps.locker.withLock(key, () => HANDLERS[command](c));
}

export function versionOutput(stdin: string): string {
  return (
    JSON.stringify({
      cniVersion: peekVersion(stdin) ?? CURRENT_VERSION,
      supportedVersions: SUPPORTED_VERSIONS,
    }) + '\n'
  );
}

/** Run one plugin invocation. Never throws: errors become spec error JSON on stdout. */
export async function dispatch(inv: Invocation, deps: PluginDeps): Promise<Outcome> {
  const t0 = performance.now();
  let version = peekVersion(inv.stdin) ?? CURRENT_VERSION;
  let log = deps.logger;
  try {
    const command = parseCommand(inv.env);
    if (command === 'VERSION') return { exitCode: 0, stdout: versionOutput(inv.stdin) };
    const cmd = parseEnv(command, inv.env);
    log = deps.logger.child({
      cmd: command,
      containerID: cmd.containerID || undefined,
      ifname: cmd.ifname || undefined,
    });
    const conf = parseNetConf(inv.stdin, cmd.args, { command, ipamTypes: deps.ipamTypes });
    version = conf.cniVersion;
    if ((command === 'GC' || command === 'STATUS') && !versionAtLeast(version, '1.1.0')) {
      throw new CniError(
        CniCode.IncompatibleVersion,
        `config version ${version} does not allow ${command} (needs 1.1.0)`,
      );
    }
    const ctx: Ctx = { cmd, conf, env: inv.env, deps, log, ns: inv.netnsFd ?? cmd.netns };
    if (inv.netnsOpenError && inv.netnsFd === undefined) ctx.nsError = inv.netnsOpenError;
    const stdout = (await runHandler(command, ctx)) ?? '';
    log.info({ ms: +(performance.now() - t0).toFixed(1) }, `${command} ok`);
    return { exitCode: 0, stdout };
  } catch (e) {
    const err = CniError.from(e);
    log.error(
      { code: err.code, err: err.message, details: err.details, ms: +(performance.now() - t0).toFixed(1) },
      'failed',
    );
    return { exitCode: 1, stdout: JSON.stringify(err.toJSON(version)) + '\n' };
  }
}
