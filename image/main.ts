#!/usr/bin/env node
// Builds the project's OCI image archives without a Docker engine or a registry:
//   node dist/image/main.js build <kube-l2tp|pause|tools|multus|all ...> [--out DIR] [--tag TAG]
//        [--from worktree|head|COMMIT] [--app-tree DIR] [--no-cache]
//     prints one line per image on stdout: NAME DIGEST ARCHIVE SIZE; progress goes to stderr
//   node dist/image/main.js pins [--refresh]      the pinned Debian packages (refresh: today's versions)
//   node dist/image/main.js check-dockerfile --archive A --app-tree DIR [--dockerfile F]
//   node dist/image/main.js check-bases [--dockerfile F]   every FROM pinned by digest, one line per base
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { Logger } from '../lib/log.js';
import { DebianPackages, parsePins, refreshPins } from './debs.js';
import { baseImageProblems, baseImages, checkAgainstDockerfile } from './dockerfile-check.js';
import { missingLibraries } from './elf.js';
import { writeImage, type BuiltImage } from './oci.js';
import { RECIPES, type BuildEnv } from './recipes.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PINS = 'image/debian-packages.txt';
/** Superseded archives stay this long (runs started earlier may still import them). */
const KEEP_OLD_ARCHIVES_MS = 24 * 3600_000;

export function cacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache');
  return process.env.KUBE_L2TP_CACHE ?? join(xdg, 'kube-l2tp');
}

/** Progress lines for people: "[image +1.2s] message key=value" from pino's JSON lines. */
function progressLogger(): Logger {
  const start = Date.now();
  const dest = {
    write(line: string): void {
      const o = JSON.parse(line) as Record<string, unknown>;
      const { msg, level: _l, time: _t, pid: _p, hostname: _h, name: _n, ...rest } = o;
      const extra = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const t = ((Date.now() - start) / 1000).toFixed(1);
      process.stderr.write(`[image +${t}s] ${String(msg ?? '')}${extra ? ` ${extra}` : ''}\n`);
    },
  };
  return pino({ level: process.env.LOG_LEVEL ?? 'info', base: {} }, dest);
}

/**
 * SOURCE_DATE_EPOCH, or the time of the commit the image is built from (HEAD for the working tree);
 * with paths, of the last commit that changed them, so an image whose sources did not change keeps
 * its digest (and its cached archive) across commits.
 */
export function sourceDateEpoch(rev: string, paths: readonly string[] = []): number {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') return Number(env);
  const git = (args: string[]): string => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
  const t = paths.length > 0 ? git(['log', '-1', '--format=%ct', rev, '--', ...paths]) : '';
  return Number(t !== '' ? t : git(['log', '-1', '--format=%ct', rev]));
}

/** --from: the working tree, or a commit resolved once (HEAD may move while images build). */
function resolveFrom(from: string): BuildEnv['from'] {
  if (from === 'worktree') return 'worktree';
  const rev = from === 'head' ? 'HEAD' : from;
  return {
    commit: execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], {
      cwd: repo,
      encoding: 'utf8',
    }).trim(),
  };
}

