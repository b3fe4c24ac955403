// A root filesystem being assembled for one image layer: trees copied from disk (an extracted Debian
// package, the app tree), single files and links. Later additions replace earlier ones at the same
// path; missing parent directories are added (0755). Owners are always root: the layer writer fixes them.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { normalizePath, type Entry } from './oci.js';

export type PathFilter = (path: string) => boolean;

export class Rootfs {
  private readonly byPath = new Map<string, Entry>();

  add(e: Entry): this {
    const path = normalizePath(e.path);
    this.byPath.set(path, { ...e, path } as Entry);
    return this;
  }

  dir(path: string, mode = 0o755): this {
    return this.add({ path, type: 'dir', mode });
  }

  file(path: string, data: Buffer | string, mode = 0o644): this {
    return this.add({ path, type: 'file', mode, data: Buffer.from(data) });
  }

  symlink(path: string, target: string): this {
    return this.add({ path, type: 'symlink', target });
  }

  /** A file copied from disk at write time (its mode unless one is given). */
  copy(path: string, source: string, mode?: number): this {
    const st = lstatSync(source);
    if (!st.isFile()) throw new Error(`${source} is not a regular file`);
    return this.add({ path, type: 'file', mode: mode ?? st.mode & 0o7777, source, size: st.size });
  }

  has(path: string): boolean {
    return this.byPath.has(normalizePath(path));
  }

  /**
   * Copies a directory tree from disk under dest ('' for the root). keep(path) sees the path inside
   * the image (without a leading slash) and drops a directory with everything in it.
   */
  addTree(diskDir: string, dest = '', keep: PathFilter = () => true): this {
    const walk = (disk: string, rel: string): void => {
      for (const name of readdirSync(disk).sort()) {
        const d = join(disk, name);
        const r = rel === '' ? name : `${rel}/${name}`;
        if (!keep(r)) continue;
        const st = lstatSync(d);
        if (st.isSymbolicLink()) this.symlink(r, readlinkSync(d));
        else if (st.isDirectory()) {
          this.dir(r, st.mode & 0o7777);
          walk(d, r);
        } else if (st.isFile()) {
          this.add({ path: r, type: 'file', mode: st.mode & 0o7777, source: d, size: st.size });
        } else throw new Error(`${d}: only files, directories and symlinks go into an image`);
      }
    };
    const base = dest === '' ? '' : normalizePath(dest);
    if (base !== '') this.dir(base, lstatSync(diskDir).mode & 0o7777);
    walk(diskDir, base);
    return this;
  }

  /** The entries with every parent directory present. */
  entries(): Entry[] {
    const out = new Map(this.byPath);
    for (const path of this.byPath.keys()) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const p = parts.slice(0, i).join('/');
        const existing = out.get(p);
        if (existing === undefined) out.set(p, { path: p, type: 'dir', mode: 0o755 });
        else if (existing.type !== 'dir') {
          throw new Error(`${path}: its parent ${p} is a ${existing.type}, not a directory`);
        }
      }
    }
    return [...out.values()];
  }

  /** Sorted paths (files, links and directories), for comparisons. */
  paths(): string[] {
    return this.entries()
      .map((e) => e.path)
      .sort();
  }
}
