// Boots Debian's kernel (scripts/fetch-kernel.sh) under QEMU/TCG with a TAP uplink in a network
// namespace, the host root shared read-only over 9p (so the guest runs this checkout's dist/ with the
// host's node) and a writable 9p share for the guest script, its outputs and logs. The guest /init
// (built by fetch-kernel.sh) loads l2tp + virtio + 9p modules, addresses eth0, mounts the shares and
// runs guest.sh from the writable share, then powers off. QEMU is always killed and the TAP removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from '../../lib/exec.js';
import { ipIn } from './netns.js';

/** The repository root (works from test/harness and from dist/test/harness). */
export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = resolve(d, '..');
    if (up === d) throw new Error('repository root not found');
    d = up;
  }
  return d;
}

/** Why VM tests cannot run here, or undefined when they can. */
export function vmUnavailable(): string | undefined {
  const dir = process.env.KUBE_L2TP_KERNEL_DIR;
  if (!dir)
    return 'KUBE_L2TP_KERNEL_DIR is not set (run through scripts/test.sh vm, which runs scripts/fetch-kernel.sh)';
  for (const f of ['vmlinux', 'initrd.gz']) {
    if (!existsSync(join(dir, f))) return `${join(dir, f)} missing (run scripts/fetch-kernel.sh)`;
  }
  const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].some((p) =>
    existsSync(p),
  );
  if (!qemu) return 'qemu-system-x86_64 is not installed (scripts/install-system-deps.sh installs it)';
  return undefined;
}

export interface VmOptions {
  kernelDir: string;
  /** Existing namespace that gets the TAP uplink. */
  netns: string;
  tap: string;
  /** Host side of the uplink, CIDR (e.g. 10.203.0.1/24). */
  hostAddr: string;
  /** Guest eth0, CIDR (e.g. 10.203.0.2/24). */
  guestAddr: string;
  /** busybox sh script, run as root in the initramfs; /host is the host root (read-only), /work writable. */
  guestScript: string;
  /** More files for the writable share (name -> content). */
  files?: Record<string, string>;
  timeoutMs?: number;
  memoryMb?: number;
  /** Called with the share directory once the VM is started (host-side actions during the run). */
  whileRunning?: (work: string, vm: RunningVm) => Promise<void>;
}

export interface RunningVm {
  /** Resolves when the guest has written `name` into the share (or rejects on timeout / VM exit). */
  waitForFile(name: string, timeoutMs: number): Promise<string>;
  exited(): boolean;
}

export interface VmResult {
  /** Serial console (kernel + init messages). */
  console: string;
  /** stdout+stderr of guest.sh. */
  guestLog: string;
  /** Exit code of guest.sh, undefined when it never finished. */
  guestRc: number | undefined;
  timedOut: boolean;
  durationMs: number;
  /** Reads a file the guest left in the share. */
  files: Record<string, string>;
}

/**
 * Shell lines for guest.sh: mount what a chroot into the host root needs and bind the writable share
 * at /tmp/work inside it. After this, `chroot /host CMD` runs the host's programs on the guest kernel.
 */
export function chrootPrelude(): string {
  // The checkout may itself live under /tmp or /run (CI clones into a temporary directory): keep it
  // visible at the same path through the tmpfs mounts, or the guest cannot find dist/.
  const repo = repoRoot();
  const hidden = repo.startsWith('/tmp/') || repo.startsWith('/run/');
  const q = (p: string) => `'${p.replaceAll("'", "'\\''")}'`;
  return [
    'mount -t proc proc /host/proc',
    'mount -t sysfs sys /host/sys',
    'mount -t devtmpfs dev /host/dev',
    ...(hidden ? ['mkdir -p /repo', `mount --bind ${q(`/host${repo}`)} /repo`] : []),
    'mount -t tmpfs tmp /host/tmp',
    'mount -t tmpfs run /host/run',
    'mkdir -p /host/tmp/work /host/run/netns',
    'mount --bind /work /host/tmp/work',
    ...(hidden ? [`mkdir -p ${q(`/host${repo}`)}`, `mount --bind /repo ${q(`/host${repo}`)}`] : []),
  ].join('\n');
}

