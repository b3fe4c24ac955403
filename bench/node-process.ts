// A bench's node process (an agent, or static mode) as a datapath pod runs it: started through `ip`
// (netns exec) in a memory cgroup of its own under the pod's limit, its JSON log lines collected, and
// stopped with SIGTERM as the kubelet stops a pod. One place for the agent and sessions benches.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MemoryLimit } from '../test/harness/memory-limit.js';
import { sleep, within } from '../test/harness/wait.js';

export interface LogLine {
  /** The line's own time (ms). */
  t: number;
  msg: string;
  oneRequest?: unknown;
}

export interface NodeProcess {
  proc: ChildProcess;
  spawnedAt: number;
  lines: LogLine[];
  /** Its last warnings and errors, then its last 30 lines of output. */
  tail: () => string;
  exited: Promise<void>;
  /** The node process itself (ip netns exec execs it, so normally proc.pid). */
  pid: () => number;
  /** The most its memory cgroup was charged (MB; NaN without a limit), to the end once it exited. */
  podPeakMB: () => number;
}

/**
 * Runs `ip ipArgs` (a netns exec of the node process) in a cgroup named cgroup limited to
 * memoryLimit ("none": no cgroup), with LOG_LEVEL info.
 */
export function startNodeProcess(ipArgs: string[], memoryLimit: string, cgroup: string): NodeProcess {
  const limit = memoryLimit === 'none' ? undefined : MemoryLimit.create(cgroup, memoryLimit);
  const [cmd, cmdArgs] = MemoryLimit.wrap(limit, 'ip', ipArgs);
  const proc = spawn(cmd, cmdArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  const spawnedAt = Date.now();
  const lines: LogLine[] = [];
  let raw = '';
  let partial = '';
  // warnings and errors: the last lines of a failed run are usually its cleanup
  const problems: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      raw = (raw + p + '\n').slice(-20_000);
      try {
        const j = JSON.parse(p) as { level?: number; time?: number; msg?: string; oneRequest?: unknown };
        if (j.msg && j.time) lines.push({ t: j.time, msg: j.msg, oneRequest: j.oneRequest });
        if ((j.level ?? 0) >= 40 && problems.push(p) > 10) problems.shift();
      } catch {
        // not a log line
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (raw = (raw + d.toString()).slice(-20_000)));
  let finalPeakMB: number | undefined;
  const exited = new Promise<void>((r) => proc.once('exit', () => r())).then(async () => {
    // the peak of the whole run, teardown included, before the cgroup goes
    finalPeakMB = limit?.peakMB();
    await limit?.remove();
  });
  const pid = () => {
    const p = proc.pid!;
    if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node') return p;
    const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/);
    return Number(kids[0]);
  };
  return {
    proc,
    spawnedAt,
    lines,
    tail: () => [...problems, '...', ...raw.split('\n').slice(-30)].join('\n'),
    exited,
    pid,
    podPeakMB: () => finalPeakMB ?? limit?.peakMB() ?? NaN,
  };
}

/** Time of the process's "ready" log line (static mode: every session up); throws if it exits first. */
export async function waitReady(p: NodeProcess, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ready = p.lines.find((l) => l.msg === 'ready');
    if (ready) return ready.t;
    if (p.proc.exitCode !== null || p.proc.signalCode !== null || Date.now() > end)
      throw new Error(`no "ready" line:\n${p.tail()}`);
    await sleep(20);
  }
}

/** SIGTERM, then SIGKILL after ms; seconds until it exited (0 when it had already). */
export async function stopNodeProcess(p: NodeProcess, ms = 30_000): Promise<number> {
  const t0 = Date.now();
  if (p.proc.exitCode === null && p.proc.signalCode === null) {
    p.proc.kill('SIGTERM');
    await within(p.exited, ms);
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
    }
  }
  await p.exited;
  return (Date.now() - t0) / 1000;
}