function human(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** The cache key of an image: its recipe, name, timestamp and the content of every input. */
function inputKey(parts: string[], inputs: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p}\0`);
  for (const i of inputs) {
    if (i.startsWith('/'))
      h.update(`${i.slice(repo.length)}\0${createHash('sha256').update(readFileSync(i)).digest('hex')}\0`);
    else h.update(`${i}\0`);
  }
  return h.digest('hex').slice(0, 20);
}

async function build(
  ids: string[],
  opts: { out: string; tag?: string; from: BuildEnv['from']; appTree?: string; cache: boolean },
  log: Logger,
): Promise<BuiltImage[]> {
  const cache = cacheDir();
  const pinsFile = join(repo, PINS);
  const debs = new DebianPackages(
    join(cache, 'debs'),
    parsePins(readFileSync(pinsFile, 'utf8')),
    PINS,
    log.child({ part: 'debs' }),
  );
  const rev = opts.from === 'worktree' ? 'HEAD' : opts.from.commit;
  const fromText = opts.from === 'worktree' ? 'worktree' : opts.from.commit;
  const env: BuildEnv = {
    repo,
    cache,
    from: opts.from,
    debs,
    log,
    ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
    ...(opts.appTree !== undefined ? { appTree: resolve(opts.appTree) } : {}),
  };
  mkdirSync(opts.out, { recursive: true });
  const built: BuiltImage[] = [];
  for (const id of ids) {
    const recipe = RECIPES[id];
    if (recipe === undefined)
      throw new Error(`unknown image ${id} (known: ${Object.keys(RECIPES).join(', ')})`);
    const ilog = log.child({ image: id });
    const name = recipe.name(env);
    const epoch = sourceDateEpoch(rev, recipe.datedBy);
    const key = inputKey([id, name, String(epoch), fromText, env.appTree ?? ''], recipe.inputs(env));
    const archive = join(opts.out, `${id}-${key}.oci.tar`);
    const meta = `${archive}.json`;
    if (opts.cache && env.appTree === undefined && existsSync(archive) && existsSync(meta)) {
      const b = JSON.parse(readFileSync(meta, 'utf8')) as BuiltImage;
      ilog.info({ digest: b.digest }, `${name}: unchanged inputs, cached archive`);
      built.push(b);
      continue;
    }
    const t0 = Date.now();
    ilog.info({ epoch, from: fromText }, `${name}: assembling`);
    const work = mkdtempSync(join(tmpdir(), `kli-image-${id}-`));
    try {
      const { rootfs, config } = await recipe.assemble(env, work);
      const missing = missingLibraries(rootfs.entries());
      if (missing.length > 0) {
        throw new Error(
          `${name}: programs need libraries that no package in the image provides (add the Debian ` +
            `package to image/recipes.ts and to ${PINS}):\n  ${missing.join('\n  ')}`,
        );
      }
      ilog.info({ entries: rootfs.entries().length }, `${name}: writing the layer and the archive`);
      const tmpArchive = `${archive}.tmp-${process.pid}`;
      const b = await writeImage(rootfs.entries(), { name, config, epoch }, tmpArchive);
      renameSync(tmpArchive, archive);
      const result = { ...b, archive };
      writeFileSync(meta, `${JSON.stringify(result, null, 2)}\n`);
      // older archives of the same image go once a day has passed: a test run or a lab started
      // earlier may still be importing the one it listed, while the cache must not grow for ever
      for (const f of readdirSync(opts.out)) {
        if (
          f.startsWith(`${id}-`) &&
          !f.startsWith(`${id}-${key}`) &&
          /^[a-z0-9-]+-[0-9a-f]{20}\.oci\.tar(\.json)?$/.test(f) &&
          Date.now() - statSync(join(opts.out, f)).mtimeMs > KEEP_OLD_ARCHIVES_MS
        ) {
          rmSync(join(opts.out, f), { force: true });
        }
      }
      ilog.info(
        { seconds: ((Date.now() - t0) / 1000).toFixed(1), uncompressed: human(b.uncompressedSize) },
        `${name}: built ${human(b.archiveSize)}`,
      );
      built.push(result);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return built;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const log = progressLogger();
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      tag: { type: 'string' },
      from: { type: 'string', default: 'worktree' },
      'app-tree': { type: 'string' },
      'no-cache': { type: 'boolean', default: false },
      refresh: { type: 'boolean', default: false },
      archive: { type: 'string' },
      dockerfile: { type: 'string', default: join(repo, 'Dockerfile') },
    },
  });
  switch (cmd) {
    case 'build': {
      const ids =
        positionals.length === 0 || positionals.includes('all') ? Object.keys(RECIPES) : positionals;
      const built = await build(
        ids,
        {
          out: resolve(values.out ?? join(cacheDir(), 'images')),
          from: resolveFrom(values.from),
          cache: !values['no-cache'],
          ...(values.tag !== undefined ? { tag: values.tag } : {}),
          ...(values['app-tree'] !== undefined ? { appTree: values['app-tree'] } : {}),
        },
        log,
      );
      for (const b of built) {
        process.stdout.write(
          `${b.name} ${b.digest} ${b.archive} ${human(b.archiveSize)} (uncompressed ${human(b.uncompressedSize)})\n`,
        );
      }
      return 0;
    }
    case 'pins': {
      const file = join(repo, PINS);
      if (values.refresh) await refreshPins(file, log);
      process.stdout.write(readFileSync(file, 'utf8'));
      return 0;
    }
    case 'check-dockerfile': {
      if (values.archive === undefined || values['app-tree'] === undefined) {
        throw new Error('usage: check-dockerfile --archive ARCHIVE --app-tree DIR [--dockerfile FILE]');
      }
      const problems = checkAgainstDockerfile(
        readFileSync(values.dockerfile, 'utf8'),
        values.archive,
        values['app-tree'],
      );
      for (const p of problems) process.stderr.write(`image differs from ${values.dockerfile}: ${p}\n`);
      if (problems.length === 0)
        process.stdout.write(
          `the image and ${values.dockerfile} agree: /app files, entrypoint, user, env, workdir, labels, wrappers\n`,
        );
      return problems.length === 0 ? 0 : 1;
    }
    case 'check-bases': {
      const text = readFileSync(values.dockerfile, 'utf8');
      const problems = baseImageProblems(text);
      for (const p of problems) process.stderr.write(`${values.dockerfile}: ${p}\n`);
      for (const b of baseImages(text)) process.stdout.write(`${b.image}\n`);
      return problems.length === 0 ? 0 : 1;
    }
    default:
      process.stderr.write(
        'usage: main.js build <kube-l2tp|pause|tools|multus|all ...> [--out DIR] [--tag TAG] [--from worktree|head|COMMIT] | pins [--refresh] | check-dockerfile --archive A --app-tree DIR | check-bases [--dockerfile F]\n',
      );
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`[image] ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
