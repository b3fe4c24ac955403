// IPAM delegation: exec $CNI_PATH/<ipam.type> with the same CNI_* environment and the same full
// config (libcni invoke.DelegateAdd). One adjustment: when the delegate does not speak the config's
// cniVersion (Debian's plugins stop at 1.0.0), it gets the highest version it does speak; results
// of 0.4.0 and 1.x are converted back, so the caller never notices.
//
// The delegate is started with posix_spawn (lib/spawn): inside the agent, child_process's fork()
// would stall the event loop, and every other CNI request, while the kernel copies the agent's page
// tables (longer the larger the agent). child_process remains the fallback when the addon is not built.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { runCapture, type RunOptions, type RunResult } from '../../lib/exec.js';
import { loadSpawnAddon, spawnCapture } from '../../lib/spawn/spawn-capture.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { formatResult, parseResult, type CniResult } from '../../lib/cni/result.js';
import { compareVersions, versionAtLeast } from '../../lib/cni/versions.js';
import type { Logger } from '../../lib/log.js';
import type { Env } from './config.js';

/**
 * Where delegates are looked for: the directories this process sees the node's CNI plugins in
 * (the agent's container mounts the node's bin dir elsewhere than the host path), then the
 * runtime's CNI_PATH (right when the agent runs on the host itself).
 */
export function delegateSearchPath(own: readonly string[] | undefined, cniPath: readonly string[]): string[] {
  return [...new Set([...(own ?? []), ...cniPath])];
}

export async function findPlugin(type: string, path: readonly string[]): Promise<string> {
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniError(
      CniCode.InvalidConfig,
      `invalid network config: ipam.type: "${type}" is not a plugin name`,
    );
  }
  for (const dir of path) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK); // sync: microseconds, on the ADD critical path
      return p;
    } catch {
      // next dir
    }
  }
  throw new CniError(
    CniCode.InvalidConfig,
    `invalid network config: ipam.type: plugin "${type}" not found in [${path.join(':')}] (the node's CNI bin dir as the agent sees it, then CNI_PATH)`,
  );
}

type Runner = (file: string, args: readonly string[], opts: RunOptions) => Promise<RunResult>;
let runner: Runner | undefined;

/** posix_spawn when the addon is there, else child_process; says once which. */
function delegateRunner(logger: Logger): Runner {
  if (runner) return runner;
  try {
    loadSpawnAddon();
    runner = spawnCapture;
    logger.info('IPAM delegates are started with posix_spawn (spawn addon)');
  } catch (e) {
    runner = runCapture;
    logger.warn(
      { err: (e as Error).message },
      'IPAM delegates are started with child_process: fork() blocks the event loop for a time that grows with the size of this process',
    );
  }
  return runner;
}

const versionCache = new Map<string, { mtimeMs: number; versions: string[] }>();
/** A VERSION answer is immediate; a plugin that hangs on it is treated as one that does not answer. */
export const VERSION_PROBE_TIMEOUT_MS = 5_000;

async function supportedVersions(plugin: string, logger: Logger): Promise<string[]> {
  const st = statSync(plugin);
  const hit = versionCache.get(plugin);
  if (hit && hit.mtimeMs === st.mtimeMs) return hit.versions;
  const r = await delegateRunner(logger)(plugin, [], {
    env: { CNI_COMMAND: 'VERSION' },
    input: '{"cniVersion":"1.1.0"}',
    timeoutMs: VERSION_PROBE_TIMEOUT_MS,
  });
  if (r.code !== 0) logger.warn({ plugin, code: r.code, stderr: r.stderr.trim() }, 'delegate VERSION failed');
  let versions: string[] = [];
  try {
    const v = JSON.parse(r.stdout) as { supportedVersions?: unknown };
    if (Array.isArray(v.supportedVersions))
      versions = v.supportedVersions.filter((x) => typeof x === 'string');
  } catch {
    // a plugin that does not answer VERSION gets the config unchanged
  }
  versionCache.set(plugin, { mtimeMs: st.mtimeMs, versions });
  return versions;
}

