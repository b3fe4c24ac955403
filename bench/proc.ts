// What /proc says of a bench's processes: their CPU time and memory, one reader for every bench.
import { readFileSync } from 'node:fs';

/** user + system CPU seconds of process `pid` so far (USER_HZ); undefined once it is gone. */
export function processCpuSeconds(pid: number | string): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name may hold spaces and parentheses: the fields start after the last ')'
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14 and 15)
}

/** A memory figure of /proc/<pid>/status in MB (VmHWM: peak RSS); NaN when it cannot be read. */
export function procStatusMB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}
