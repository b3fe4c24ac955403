// Stopping a child process the tests or benches started: SIGTERM, time to exit, then SIGKILL.
import type { ChildProcess } from 'node:child_process';
import { within } from './wait.js';

/** Stops p if it is still running; resolves once it has exited (or after SIGKILL was sent). */
export async function stopProcess(p: ChildProcess | undefined, graceMs = 10_000): Promise<void> {
  if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await within(exited, graceMs);
  if (p.exitCode === null && p.signalCode === null) {
    p.kill('SIGKILL');
    await within(exited, 5_000);
  }
}
