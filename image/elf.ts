// The shared libraries an ELF executable or library asks for (DT_NEEDED), so that a build fails when
// an image holds a program whose libraries no package in it provides, instead of the program failing
// in a pod. 64-bit little-endian only (the images are amd64).
import { readFileSync } from 'node:fs';
import type { Entry } from './oci.js';

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const DT_NEEDED = 1;
const DT_STRTAB = 5;

/** DT_NEEDED names of an ELF file; [] for a static executable; undefined when it is not ELF64 LE. */
export function neededLibraries(buf: Buffer): string[] | undefined {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return undefined;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let dyn: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 56 > buf.length) return undefined;
    const type = buf.readUInt32LE(p);
    const offset = Number(buf.readBigUInt64LE(p + 8));
    const vaddr = Number(buf.readBigUInt64LE(p + 16));
    const filesz = Number(buf.readBigUInt64LE(p + 32));
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    if (type === PT_DYNAMIC) dyn = { offset, size: filesz };
  }
  if (dyn === undefined) return [];
  const needed: number[] = [];
  let strtab: number | undefined;
  for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size && o + 16 <= buf.length; o += 16) {
    const tag = Number(buf.readBigInt64LE(o));
    const val = Number(buf.readBigUInt64LE(o + 8));
    if (tag === 0) break;
    if (tag === DT_NEEDED) needed.push(val);
    if (tag === DT_STRTAB) strtab = val;
  }
  if (needed.length === 0) return [];
  const seg = loads.find((l) => strtab !== undefined && strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
  if (seg === undefined || strtab === undefined) return undefined;
  const base = strtab - seg.vaddr + seg.offset;
  return needed.map((n) => {
    const start = base + n;
    const end = buf.indexOf(0, start);
    return buf.toString('latin1', start, end);
  });
}

/** Where the dynamic loader looks without a configured cache (the images have no ld.so.cache). */
export const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'lib', 'usr/lib'];

/**
 * Programs and libraries of a root filesystem whose DT_NEEDED libraries are not in it:
 * "path: libfoo.so.1" per missing library.
 */
export function missingLibraries(entries: readonly Entry[]): string[] {
  const paths = new Set(entries.map((e) => e.path));
  const problems: string[] = [];
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const isLib = /\.so(\.\d+)*$|\.node$/.test(e.path);
    if ((e.mode & 0o111) === 0 && !isLib) continue;
    const buf = 'data' in e ? e.data : readFileSync(e.source);
    for (const lib of neededLibraries(buf) ?? []) {
      if (!LIBRARY_DIRS.some((d) => paths.has(`${d}/${lib}`))) problems.push(`/${e.path}: ${lib}`);
    }
  }
  return problems;
}
