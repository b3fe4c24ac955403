// Runs a program through the posix_spawn addon (native/spawn_capture.c, built by
// scripts/build-native.sh): no fork() of the calling process, so the cost does not grow with its
// memory, and the stdin write, the output reads, the wait and the timeout run on a thread of the
// addon's own, never on the event loop. Same contract as lib/exec.ts runCapture.
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import type { RunOptions, RunResult } from '../exec.js';
import { loadLibAddon } from '../native-addon.js';

interface NativeResult {
  status: number | null;
  signal: number | null;
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

export interface SpawnAddon {
  run(file: string, argv: string[], envp: string[], input: Buffer, timeoutMs: number): Promise<NativeResult>;
}

/** The addon, from KUBE_L2TP_SPAWN_ADDON, or built beside the sources. */
export function loadSpawnAddon(): SpawnAddon {
  return loadLibAddon<SpawnAddon>('spawn', 'spawn_capture.node', 'KUBE_L2TP_SPAWN_ADDON');
}

const signalNames = new Map<number, string>(
  Object.entries(constants.signals).map(([name, n]) => [n as number, name]),
);

/**
 * Run a program; resolves with its output whatever the exit code (a signal gives code 128 and
 * "killed by SIGx" appended to stderr, as runCapture). Rejects like child_process when the program
 * cannot be started: an Error "spawn FILE ENOENT" with code, errno (negative), syscall and path.
 * The program gets exactly opts.env (default: this process's environment).
 */
export async function spawnCapture(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const addon = loadSpawnAddon();
  const envp: string[] = [];
  for (const [k, v] of Object.entries(opts.env ?? process.env)) if (v !== undefined) envp.push(`${k}=${v}`);
  const input = opts.input === undefined ? Buffer.alloc(0) : Buffer.from(opts.input);
  let r: NativeResult;
  try {
    r = await addon.run(file, [...args], envp, input, opts.timeoutMs ?? 0);
  } catch (e) {
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno !== 'number') throw e;
    const code = getSystemErrorName(-errno);
    throw Object.assign(new Error(`spawn ${file} ${code}`), {
      code,
      errno: -errno,
      syscall: `spawn ${file}`,
      path: file,
      spawnargs: [...args],
    });
  }
  const signal = r.signal === null ? undefined : (signalNames.get(r.signal) ?? `signal ${r.signal}`);
  return {
    stdout: r.stdout.toString(),
    stderr: r.stderr.toString() + (signal ? `\nkilled by ${signal}` : ''),
    code: r.status ?? 128,
  };
}
