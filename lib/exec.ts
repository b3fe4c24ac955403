// Running helper programs (tc, CNI delegates, test tools) without a shell.
import { execFile, spawn } from 'node:child_process';

export class ExecError extends Error {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${file} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.trim()}`);
    this.name = 'ExecError';
  }
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run a program; resolves with its output whatever the exit code. */
export function runCapture(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (signal ? `\nkilled by ${signal}` : ''),
        code: code ?? 128,
      });
    });
    child.stdin.on('error', () => undefined); // a program that does not read stdin closes it early
    child.stdin.end(opts.input ?? '');
  });
}

/** Run a program; rejects with ExecError on a non-zero exit. Returns stdout. */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await runCapture(file, args, opts);
  if (r.code !== 0) throw new ExecError(file, args, r.code, r.stderr, r.stdout);
  return r.stdout;
}

/** Fire-and-forget variant for callers that only need success/failure. */
export function runOk(file: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(file, args, (err) => resolve(err === null));
  });
}
