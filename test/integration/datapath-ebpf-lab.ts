// Helpers for the ebpf backend's integration tests: a private bpffs per test (the pins of two
// "hosts" on one machine must not meet) and the static datapath started with --backend ebpf.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from '../../lib/exec.js';
import { inNs, type Lab } from '../harness/netns.js';
import { startDatapath, type DatapathProc } from './datapath-lab.js';

/** A fresh bpffs mount, unmounted (with every pin in it) at cleanup. */
export async function privateBpffs(lab: Lab): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'eb-bpffs-'));
  await run('mount', ['-t', 'bpf', 'bpf', dir]);
  lab.onCleanup(async () => {
    await runOk('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** `static --backend ebpf` in ns, pinning under its own directory of bpffs. */
export async function startEbpfDatapath(
  lab: Lab,
  ns: string,
  config: unknown,
  bpffs: string,
  waitReady = true,
): Promise<DatapathProc> {
  const dir = join(bpffs, ns);
  await run('mkdir', ['-p', dir]);
  return startDatapath(lab, ns, config, waitReady, ['--backend', 'ebpf', '--bpffs', dir]);
}

/**
 * Over veth, the inner TCP checksum of an encapsulated packet stays "partial" (to be filled by the
 * NIC); a kernel receiver accepts that, a userspace peer reading the UDP payload (QEMU, the pump) sees
 * an unfilled checksum. Real NICs fill it; on veth, checksumming in software does.
 */
export async function softwareChecksums(ns: string, dev: string): Promise<void> {
  await inNs(ns, 'ethtool', '-K', dev, 'tx', 'off');
}
