// What goes into each image. kube-l2tp: the product, the same contents as the Dockerfile's runtime
// stage (its /app comes from scripts/dockerfile-dry-build.sh, which runs the Dockerfile's own build
// stage). pause: the sandbox image of the real-node harness. tools: the test pods' image (busybox,
// iperf3). multus: the Multus thin plugin at the paths upstream's image uses.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { runCapture } from '../lib/exec.js';
import type { DebianPackages } from './debs.js';
import { dockerfileNodeVersion, nodeDist } from './node-dist.js';
import type { RunConfig } from './oci.js';
import { Rootfs, type PathFilter } from './rootfs.js';

export interface BuildEnv {
  repo: string;
  /** The project's tool cache ($KUBE_L2TP_CACHE). */
  cache: string;
  /** The product's app tree from the working tree or from a commit (a full hash, resolved once). */
  from: 'worktree' | { commit: string };
  /** An app tree already assembled by scripts/dockerfile-dry-build.sh --out (skips the dry build). */
  appTree?: string;
  tag?: string;
  debs: DebianPackages;
  log: Logger;
}

export interface Assembled {
  rootfs: Rootfs;
  config: RunConfig;
}

export interface Recipe {
  id: string;
  name(env: BuildEnv): string;
  /** The paths whose last commit dates the image (SOURCE_DATE_EPOCH); none: the commit itself. */
  datedBy?: string[];
  /** Files and facts whose change must change the image (the build cache's key). */
  inputs(env: BuildEnv): string[];
  assemble(env: BuildEnv, work: string): Promise<Assembled>;
}

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const NONROOT = 65532;

/** Documentation, translations and headers: never used at run time. */
const DEB_DROP = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/locale',
  'usr/share/lintian',
  'usr/share/bug',
  'usr/share/bash-completion',
  'usr/share/gdb',
  'usr/include',
  // iconv modules: nothing in these images converts charsets through glibc
  'usr/lib/x86_64-linux-gnu/gconv',
];

export const debKeep: PathFilter = (p) => !DEB_DROP.some((d) => p === d || p.startsWith(`${d}/`));

function only(paths: string[]): PathFilter {
  return (p) => paths.some((k) => p === k || k.startsWith(`${p}/`) || p.startsWith(`${k}/`));
}

async function addDebs(
  env: BuildEnv,
  fs: Rootfs,
  names: string[],
  keep: PathFilter = debKeep,
): Promise<void> {
  for (const n of names) {
    fs.addTree(await env.debs.unpacked(n), '', (p) => debKeep(p) && keep(p));
  }
}

/** /etc/passwd and /etc/group with root and the given users, /tmp, /root. */
function baseFiles(fs: Rootfs, users: { name: string; id: number }[]): void {
  const passwd = ['root:x:0:0:root:/root:/usr/sbin/nologin'];
  const group = ['root:x:0:'];
  for (const u of users) {
    passwd.push(`${u.name}:x:${u.id}:${u.id}::/nonexistent:/usr/sbin/nologin`);
    group.push(`${u.name}:x:${u.id}:`);
  }
  fs.file('etc/passwd', `${passwd.join('\n')}\n`);
  fs.file('etc/group', `${group.join('\n')}\n`);
  fs.dir('tmp', 0o1777);
  fs.dir('root', 0o700);
}

/** Files under image/ and the pins: every recipe depends on them. */
function imageSources(env: BuildEnv): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', 'image'], {
    cwd: env.repo,
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(env.repo, f)))
    .map((f) => join(env.repo, f));
}

