// New sessions stop short of the datapath pod's memory limit. Past the limit the kernel kills the
// agent, and a node asked for more sessions than its limit holds would be killed again as each new
// agent made them: the sessions already up keep running, and the others say why they were not made.
import { memoryUse, ownMemoryCgroup, type MemoryCgroup, type MemoryUse } from '../../lib/cgroup-memory.js';

/** Share of the memory limit at which new sessions are no longer made. */
export const NEW_SESSION_MEMORY_SHARE = 0.9;

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/**
 * Why no new session may be made with this much memory in use; undefined when it may. The same text
 * whatever the exact use, so that a status listing it does not change from pass to pass.
 */
export function memoryRefusal(use: MemoryUse | undefined): string | undefined {
  if (!use || use.workingSetBytes < NEW_SESSION_MEMORY_SHARE * use.limitBytes) return undefined;
  return (
    `not made: the datapath pod has reached ${NEW_SESSION_MEMORY_SHARE * 100}% of its ${mib(use.limitBytes)} MiB ` +
    'memory limit, where new sessions stop so that the sessions up keep running ' +
    '(raise datapath.resources.limits.memory)'
  );
}

export interface MemoryGate {
  /** The limit found when the gate was made (undefined: none, or no cgroup to read: no gate). */
  limitBytes: number | undefined;
  /** Read at each call: one small read of the cgroup per new session. */
  refuseNewSession: () => string | undefined;
}

export function memoryGate(cg: MemoryCgroup | undefined = ownMemoryCgroup()): MemoryGate {
  return {
    limitBytes: memoryUse(cg)?.limitBytes,
    refuseNewSession: () => memoryRefusal(memoryUse(cg)),
  };
}
