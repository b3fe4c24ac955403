// Picks the datapath backend: kernel (generic netlink family "l2tp"), ebpf (tc programs, no l2tp
// modules needed), userspace (TAP + native pump), or auto = the first of these that works on this
// node. The reason is always reported, naming why the better ones were passed over.
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createKernelBackend, probeKernelL2tp } from './kernel/index.js';
import type { Backend, BackendOptions } from './types.js';
import { createUserspaceBackend, type UserspaceBackendOptions } from './userspace/backend.js';
import { listTaps } from './userspace/tap.js';

/** Where hosts mount bpffs (the ebpf backend's default). */
const DEFAULT_BPFFS = '/sys/fs/bpf';

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

/**
 * The chosen backend owns the node: what another backend left here (a backend switch, e.g. ebpf to
 * userspace by a helm upgrade) is removed first, or the old session devices would be refused as
 * foreign and the old eBPF filters would take the tunnels' traffic. Each is opened (adopting what it
 * finds) and closed without keeping devices. Pods in Exclusive mode hold the old device itself and
 * lose it; Bridge-mode pods get the new device on their bridge.
 */
export async function retireOtherBackends(
  chosen: Backend['kind'],
  opts: SelectOptions,
  probes: Pick<BackendProbes, 'openEbpf' | 'createUserspace'> = NODE_PROBES,
): Promise<string[]> {
  const retired: string[] = [];
  const retire = async (b: Backend) => {
    const sessions = await b.listSessions();
    const tunnels = await b.listTunnels();
    for (const x of sessions) await b.deleteSession(x.tunnelId, x.sessionId);
    for (const t of tunnels) await b.deleteTunnel(t.tunnelId);
    await b.close({ keepDevices: false });
    retired.push(`${b.kind} (${sessions.length} sessions)`);
  };
  if (chosen !== 'ebpf' && (await hasEbpfPins(opts.bpffs ?? DEFAULT_BPFFS))) {
    const ebpf = await probes.openEbpf(opts);
    if (typeof ebpf !== 'string') await retire(ebpf);
  }
  if (chosen !== 'userspace' && (await listTaps()).some((t) => t.owner)) {
    await retire(probes.createUserspace(opts));
  }
  if (retired.length > 0)
    opts.logger.warn({ retired }, 'removed what another datapath backend left on this node');
  return retired;
}

/** This network namespace has pins of the ebpf backend (cheap: no program is loaded to find out). */
async function hasEbpfPins(bpffs: string): Promise<boolean> {
  const netns = /\[(\d+)\]/.exec(await readlink('/proc/self/ns/net').catch(() => ''))?.[1];
  if (!netns) return false;
  const dir = join(bpffs, 'kube-l2tp', `net-${netns}`);
  return (await readdir(dir).catch(() => [])).length > 0;
}

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
