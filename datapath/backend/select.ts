// Picks the datapath backend: kernel (generic netlink family "l2tp"), userspace (TAP + native pump),
// or auto = kernel when the family resolves, userspace otherwise. The reason is always reported.
import type { Backend, BackendOptions } from './types.js';
import { createUserspaceBackend, type UserspaceBackendOptions } from './userspace/backend.js';

export const BACKEND_CHOICES = ['userspace', 'kernel', 'auto'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

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

export async function selectBackend(
  choice: BackendChoice,
  opts: UserspaceBackendOptions,
): Promise<{ backend: Backend; reason: string }> {
  if (choice === 'userspace') return { backend: createUserspaceBackend(opts), reason: 'requested' };
  const mod = await loadKernelModule();
  if (typeof mod === 'string') {
    if (choice === 'kernel') throw new Error(mod);
    return { backend: createUserspaceBackend(opts), reason: mod };
  }
  const probe = await mod.probeKernelL2tp();
  if (choice === 'kernel') {
    if (!probe.available) throw new Error(`kernel backend unavailable: ${probe.reason}`);
    return { backend: mod.createKernelBackend(opts), reason: 'requested' };
  }
  return probe.available
    ? { backend: mod.createKernelBackend(opts), reason: `auto: ${probe.reason}` }
    : { backend: createUserspaceBackend(opts), reason: `auto: kernel L2TP unavailable (${probe.reason})` };
}
