// The images built without Docker (image/), imported into a real, throwaway containerd and run with
// runc: the product twice from the committed tree (one digest), the pause, tools and (when built)
// Multus images. containerd runs in a private mount namespace with its own /run, so its snapshot
// mounts, shims and runc state vanish with it; ctr keeps its FIFOs in the test's directory, which
// both sides see.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapture } from '../../lib/exec.js';
import { silentLogger } from '../../lib/log.js';
import { DebianPackages, REFRESH_COMMAND } from '../../image/debs.js';
import { requireRoot } from '../harness/netns.js';
import { sleep, until } from '../harness/wait.js';
import { stopProcess } from '../harness/process.js';

const repo = process.cwd();
const cli = join(repo, 'dist/image/main.js');
const CGROUP = 'kli-image-test';
let dir: string;
let sock: string;
let containerd: ChildProcess | undefined;
let containerdLog = '';

interface Built {
  name: string;
  digest: string;
  archive: string;
}

async function build(ids: string[], out: string, extra: string[] = []): Promise<Built[]> {
  const r = await runCapture(process.execPath, [cli, 'build', ...ids, '--out', out, '--no-cache', ...extra], {
    timeoutMs: 900_000,
  });
  assert.equal(r.code, 0, r.stderr.slice(-4000));
  assert.match(r.stderr, /\[image \+[\d.]+s\] .*built/, 'progress lines on stderr');
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [name, digest, archive] = l.split(' ');
      return { name: name!, digest: digest!, archive: archive! };
    });
}

function ctr(args: string[], timeoutMs = 120_000) {
  // containers get their FIFOs where containerd's private /run is not in the way
  const a = args[0] === 'run' ? ['run', '--fifo-dir', join(dir, 'fifo'), ...args.slice(1)] : args;
  return runCapture('ctr', ['-a', sock, '-n', 'k8s.io', ...a], { timeoutMs });
}

/** Runs a command in a container of image and returns its output, whatever its exit code. */
async function output(image: string, id: string, cmd: string[]): Promise<string> {
  const r = await ctr(['run', '--rm', '--cgroup', `/${CGROUP}/${id}`, image, id, ...cmd]);
  return r.stdout + r.stderr;
}

