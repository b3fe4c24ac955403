// The datapath agent's seccomp profile (a Localhost profile, OCI runtime-spec format, which containerd
// and CRI-O both read). It is the allow-list every container gets from containerd's default profile
// (RuntimeDefault without extra capabilities) plus exactly what the agent needs beyond it:
//   setns  enter a pod's network namespace for the CNI attach (lib/netlink/native/netlink_socket.c)
//   bpf    load and pin the ebpf backend's programs and maps
// RuntimeDefault lets more through once a container has CAP_SYS_ADMIN (mount, umount2, unshare,
// clone/clone3 with namespace flags, the new mount API, perf_event_open, sethostname, ...): none of it
// is here. IPAM delegates run inside the agent's container, so they get this list too; they already
// run under RuntimeDefault's allow-list, which is a subset of this one but for setns and bpf.
// The checked copies in deploy/seccomp/ are this module's output (scripts/gen-seccomp.ts).

/** Where the profile lives under the kubelet's seccomp directory (<kubelet root>/seccomp/). */
export const SECCOMP_PROFILE_DIR = 'kube-l2tp';
export const SECCOMP_PROFILE_FILE = 'datapath.json';
/** The pod's `localhostProfile`: relative to the kubelet's seccomp directory. */
export const SECCOMP_LOCALHOST_PROFILE = `${SECCOMP_PROFILE_DIR}/${SECCOMP_PROFILE_FILE}`;

/** What the agent needs beyond the base list. */
export const AGENT_EXTRA_SYSCALLS = ['setns', 'bpf'] as const;

/**
 * What containerd's default profile adds for CAP_SYS_ADMIN and this profile leaves out (clone is
 * allowed without namespace flags, and clone3 answers ENOSYS so that libc falls back to clone, as
 * containerd does for containers without CAP_SYS_ADMIN).
 */
export const REFUSED_ADMIN_SYSCALLS = [
  'clone3',
  'fanotify_init',
  'fsconfig',
  'fsmount',
  'fsopen',
  'fspick',
  'lookup_dcookie',
  'mount',
  'mount_setattr',
  'move_mount',
  'open_tree',
  'perf_event_open',
  'quotactl',
  'quotactl_fd',
  'setdomainname',
  'sethostname',
  'syslog',
  'umount',
  'umount2',
  'unshare',
] as const;

/**
 * containerd's default allow-list for every container (contrib/seccomp/seccomp_default.go: the
 * unconditional list, and the kernel >= 4.8 additions ptrace, process_vm_readv and process_vm_writev).
 * A name the running kernel or libseccomp does not know is skipped by the runtime.
 */
// prettier-ignore
export const BASE_SYSCALLS = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset',
  'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres',
  'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64',
  'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create',
  'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait',
  'epoll_wait_old', 'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group', 'faccessat',
  'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat',
  'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr',
  'flock', 'fork', 'fremovexattr', 'fsetxattr', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64',
  'fsync', 'ftruncate', 'ftruncate64', 'futex', 'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv',
  'futex_wake', 'futimesat', 'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid',
  'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid',
  'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid',
  'getresuid32', 'getrlimit', 'get_robust_list', 'getrusage', 'getsid', 'getsockname', 'getsockopt',
  'get_thread_area', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'getxattrat',
  'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl',
  'io_destroy', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'ioprio_get', 'ioprio_set',
  'io_setup', 'io_submit', 'ipc', 'kill', 'landlock_add_rule', 'landlock_create_ruleset',
  'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen', 'listmount',
  'listxattr', 'listxattrat', 'llistxattr', '_llseek', 'lremovexattr', 'lseek', 'lsetxattr',
  'lsm_get_self_attr', 'lsm_list_modules', 'lsm_set_self_attr', 'lstat', 'lstat64', 'madvise', 'membarrier',
  'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2',
  'mlockall', 'map_shadow_stack', 'mmap', 'mmap2', 'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open',
  'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink', 'mremap',
  'mseal', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap',
  'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause',
  'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll',
  'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease',
  'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink',
  'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'remap_file_pages',
  'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'rmdir', 'rseq',
  'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_getaffinity', 'sched_getattr',
  'sched_getparam', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_getscheduler',
  'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity', 'sched_setattr',
  'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget', 'semop',
  'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto',
  'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32',
  'setitimer', 'setpgid', 'setpriority', 'setregid', 'setregid32', 'setresgid', 'setresgid32', 'setresuid',
  'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list', 'setsid', 'setsockopt',
  'set_thread_area', 'set_tid_address', 'setuid', 'setuid32', 'setxattr', 'setxattrat', 'shmat', 'shmctl',
  'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn',
  'socketcall', 'socketpair', 'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx',
  'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time',
  'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime',
  'timer_settime64', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime',
  'timerfd_settime64', 'times', 'tkill', 'truncate', 'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink',
  'unlinkat', 'uretprobe', 'utime', 'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4',
  'waitid', 'waitpid', 'write', 'writev',
  'process_vm_readv', 'process_vm_writev', 'ptrace',
] as const;

/** The per-architecture additions of containerd's default list, for the architectures the image is built for. */
export const ARCHES = {
  x64: {
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: ['arch_prctl', 'modify_ldt'],
  },
  arm64: {
    architectures: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [
      'arm_fadvise64_64',
      'arm_sync_file_range',
      'sync_file_range2',
      'breakpoint',
      'cacheflush',
      'set_tls',
    ],
  },
} as const;

export type SeccompArch = keyof typeof ARCHES;

export const isSeccompArch = (a: string): a is SeccompArch => Object.hasOwn(ARCHES, a);

interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_LT' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';
}

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;
const AF_ALG = 38;
const AF_VSOCK = 40;
// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
const CLONE_NAMESPACE_FLAGS =
  0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/** The profile for one architecture (the datapath pod's init container writes the node's own). */
export function datapathSeccompProfile(arch: SeccompArch): SeccompProfile {
  const a = ARCHES[arch];
  const allow = (names: readonly string[], args?: SeccompArg[]): SeccompRule => ({
    names: [...names],
    action: 'SCMP_ACT_ALLOW',
    ...(args ? { args } : {}),
  });
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: [...a.architectures],
    syscalls: [
      allow([...BASE_SYSCALLS, ...a.syscalls].sort()),
      allow([...AGENT_EXTRA_SYSCALLS]),
      // socket(2) for every address family but AF_ALG and AF_VSOCK, as containerd's default: three
      // single-condition rules, because conditions on one argument in one rule would be ORed by runc
      allow(['socket'], [{ index: 0, value: AF_ALG, op: 'SCMP_CMP_LT' }]),
      allow(['socket'], [{ index: 0, value: AF_ALG + 1, op: 'SCMP_CMP_EQ' }]),
      allow(['socket'], [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_GT' }]),
      // personality(2) only with the values containerd allows
      ...[0x0, 0x0008, 0x20000, 0x20008, 0xffffffff].map((v) =>
        allow(['personality'], [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }]),
      ),
      // threads and processes, never new namespaces (flags are clone's first argument on these arches)
      allow(['clone'], [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]),
      // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    ],
  };
}

/** The profile file's text (what the init container writes and deploy/seccomp/ holds). */
export function datapathSeccompProfileText(arch: SeccompArch): string {
  return `${JSON.stringify(datapathSeccompProfile(arch), null, 2)}\n`;
}

/** The checked copy's file name under deploy/seccomp/ (architectures named as images name them). */
export function checkedProfileFile(arch: SeccompArch): string {
  return `kube-l2tp-datapath-${arch === 'x64' ? 'amd64' : arch}.json`;
}