export async function runVm(o: VmOptions): Promise<VmResult> {
  const t0 = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'kkvm-'));
  let qemu: ChildProcess | undefined;
  let exited = false;
  let timedOut = false;
  try {
    await writeFile(join(work, 'guest.sh'), o.guestScript);
    for (const [n, c] of Object.entries(o.files ?? {})) await writeFile(join(work, n), c);
    await runOk('ip', ['-n', o.netns, 'link', 'del', o.tap]);
    await ipIn(o.netns, 'tuntap', 'add', 'dev', o.tap, 'mode', 'tap');
    await ipIn(o.netns, 'addr', 'add', o.hostAddr, 'dev', o.tap);
    await ipIn(o.netns, 'link', 'set', o.tap, 'up');
    const consoleFile = join(work, 'console.log');
    const args = [
      'netns',
      'exec',
      o.netns,
      'qemu-system-x86_64',
      '-accel',
      'tcg',
      '-m',
      String(o.memoryMb ?? 1024),
      '-smp',
      '1',
      '-no-reboot',
      '-nodefaults',
      '-display',
      'none',
      '-monitor',
      'none',
      '-kernel',
      join(o.kernelDir, 'vmlinux'),
      '-initrd',
      join(o.kernelDir, 'initrd.gz'),
      '-append',
      `console=ttyS0 quiet panic=-1 hostroot=1 vmip=${o.guestAddr}`,
      '-netdev',
      `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
      '-device',
      'virtio-net-pci,netdev=n0,romfile=',
      '-virtfs',
      'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
      '-virtfs',
      `local,path=${work},mount_tag=work,security_model=none,multidevs=remap`,
      '-serial',
      `file:${consoleFile}`,
    ];
    qemu = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let qemuOut = '';
    qemu.stdout?.on('data', (d: Buffer) => (qemuOut += d.toString()));
    qemu.stderr?.on('data', (d: Buffer) => (qemuOut += d.toString()));
    const done = new Promise<void>((res) => qemu!.on('exit', () => ((exited = true), res())));
    const timeoutMs = o.timeoutMs ?? 300_000;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu?.kill('SIGKILL');
    }, timeoutMs);
    const vm: RunningVm = {
      exited: () => exited,
      async waitForFile(name, ms) {
        const end = Date.now() + ms;
        for (;;) {
          try {
            return await readFile(join(work, name), 'utf8');
          } catch {
            if (exited) throw new Error(`VM exited before writing ${name}`);
            if (Date.now() > end) throw new Error(`timed out waiting for ${name} from the guest`);
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      },
    };
    try {
      if (o.whileRunning) await o.whileRunning(work, vm);
      await done;
    } finally {
      clearTimeout(timer);
    }
    const read = (n: string) => readFile(join(work, n), 'utf8').catch(() => '');
    const rcText = (await read('guest.rc')).trim();
    const files: Record<string, string> = {};
    for (const n of await readdir(work)) files[n] = await read(n);
    return {
      console: (await read('console.log')) + (qemuOut ? `\n[qemu] ${qemuOut}` : ''),
      guestLog: await read('guest.log'),
      guestRc: rcText === '' ? undefined : Number(rcText),
      timedOut,
      durationMs: Date.now() - t0,
      files,
    };
  } finally {
    if (qemu && !exited) {
      qemu.kill('SIGKILL');
      await new Promise((r) => qemu!.once('exit', r));
    }
    await runOk('ip', ['-n', o.netns, 'link', 'del', o.tap]);
    // KUBE_L2TP_VM_KEEP=DIR keeps the share (logs, netlink traces, results) for inspection
    const keep = process.env.KUBE_L2TP_VM_KEEP;
    if (keep) await cp(work, keep, { recursive: true }).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}