/** The config version the delegate gets (the caller's, or the delegate's best below it). */
async function versionFor(plugin: string, want: string, logger: Logger): Promise<string> {
  const vs = await supportedVersions(plugin, logger);
  if (vs.length === 0 || vs.includes(want)) return want;
  const best = vs
    .filter((v) => versionAtLeast(v, '0.4.0'))
    .sort(compareVersions)
    .pop();
  return best ?? want;
}

/** The config at a lower version: cniVersion and a prevResult in that version's format. */
function lowerConfig(config: Record<string, unknown>, version: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config, cniVersion: version };
  if (config.prevResult !== undefined) {
    try {
      out.prevResult = formatResult(
        parseResult(config.prevResult, 'prevResult', String(config.cniVersion)),
        version,
      );
    } catch {
      // leave it: the delegate will say what it dislikes
    }
  }
  return out;
}

export interface DelegateCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
  plugin: string;
  /** The full request config (object); cniVersion may be lowered for the delegate. */
  config: Record<string, unknown>;
  env: Env;
  logger: Logger;
}

/** Run a delegate; on ADD returns its result. A delegate's error comes back as the same CniError. */
export async function execDelegate(call: DelegateCall): Promise<CniResult | undefined> {
  return (await prepareDelegate(call))();
}

/**
 * Everything before the exec (version negotiation); the returned function starts the delegate at
 * once and resolves with its result, so cmdAdd launches the delegate before its own work, which
 * then runs while the delegate does. (With the child_process fallback the start itself blocks the
 * event loop for the fork.)
 */
export async function prepareDelegate(call: DelegateCall): Promise<() => Promise<CniResult | undefined>> {
  const want = String(call.config.cniVersion ?? '1.0.0');
  const version = await versionFor(call.plugin, want, call.logger);
  if ((call.command === 'GC' || call.command === 'STATUS') && !versionAtLeast(version, '1.1.0')) {
    call.logger.debug({ plugin: call.plugin, version }, `delegate does not support ${call.command}; skipped`);
    return () => Promise.resolve(undefined);
  }
  const config = version === want ? call.config : lowerConfig(call.config, version);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.env)) if (v !== undefined && k.startsWith('CNI_')) env[k] = v;
  env.CNI_COMMAND = call.command;
  env.PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  return () => {
    const t0 = performance.now();
    const run = delegateRunner(call.logger)(call.plugin, [], {
      env,
      input: JSON.stringify(config),
      timeoutMs: 60_000,
    });
    return run.then((r) => delegateOutcome(call, version, r, t0));
  };
}

function delegateOutcome(
  call: DelegateCall,
  version: string,
  r: RunResult,
  t0: number,
): CniResult | undefined {
  const log = {
    plugin: call.plugin,
    command: call.command,
    code: r.code,
    ms: +(performance.now() - t0).toFixed(1),
  };
  if (r.stderr.trim() !== '') call.logger.info({ ...log, stderr: r.stderr.trim() }, 'delegate stderr');
  if (r.code !== 0) {
    let code: number = CniCode.DelegateFailed;
    let msg = `delegate ${call.plugin} ${call.command} failed (exit ${r.code})`;
    let details: string | undefined = r.stderr.trim() || undefined;
    try {
      const e = JSON.parse(r.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
      if (typeof e.code === 'number') code = e.code;
      if (typeof e.msg === 'string') msg = `ipam ${call.command}: ${e.msg}`;
      if (typeof e.details === 'string' && e.details !== '') details = e.details;
    } catch {
      // not JSON: keep the generic message
    }
    throw new CniError(code, msg, details);
  }
  call.logger.debug(log, 'delegate ok');
  if (call.command !== 'ADD') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(r.stdout);
  } catch {
    throw new CniError(CniCode.DecodingFailure, `ipam ADD: delegate ${call.plugin} printed no JSON result`);
  }
  return parseResult(raw, 'ipam result', version);
}
