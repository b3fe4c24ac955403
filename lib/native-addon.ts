// Loads one of lib/'s N-API addons (lib/<dir>/native, built by scripts/build-native.sh at install):
// from an override variable, beside the sources, or, from dist/, in the source tree next to it. The
// datapath's addons are found from the package root.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const loaded = new Map<string, unknown>();

/**
 * The addon `file` of lib/`dir` (e.g. 'netlink', 'netlink_socket.node'), or the path in the
 * environment variable `envVar`. Throws, naming every place looked in, when it is not built.
 */
export function loadLibAddon<T>(dir: string, file: string, envVar: string): T {
  const key = `${dir}/${file}`;
  const hit = loaded.get(key);
  if (hit) return hit as T;
  const here = dirname(fileURLToPath(import.meta.url));
  const rel = join(dir, 'native', 'build', 'Release', file);
  const candidates = [process.env[envVar], join(here, rel), resolve(here, '..', '..', 'lib', rel)].filter(
    (p): p is string => p !== undefined && p !== '',
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `${dir} addon not built (looked in ${candidates.join(', ')}): run scripts/build-native.sh`,
    );
  }
  const addon = createRequire(import.meta.url)(found) as T;
  loaded.set(key, addon);
  return addon;
}

/** The package root: the nearest ancestor of this file holding package.json (works from dist/ too). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('kube-l2tp package root not found');
    dir = up;
  }
  return dir;
}
