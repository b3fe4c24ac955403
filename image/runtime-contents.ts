// What the product image must not hold: package managers and build tools. Nothing at run time calls
// them, and in a pod that runs as root on the host network they would be an intruder's toolbox (npm
// fetches and runs code; a compiler builds it). Checked against the image's file list.
import { gunzipSync } from 'node:zlib';
import { readImage, readTar } from './oci.js';

const PACKAGE_MANAGERS = [
  'npm',
  'npx',
  'corepack',
  'yarn',
  'yarnpkg',
  'pnpm',
  'pip',
  'pip3',
  'apt',
  'apt-get',
  'dpkg',
];
const BUILD_TOOLS = [
  'gcc',
  'g++',
  'cc',
  'c++',
  'cpp',
  'clang',
  'ld',
  'ld.bfd',
  'ld.gold',
  'as',
  'make',
  'cmake',
  'node-gyp',
  'tsc',
  'pkg-config',
  'python',
  'python3',
];
/** Directories whose presence means a toolchain or a package manager came along. */
const DIRS = ['usr/include', 'usr/lib/gcc', 'usr/local/include', 'usr/local/lib/node_modules', 'opt/yarn'];
// (@types packages are inert declarations some runtime dependencies list as their own dependencies)
const MODULES = ['npm', 'corepack', 'node-gyp', 'typescript', 'eslint', 'prettier', 'fast-check'];
// eBPF objects (*.bpf.o) are loaded into the kernel at run time, not linked
const SOURCES = /^(?!.*\.bpf\.o$).*\.(c|h|cc|cpp|o|a)$/;

/** Each path that breaks the rule, with why; empty when the list is clean. */
export function forbiddenInRuntime(paths: Iterable<string>): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const parts = p.split('/');
    const base = parts[parts.length - 1]!;
    const inBin = parts.length >= 2 && /^s?bin$/.test(parts[parts.length - 2]!);
    const modules = parts.lastIndexOf('node_modules');
    if (inBin && (PACKAGE_MANAGERS.includes(base) || /^python3(\.\d+)?$/.test(base))) {
      out.push(`${p}: a package manager or interpreter`);
    } else if (inBin && (BUILD_TOOLS.includes(base) || /^(gcc|clang|g\+\+|ld)-\d+/.test(base))) {
      out.push(`${p}: a build tool`);
    } else if (DIRS.some((d) => p === d || (p.startsWith(`${d}-`) && !p.slice(d.length).includes('/')))) {
      out.push(`${p}: a toolchain or package manager directory`);
    } else if (modules >= 0 && modules === parts.length - 2 && MODULES.includes(base)) {
      out.push(`${p}: a development package`);
    } else if (modules < 0 && SOURCES.test(base)) {
      out.push(`${p}: source or object code`);
    }
  }
  return out;
}

/** Every path in an image archive written by image/oci.ts (one layer). */
export function imagePaths(archive: string): string[] {
  return [...readTar(gunzipSync(readImage(archive).layer)).keys()];
}
