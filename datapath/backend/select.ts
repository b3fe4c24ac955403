// Picks the datapath backend: kernel (generic netlink family "l2tp"), ebpf (tc programs, no l2tp
// modules needed), userspace (TAP + native pump), or auto = the first of these that works on this
// node. The reason is always reported, naming why the better ones were passed over.
import type { Backend, BackendOptions } from './types.js';
import { createUserspaceBackend, type UserspaceBackendOptions } from './userspace/backend.js';

export const BACKEND_CHOICES = ['userspace', 'kernel', 'ebpf', 'auto'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface SelectOptions extends UserspaceBackendOptions {
  /** bpffs mount for the ebpf backend's pins (default /sys/fs/bpf). */
  bpffs?: string;
}

interface KernelModule {
  probeKernelL2tp(): Promise<{ available: boolean; reason: string }>;
  createKernelBackend(opts: BackendOptions): Backend;
}

/** The kernel backend is developed separately; a build without it still runs userspace. */
async function loadKernelModule(): Promise<KernelModule | string> {
  const spec = './kernel/index.js';
  try {
    return (await import(spec)) as KernelModule;
  } catch (err) {
    return `kernel backend module not available (${(err as Error).message.split('\n')[0]})`;
  }
}

/** The ebpf backend, or why it cannot run here (no bpffs, BPF not permitted, loader not built). */
async function openEbpf(opts: SelectOptions): Promise<Backend | string> {
  try {
    const { createEbpfBackend } = await import('./ebpf/index.js');
    return await createEbpfBackend(opts);
  } catch (err) {
    return (err as Error).message.split('\n')[0]!;
  }
}

export async function selectBackend(
  choice: BackendChoice,
  opts: SelectOptions,
): Promise<{ backend: Backend; reason: string }> {
  if (choice === 'userspace') return { backend: createUserspaceBackend(opts), reason: 'requested' };
  if (choice === 'ebpf') {
    const ebpf = await openEbpf(opts);
    if (typeof ebpf === 'string') throw new Error(`ebpf backend unavailable: ${ebpf}`);
    return { backend: ebpf, reason: 'requested' };
  }
  const mod = await loadKernelModule();
  const probe = typeof mod === 'string' ? { available: false, reason: mod } : await mod.probeKernelL2tp();
  if (choice === 'kernel') {
    if (typeof mod === 'string') throw new Error(mod);
    if (!probe.available) throw new Error(`kernel backend unavailable: ${probe.reason}`);
    return { backend: mod.createKernelBackend(opts), reason: 'requested' };
  }
  if (probe.available && typeof mod !== 'string')
    return { backend: mod.createKernelBackend(opts), reason: `auto: ${probe.reason}` };
  const ebpf = await openEbpf(opts);
  if (typeof ebpf !== 'string') {
    return { backend: ebpf, reason: `auto: kernel L2TP unavailable (${probe.reason}); eBPF programs loaded` };
  }
  return {
    backend: createUserspaceBackend(opts),
    reason: `auto: kernel L2TP unavailable (${probe.reason}); eBPF unavailable (${ebpf})`,
  };
}
