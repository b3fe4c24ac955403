// Makes a TCP port of the root namespace's loopback (the test apiserver) reachable inside another
// network namespace (on its loopback, or on another address of it), without routing anything off
// the machine: a unix socket (a filesystem object, visible from every netns) joins two socat relays.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from './netns.js';
import { sleep } from './wait.js';

export async function bridgeLoopbackPort(
  lab: Lab,
  netns: string,
  port: number,
  dir: string,
  bind = '127.0.0.1',
): Promise<void> {
  const sock = join(dir, `lo-${netns}-${port}.sock`);
  const procs: ChildProcess[] = [];
  const start = (args: string[]) => {
    const p = spawn(args[0]!, args.slice(1), { stdio: 'ignore' });
    procs.push(p);
    return p;
  };
  lab.onCleanup(async () => {
    for (const p of procs) p.kill('SIGTERM');
  });
  start(['socat', `UNIX-LISTEN:${sock},fork,unlink-early`, `TCP:127.0.0.1:${port}`]);
  for (let i = 0; i < 50 && !existsSync(sock); i++) await sleep(50);
  start([
    'ip',
    'netns',
    'exec',
    netns,
    'socat',
    `TCP-LISTEN:${port},bind=${bind},fork,reuseaddr`,
    `UNIX-CONNECT:${sock}`,
  ]);
  await sleep(200);
}
