// A bench's or a test's subject (the operator, an agent) runs under a memory limit (by default the one
// the chart gives its pod), in a memory cgroup of its own, as a container runtime would run it: Node
// sizes its heap from the cgroup's limit, so a peak RSS measured without one is not what the pod
// sees, and a limit too small for the load shows as the process being killed.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { MEMORY_FILES, ownMemoryCgroup } from '../../lib/cgroup-memory.js';

const VALUES = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'deploy',
  'helm',
  'kube-l2tp',
  'values.yaml',
);

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
};

/** Bytes of a Kubernetes memory quantity ("512Mi", "1G", "536870912"). */
export function memoryBytes(q: string): number {
  const m = /^(\d+)(k|M|G|Ki|Mi|Gi)?$/.exec(q.trim());
  if (!m) throw new Error(`not a memory quantity this bench reads: ${q}`);
  return Number(m[1]) * UNITS[m[2] ?? '']!;
}

/** The chart's default memory limit of a component's pod (values.yaml). */
export function chartMemoryLimit(component: 'operator' | 'datapath'): string {
  const values = YAML.parse(readFileSync(VALUES, 'utf8')) as Record<
    string,
    { resources?: { limits?: { memory?: string } } }
  >;
  const limit = values[component]?.resources?.limits?.memory;
  if (!limit) throw new Error(`values.yaml has no ${component}.resources.limits.memory`);
  return limit;
}

/** The bench's own memory cgroup, under which each subject gets one of its own. */
function ownHierarchy(): { dir: string; version: 1 | 2; limitFile: string; peakFile: string } {
  const own = ownMemoryCgroup();
  if (!own) throw new Error('no memory cgroup of this process to make one under');
  const peakFile = own.version === 1 ? 'memory.max_usage_in_bytes' : 'memory.peak';
  return { ...own, limitFile: MEMORY_FILES[own.version].limit, peakFile };
}

export class MemoryLimit {
  private constructor(
    readonly quantity: string,
    readonly dir: string,
    private readonly version: 1 | 2,
    private readonly limitFile: string,
    private readonly peakFile: string,
  ) {}

  /** A cgroup limited to `quantity` (removed by remove()); fails with the reason when none can be made. */
  static create(name: string, quantity: string): MemoryLimit {
    const own = ownHierarchy();
    const dir = join(own.dir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, own.limitFile), String(memoryBytes(quantity)));
    return new MemoryLimit(quantity, dir, own.version, own.limitFile, own.peakFile);
  }

  /**
   * MB the cgroup was charged at most: what the pod's limit is held against. Kernel memory counts
   * (a session's netdevs, sockets and queues), so it exceeds the process's peak RSS.
   */
  peakMB(): number {
    return Number(readFileSync(join(this.dir, this.peakFile), 'utf8')) / 1e6;
  }

  /** Sets a new limit, as a pod's resize would. */
  resize(quantity: string): void {
    writeFileSync(join(this.dir, this.limitFile), String(memoryBytes(quantity)));
  }

  /** How many times the kernel killed a process of the cgroup for reaching the limit. */
  oomKills(): number {
    const text = this.version === 1 ? 'memory.oom_control' : 'memory.events';
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.dir, text), 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  /**
   * A shell command that mounts, in a mount namespace of its own (`ip netns exec` makes one), the
   * cgroup filesystem a container runtime gives a container: `ip netns exec` leaves /sys/fs/cgroup
   * empty.
   */
  static mountCgroupFs(): string {
    return ownMemoryCgroup()?.version === 1
      ? 'mount -t tmpfs cgroup /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory && mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory'
      : 'mount -t cgroup2 cgroup2 /sys/fs/cgroup';
  }

  /** The command and arguments that run `cmd args` inside the cgroup (same pid: sh execs it). */
  static wrap(limit: MemoryLimit | undefined, cmd: string, args: string[]): [string, string[]] {
    if (!limit) return [cmd, args];
    return ['sh', ['-c', `echo $$ > ${join(limit.dir, 'cgroup.procs')} && exec "$@"`, 'sh', cmd, ...args]];
  }

  /**
   * `ip netns exec ns argv...` as a container runtime would run it: inside `limit`'s cgroup, seeing
   * its cgroup filesystem (mountCgroupFs); without a limit, `ip netns exec` alone.
   */
  static inNetns(limit: MemoryLimit | undefined, ns: string, argv: string[]): [string, string[]] {
    const inNs = limit ? ['sh', '-c', `${MemoryLimit.mountCgroupFs()} && exec "$@"`, 'sh', ...argv] : argv;
    return MemoryLimit.wrap(limit, 'ip', ['netns', 'exec', ns, ...inNs]);
  }

  /** Removes the cgroup once its processes are gone (retries for a moment while they exit). */
  async remove(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(this.dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
