import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../lib/log.js';
import {
  ARCHES,
  BASE_SYSCALLS,
  checkedProfileFile,
  datapathSeccompProfileText,
  REFUSED_ADMIN_SYSCALLS,
  type SeccompArch,
  type SeccompProfile,
} from './profile.js';
import { installSeccompProfile } from './install.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const arches = Object.keys(ARCHES) as SeccompArch[];
const checked = (arch: SeccompArch) =>
  JSON.parse(readFileSync(join(repo, 'deploy/seccomp', checkedProfileFile(arch)), 'utf8')) as SeccompProfile;

/** How a profile answers a syscall (ignoring its arguments): allowed always, only for some arguments, or refused. */
function verdict(p: SeccompProfile, name: string): 'allow' | 'conditional' | 'errno' {
  const rules = p.syscalls.filter((r) => r.names.includes(name));
  if (rules.some((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args?.length)) return 'allow';
  if (rules.some((r) => r.action === 'SCMP_ACT_ALLOW')) return 'conditional';
  return 'errno';
}

describe('the datapath agent seccomp profile (deploy/seccomp/)', () => {
  it('the checked files are what datapath/seccomp/profile.ts generates', () => {
    for (const arch of arches)
      assert.equal(
        readFileSync(join(repo, 'deploy/seccomp', checkedProfileFile(arch)), 'utf8'),
        datapathSeccompProfileText(arch),
        `${checkedProfileFile(arch)} is stale: node dist/scripts/gen-seccomp.js`,
      );
  });

  for (const arch of arches) {
    describe(checkedProfileFile(arch), () => {
      const p = checked(arch);

      it('refuses what it does not list, with EPERM, for the architecture family only', () => {
        assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
        assert.equal(p.defaultErrnoRet, 1);
        assert.deepEqual(p.architectures, ARCHES[arch].architectures);
      });

      it('lets the agent enter network namespaces and load eBPF programs', () => {
        assert.equal(verdict(p, 'setns'), 'allow');
        assert.equal(verdict(p, 'bpf'), 'allow');
      });

      it('refuses mounting, new namespaces and the rest of what the runtime default adds for CAP_SYS_ADMIN', () => {
        for (const name of [...REFUSED_ADMIN_SYSCALLS, 'pivot_root', 'open_by_handle_at', 'chroot'])
          assert.equal(verdict(p, name), 'errno', `${name} is allowed`);
        for (const name of ['mount', 'umount2', 'unshare', 'fsopen', 'move_mount', 'open_tree'])
          assert.ok(REFUSED_ADMIN_SYSCALLS.includes(name as never), `${name} is in the refused list`);
        // clone only without namespace flags; clone3 (flags out of a filter's reach) answers ENOSYS
        const clone = p.syscalls.filter((r) => r.names.includes('clone'));
        assert.deepEqual(clone, [
          {
            names: ['clone'],
            action: 'SCMP_ACT_ALLOW',
            args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
          },
        ]);
        assert.deepEqual(
          p.syscalls.filter((r) => r.names.includes('clone3')),
          [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }],
        );
      });

      it('refuses what the runtime default refuses to every container (modules, kexec, reboot, clock, swap, keys)', () => {
        const refused = ['init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load',
          'reboot', 'settimeofday', 'clock_settime', 'swapon', 'swapoff', 'acct', 'add_key', 'keyctl',
          'request_key', 'userfaultfd', 'iopl', 'ioperm', 'vhangup', 'sysfs', 'nfsservctl']; // prettier-ignore
        for (const name of refused) assert.equal(verdict(p, name), 'errno', `${name} is allowed`);
      });

      it('allows every syscall of the runtime default allow-list, so IPAM delegates keep working', () => {
        for (const name of [...BASE_SYSCALLS, ...ARCHES[arch].syscalls])
          assert.equal(verdict(p, name), 'allow', name);
        assert.equal(verdict(p, 'socket'), 'conditional', 'socket: every family but AF_ALG and AF_VSOCK');
        assert.equal(verdict(p, 'personality'), 'conditional');
      });

      it('names each syscall in one rule of the unconditional list at most once', () => {
        const names = p.syscalls[0]!.names;
        assert.equal(new Set(names).size, names.length);
        const all = p.syscalls.filter((r) => !r.args).flatMap((r) => r.names);
        assert.equal(new Set(all).size, all.length);
      });
    });
  }

  it('the init container writes the node architecture profile once, atomically, and refuses unknown ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sc-seccomp-'));
    const logger = createLogger({ name: 'test', level: 'silent' });
    try {
      const target = join(dir, 'kube-l2tp');
      const path = await installSeccompProfile(target, 'x64', logger);
      assert.equal(path, join(target, 'datapath.json'));
      assert.equal(readFileSync(path, 'utf8'), datapathSeccompProfileText('x64'));
      assert.equal(statSync(path).mode & 0o777, 0o644);
      const before = statSync(path).ino;
      await installSeccompProfile(target, 'x64', logger);
      assert.equal(statSync(path).ino, before, 'an up-to-date file is left as it is');
      await installSeccompProfile(target, 'arm64', logger);
      assert.equal(readFileSync(path, 'utf8'), datapathSeccompProfileText('arm64'));
      await assert.rejects(
        installSeccompProfile(target, 'riscv64', logger),
        /no seccomp profile for the architecture riscv64.*RuntimeDefault/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