function packageVersion(repo: string): string {
  return (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The labels, user, entrypoint and wrappers of the Dockerfile's runtime stage (checked against it). */
export const PRODUCT_LABELS: Record<string, string> = {
  'org.opencontainers.image.title': 'kube-l2tp',
  'org.opencontainers.image.description':
    'L2TPv3 ethernet pseudowires for Kubernetes: operator, node agent and CNI plugin',
  'org.opencontainers.image.licenses': 'Apache-2.0',
  'org.opencontainers.image.source': 'https://github.com/kube-l2tp/kube-l2tp',
};

export const PRODUCT_WRAPPERS: Record<string, string> = {
  'usr/local/bin/kube-l2tp-operator': '#!/bin/sh\nexec node /app/dist/operator/main.js "$@"\n',
  'usr/local/bin/kube-l2tp-datapath': '#!/bin/sh\nexec node /app/dist/datapath/main.js "$@"\n',
};

const product: Recipe = {
  id: 'kube-l2tp',
  name: (env) => `kube-l2tp.local/kube-l2tp:${env.tag ?? packageVersion(env.repo)}`,
  inputs(env) {
    // the whole context the dry build reads (the key changes with any source)
    if (env.from !== 'worktree') return [`commit ${env.from.commit}`, ...imageSources(env)];
    const args = ['ls-files', '--cached', '--others', '--exclude-standard'];
    return execFileSync('git', args, { cwd: env.repo, encoding: 'utf8', maxBuffer: 64 << 20 })
      .split('\n')
      .filter((f) => f !== '' && existsSync(join(env.repo, f)))
      .map((f) => join(env.repo, f));
  },
  async assemble(env, work) {
    const fs = new Rootfs();
    const dockerfile = readFileSync(join(env.repo, 'Dockerfile'), 'utf8');
    const nodeVersion = dockerfileNodeVersion(dockerfile);
    // glibc and the C++ runtime for node, dash for the wrappers' #!/bin/sh, `ip` and `tc` (to look at
    // a node's devices and filters from the pod; the agent itself speaks netlink) and their libraries
    await addDebs(env, fs, ['libc6', 'libgcc-s1', 'libstdc++6', 'dash', 'zlib1g']);
    await addDebs(env, fs, ['libbpf1', 'libelf1', 'libmnl0', 'libbsd0', 'libcap2', 'libmd0', 'libxtables12']);
    await addDebs(env, fs, ['iproute2'], only(['bin/ip', 'sbin/ip', 'sbin/tc', 'etc/iproute2']));
    if (!fs.has('bin/sh')) fs.symlink('bin/sh', 'dash');
    baseFiles(fs, [{ name: 'nonroot', id: NONROOT }]);
    const node = await nodeDist(join(env.cache, 'node'), nodeVersion, env.log);
    fs.copy('usr/local/bin/node', join(node, 'bin/node'), 0o755);
    let app = env.appTree;
    if (app === undefined) {
      app = join(work, 'app');
      env.log.info({ from: env.from }, 'dry build of the Dockerfile (its build stage assembles /app)');
      const args = [
        'scripts/dockerfile-dry-build.sh',
        '--out',
        app,
        ...(env.from === 'worktree' ? ['--worktree'] : ['--commit', env.from.commit]),
      ];
      const r = await runCapture('bash', args, { env: { ...process.env } });
      if (r.code !== 0) throw new Error(`scripts/dockerfile-dry-build.sh failed:\n${r.stderr.slice(-4000)}`);
      env.log.info(r.stdout.trim().split('\n').pop() ?? '');
    }
    fs.addTree(app, 'app');
    for (const [p, body] of Object.entries(PRODUCT_WRAPPERS)) fs.file(p, body, 0o755);
    return {
      rootfs: fs,
      config: {
        User: `${NONROOT}:${NONROOT}`,
        Env: [PATH_ENV, `NODE_VERSION=${nodeVersion}`, 'NODE_ENV=production'],
        Entrypoint: ['kube-l2tp-operator'],
        WorkingDir: '/app',
        Labels: PRODUCT_LABELS,
      },
    };
  },
};

const pause: Recipe = {
  id: 'pause',
  datedBy: ['image'],
  name: () => 'kube-l2tp.local/pause:1.0',
  inputs: (env) => imageSources(env),
  async assemble(env, work) {
    const bin = join(work, 'pause');
    const src = join(env.repo, 'image/pause/pause.c');
    const r = await runCapture('cc', [
      '-Os',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-std=c11',
      '-static',
      '-s',
      '-o',
      bin,
      src,
    ]);
    if (r.code !== 0) throw new Error(`compiling ${src}: ${r.stderr}`);
    const fs = new Rootfs();
    fs.copy('pause', bin, 0o755);
    return { rootfs: fs, config: { User: '65535:65535', Entrypoint: ['/pause'] } };
  },
};

/** busybox's applets as links to /bin/busybox (what busybox --install would make). */
async function busyboxLinks(fs: Rootfs, busybox: string): Promise<void> {
  const r = await runCapture(busybox, ['--list-full']);
  if (r.code !== 0) throw new Error(`${busybox} --list-full: ${r.stderr}`);
  for (const p of r.stdout.split('\n').filter((l) => l !== '')) {
    if (p === 'bin/busybox' || fs.has(p)) continue;
    fs.symlink(p, '/bin/busybox');
  }
}

const tools: Recipe = {
  id: 'tools',
  datedBy: ['image'],
  name: () => 'kube-l2tp.local/tools:1.0',
  inputs: (env) => imageSources(env),
  async assemble(env) {
    const fs = new Rootfs();
    await addDebs(env, fs, ['busybox-static', 'libc6', 'iperf3', 'libiperf0', 'libssl3', 'libsctp1']);
    // libssl3 brings engines and providers iperf3 does not load
    await busyboxLinks(fs, join(await env.debs.unpacked('busybox-static'), 'bin/busybox'));
    baseFiles(fs, []);
    return { rootfs: fs, config: { Env: [PATH_ENV], Cmd: ['sh'] } };
  },
};

/** The thin plugin binaries from scripts/build-go-tools.sh multus, and optional extras it may build. */
const MULTUS_BINS: { from: string; to: string[]; required: boolean }[] = [
  { from: 'multus', to: ['usr/src/multus-cni/bin/multus'], required: true },
  {
    from: 'multus-thin-entrypoint',
    to: ['usr/src/multus-cni/bin/thin_entrypoint', 'thin_entrypoint'],
    required: true,
  },
  {
    from: 'multus-install',
    to: ['usr/src/multus-cni/bin/install_multus', 'install_multus'],
    required: false,
  },
  { from: 'multus-passthru', to: ['usr/src/multus-cni/bin/passthru'], required: false },
];

function multusVersion(bin: string): string {
  const f = join(bin, '.multus.version');
  if (!existsSync(f)) {
    throw new Error(`no Multus in ${bin}: build it first with scripts/build-go-tools.sh multus`);
  }
  return readFileSync(f, 'utf8').trim();
}

const multus: Recipe = {
  id: 'multus',
  datedBy: ['image', 'scripts/build-go-tools.sh'],
  name: (env) => `kube-l2tp.local/multus:v${multusVersion(join(env.cache, 'bin'))}`,
  inputs(env) {
    const bin = join(env.cache, 'bin');
    return [
      ...imageSources(env),
      ...MULTUS_BINS.map((b) => join(bin, b.from)).filter((f) => existsSync(f)),
      join(bin, '.multus.version'),
    ];
  },
  async assemble(env) {
    const bin = join(env.cache, 'bin');
    multusVersion(bin);
    const fs = new Rootfs();
    for (const b of MULTUS_BINS) {
      const f = join(bin, b.from);
      if (!existsSync(f)) {
        if (b.required) throw new Error(`${f} is missing: scripts/build-go-tools.sh multus builds it`);
        continue;
      }
      for (const to of b.to) fs.copy(to, f, 0o755);
    }
    // a shell and cp for install init containers written as `cp /usr/src/multus-cni/bin/multus ...`
    await addDebs(env, fs, ['busybox-static']);
    for (const a of ['sh', 'cp', 'mkdir', 'ls', 'cat', 'sleep']) fs.symlink(`bin/${a}`, 'busybox');
    baseFiles(fs, []);
    return { rootfs: fs, config: { Env: [PATH_ENV], Entrypoint: ['/thin_entrypoint'], WorkingDir: '/' } };
  },
};

export const RECIPES: Record<string, Recipe> = { 'kube-l2tp': product, pause, tools, multus };