/** Runs a command in a container of image and returns its output; it must succeed. */
async function runIn(image: string, id: string, cmd: string[]): Promise<string> {
  const r = await ctr(['run', '--rm', '--cgroup', `/${CGROUP}/${id}`, image, id, ...cmd]);
  assert.equal(r.code, 0, `${cmd.join(' ')} in ${image}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

const stopContainerd = () => stopProcess(containerd);

describe('images built without Docker, in a real containerd', { concurrency: false }, () => {
  const built = new Map<string, Built>();
  const multus = existsSync(join(process.env.KUBE_L2TP_BIN ?? '', 'multus'));

  before(async () => {
    requireRoot();
    dir = mkdtempSync(join(tmpdir(), 'kli-image-'));
    sock = join(dir, 'containerd.sock');
    writeFileSync(
      join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/opt"`,
        '',
      ].join('\n'),
    );
    // a private mount namespace with its own /run: shims and runc keep their state under /run/containerd
    containerd = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'mount -t tmpfs kli-run /run && exec containerd --config "$1"',
        '-',
        join(dir, 'config.toml'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    containerd.stdout?.on('data', (d: Buffer) => (containerdLog += d.toString()));
    containerd.stderr?.on('data', (d: Buffer) => (containerdLog += d.toString()));
    await until('containerd answering', async () => (await ctr(['version'])).code === 0, 30_000);
  });

  after(async () => {
    await stopContainerd();
    // containers ran in cgroups of their own under the test's parent: remove them in every hierarchy
    for (const h of existsSync('/sys/fs/cgroup/cgroup.controllers') ? [''] : readdirSync('/sys/fs/cgroup')) {
      const parent = join('/sys/fs/cgroup', h, CGROUP);
      if (!existsSync(parent)) continue;
      for (const c of readdirSync(parent, { withFileTypes: true }))
        if (c.isDirectory()) rmdirSync(join(parent, c.name));
      rmdirSync(parent);
    }
    if (dir) {
      // nothing of containerd's may stay mounted on the host
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(!mounts.includes(dir), `mounts left under ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds the product twice from the committed tree with one digest', async () => {
    // one commit, resolved once: other commits may land while the images build
    const commit = (await runCapture('git', ['rev-parse', 'HEAD'])).stdout.trim();
    // the two builds share nothing but the commit: run side by side, as two machines would
    const [a, b] = await Promise.all([
      build(['kube-l2tp'], join(dir, 'out1'), ['--from', commit]),
      build(['kube-l2tp'], join(dir, 'out2'), ['--from', commit]),
    ]);
    assert.equal(a[0]!.name, b[0]!.name);
    assert.equal(a[0]!.digest, b[0]!.digest, 'two builds of one commit give two digests');
    assert.ok(readFileSync(a[0]!.archive).equals(readFileSync(b[0]!.archive)), 'the archives differ');
    built.set('kube-l2tp', a[0]!);
    const others = await build(['pause', 'tools', ...(multus ? ['multus'] : [])], join(dir, 'out1'));
    for (const o of others) built.set(o.name.replace(/^kube-l2tp\.local\/([^:]+):.*$/, '$1'), o);
  });

  it('imports every archive; ctr images ls shows the fully qualified name and the digest', async () => {
    assert.ok(built.size >= 3, 'the build test did not run');
    for (const b of built.values()) {
      const r = await ctr(['images', 'import', '--no-unpack=false', b.archive]);
      assert.equal(r.code, 0, r.stderr + containerdLog.slice(-2000));
    }
    const ls = await ctr(['images', 'ls']);
    for (const b of built.values()) {
      const line = ls.stdout.split('\n').find((l) => l.startsWith(`${b.name} `));
      assert.ok(line, `${b.name} not listed:\n${ls.stdout}`);
      assert.ok(line.includes(b.digest), `${b.name} listed with another digest: ${line}`);
    }
  });

  it('the product runs: node at the Dockerfile version, ip, both wrappers, the non-root user', async () => {
    const name = built.get('kube-l2tp')!.name;
    const nodeVersion = /^ARG NODE_VERSION=(\S+)$/m.exec(readFileSync(join(repo, 'Dockerfile'), 'utf8'))![1];
    assert.equal((await runIn(name, 'kli-node', ['node', '--version'])).trim(), `v${nodeVersion}`);
    assert.match(await runIn(name, 'kli-ip', ['ip', '-V']), /iproute2-6/);
    assert.match(await runIn(name, 'kli-tc', ['tc', '-V']), /iproute2-6/);
    assert.match(await runIn(name, 'kli-ip-link', ['ip', 'link', 'show', 'lo']), /LOOPBACK/);
    // the wrappers start package.json's bins
    assert.match(
      await output(name, 'kli-op', ['kube-l2tp-operator', 'mirror']),
      /usage: kube-l2tp-operator mirror/,
    );
    assert.match(await output(name, 'kli-dp', ['kube-l2tp-datapath', '--help']), /kube-l2tp-datapath agent/);
    const who = 'console.log(`${process.getuid()}:${process.getgid()} ${process.cwd()}`)';
    assert.equal((await runIn(name, 'kli-id', ['node', '-e', who])).trim(), '65532:65532 /app');
    // every native addon loads inside the image (glibc and libstdc++ from the pinned packages)
    const addons = await runIn(name, 'kli-addons', [
      'node',
      '-e',
      "for (const a of ['datapath/native/build/Release/l2tp_pump.node','lib/netlink/native/build/Release/netlink_socket.node','lib/spawn/native/build/Release/spawn_capture.node']) { process.dlopen({exports:{}}, '/app/'+a); console.log('loaded '+a) }",
    ]);
    assert.equal(addons.match(/loaded /g)?.length, 3, addons);
    const shim =
      "console.log(require('fs').statSync('/app/cmd/cni/shim/build/kube-l2tp').mode & 0o111 ? 'exec' : 'noexec')";
    assert.match(await runIn(name, 'kli-shim', ['node', '-e', shim]), /^exec/);
  });

  it('the tools image has sh, ping, ip, sleep and iperf3', async () => {
    const name = built.get('tools')!.name;
    const out = await runIn(name, 'kli-tools', [
      'sh',
      '-c',
      'ip link set lo up && ping -c 1 -W 2 127.0.0.1 && sleep 0 && iperf3 --version',
    ]);
    assert.match(out, /1 packets received/);
    assert.match(out, /iperf 3\./);
  });

  it('the pause image sleeps until SIGTERM', async () => {
    const name = built.get('pause')!.name;
    const r = await ctr(['run', '-d', '--cgroup', `/${CGROUP}/kli-pause`, name, 'kli-pause']);
    assert.equal(r.code, 0, r.stderr);
    await sleep(500);
    assert.match((await ctr(['tasks', 'ls'])).stdout, /kli-pause\s+\d+\s+RUNNING/);
    assert.equal((await ctr(['tasks', 'kill', '-s', 'SIGTERM', 'kli-pause'])).code, 0);
    await until(
      'pause to stop',
      async () => /kli-pause\s+\d+\s+STOPPED/.test((await ctr(['tasks', 'ls'])).stdout),
      10_000,
    );
    await ctr(['tasks', 'rm', 'kli-pause']);
    assert.equal((await ctr(['containers', 'rm', 'kli-pause'])).code, 0);
  });

  it(
    'the Multus image holds the thin plugin where upstream installs it from',
    { skip: !multus && 'Multus not built (scripts/build-go-tools.sh multus)' },
    async () => {
      const name = built.get('multus')!.name;
      const ls = await runIn(name, 'kli-multus-ls', [
        'ls',
        '/usr/src/multus-cni/bin/multus',
        '/thin_entrypoint',
      ]);
      assert.match(ls, /\/usr\/src\/multus-cni\/bin\/multus/);
      assert.match(await output(name, 'kli-multus', ['/thin_entrypoint', '--help']), /multus-bin-file/);
      // the installer upstream's DaemonSet runs as its init container copies the plugin
      if (existsSync(join(process.env.KUBE_L2TP_BIN ?? '', 'multus-install'))) {
        const inst = await output(name, 'kli-multus-install', [
          'sh',
          '-c',
          '/install_multus --type thin --dest-dir /tmp; ls /tmp',
        ]);
        assert.match(inst, /multus copy succeeded/);
      }
    },
  );
});

it('a pinned Debian version that is not served fails with the command that refreshes the pins', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'kli-debs-'));
  try {
    const debs = new DebianPackages(
      cache,
      new Map([['libc6', { version: '0.0-kli-gone', sha256: '0'.repeat(64) }]]),
      'image/debian-packages.txt',
      silentLogger(),
    );
    await assert.rejects(debs.unpacked('libc6'), (e: Error) => {
      assert.match(e.message, /libc6 0\.0-kli-gone \(pinned in image\/debian-packages\.txt\) is not served/);
      assert.ok(e.message.includes(REFRESH_COMMAND), e.message);
      return true;
    });
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
