// Picks the datapath backend: kernel (generic netlink family "l2tp"), ebpf (tc programs, no l2tp
// modules needed), userspace (TAP + native pump), or auto = the first of these that works on this
// node. The reason is always reported, naming why the better ones were passed over.
import { createKernelBackend, probeKernelL2tp } from './kernel/index.js';
import type { Backend, BackendOptions } from './types.js';
import { createUserspaceBackend, type UserspaceBackendOptions } from './userspace/backend.js';

export const BACKEND_CHOICES = ['userspace', 'kernel', 'ebpf', 'auto'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface SelectOptions extends UserspaceBackendOptions {
  /** bpffs mount for the ebpf backend's pins (default /sys/fs/bpf). */
  bpffs?: string;
}

/** What the choice is made from; the defaults probe this node, tests pass their own. */
export interface BackendProbes {
  probeKernel(): Promise<{ available: boolean; reason: string }>;
  createKernel(opts: BackendOptions): Backend;
  /** The ebpf backend, or why it cannot run here. */
  openEbpf(opts: SelectOptions): Promise<Backend | string>;
  createUserspace(opts: SelectOptions): Backend;
}

/** The ebpf backend, or why it cannot run here (no bpffs, BPF not permitted, loader not built). */
async function openEbpf(opts: SelectOptions): Promise<Backend | string> {
  try {
    // loaded on demand: its native loader is only needed where ebpf is tried
    const { createEbpfBackend } = await import('./ebpf/index.js');
    return await createEbpfBackend(opts);
  } catch (err) {
    return (err as Error).message.split('\n')[0]!;
  }
}

const NODE_PROBES: BackendProbes = {
  probeKernel: probeKernelL2tp,
  createKernel: createKernelBackend,
  openEbpf,
  createUserspace: createUserspaceBackend,
};

export async function selectBackend(
  choice: BackendChoice,
  opts: SelectOptions,
  probes: BackendProbes = NODE_PROBES,
): Promise<{ backend: Backend; reason: string }> {
  if (choice === 'userspace') return { backend: probes.createUserspace(opts), reason: 'requested' };
  if (choice === 'ebpf') {
    const ebpf = await probes.openEbpf(opts);
    if (typeof ebpf === 'string') throw new Error(`ebpf backend unavailable: ${ebpf}`);
    return { backend: ebpf, reason: 'requested' };
  }
  const probe = await probes.probeKernel();
  if (choice === 'kernel') {
    if (!probe.available) throw new Error(`kernel backend unavailable: ${probe.reason}`);
    return { backend: probes.createKernel(opts), reason: 'requested' };
  }
  if (probe.available) return { backend: probes.createKernel(opts), reason: `auto: ${probe.reason}` };
  const ebpf = await probes.openEbpf(opts);
  if (typeof ebpf !== 'string') {
    return { backend: ebpf, reason: `auto: kernel L2TP unavailable (${probe.reason}); eBPF programs loaded` };
  }
  return {
    backend: probes.createUserspace(opts),
    reason: `auto: kernel L2TP unavailable (${probe.reason}); eBPF unavailable (${ebpf})`,
  };
}
