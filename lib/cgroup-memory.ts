// This process's memory cgroup: where it is, and how much of its limit is in use. What a pod's limit
// is held against includes the kernel memory its process caused (devices, sockets, queues), which no
// process statistic shows. cgroup v2, or the v1 memory hierarchy; inside a container the cgroup
// filesystem shows the container's own cgroup at its root.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryCgroup {
  dir: string;
  version: 1 | 2;
}

/** The files of each version: the limit, the charge, and the stat key of inactive file pages. */
export const MEMORY_FILES = {
  1: {
    limit: 'memory.limit_in_bytes',
    current: 'memory.usage_in_bytes',
    inactiveFile: 'total_inactive_file',
  },
  2: { limit: 'memory.max', current: 'memory.current', inactiveFile: 'inactive_file' },
} as const;

/**
 * This process's memory cgroup directory, or undefined when none is mounted where it can be read.
 * `root` is where cgroup filesystems are mounted; `self` the /proc/self/cgroup text.
 */
export function ownMemoryCgroup(
  root = '/sys/fs/cgroup',
  self = readFileSync('/proc/self/cgroup', 'utf8'),
): MemoryCgroup | undefined {
  const lines = self.trim().split('\n');
  const under = (dir: string, path: string) => (path === '/' ? dir : join(dir, path));
  const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  const candidates: MemoryCgroup[] = [];
  if (v1) {
    const path = v1.split(':')[2]!;
    // a container sees its own cgroup at the hierarchy's root, not under the path the host gives
    for (const dir of [under(join(root, 'memory'), path), join(root, 'memory')])
      candidates.push({ dir, version: 1 });
  } else {
    const v2 = lines.find((l) => l.startsWith('0::'));
    if (v2) for (const dir of [under(root, v2.slice(3)), root]) candidates.push({ dir, version: 2 });
  }
  return candidates.find((c) => existsSync(join(c.dir, MEMORY_FILES[c.version].limit)));
}

export interface MemoryUse {
  /** Charged memory less inactive file pages (reclaimable): what the kubelet calls the working set. */
  workingSetBytes: number;
  limitBytes: number;
}

/** v1 writes an unlimited cgroup's limit as the largest page-aligned 63-bit value. */
const UNLIMITED_V1 = 2 ** 62;

/** The cgroup's working set against its limit; undefined without a limit or when it cannot be read. */
export function memoryUse(cg: MemoryCgroup | undefined): MemoryUse | undefined {
  if (!cg) return undefined;
  const f = MEMORY_FILES[cg.version];
  try {
    const limitText = readFileSync(join(cg.dir, f.limit), 'utf8').trim();
    if (limitText === 'max') return undefined;
    const limitBytes = Number(limitText);
    if (!Number.isFinite(limitBytes) || limitBytes <= 0 || limitBytes >= UNLIMITED_V1) return undefined;
    const current = Number(readFileSync(join(cg.dir, f.current), 'utf8').trim());
    const stat = readFileSync(join(cg.dir, 'memory.stat'), 'utf8');
    const m = new RegExp(`^${f.inactiveFile} (\\d+)$`, 'm').exec(stat);
    const inactive = m ? Number(m[1]) : 0;
    if (!Number.isFinite(current)) return undefined;
    return { workingSetBytes: Math.max(0, current - inactive), limitBytes };
  } catch {
    return undefined;
  }
}
