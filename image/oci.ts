// A deterministic OCI image-layout writer: a root filesystem (a list of entries) becomes one gzipped
// tar layer, a config, a manifest, index.json and oci-layout, packed as one tar archive that
// `ctr images import` reads. The same entries, metadata and timestamp give the same bytes: entries are
// sorted, every header has the same mtime, owner and names, and gzip carries no timestamp or file name.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createGzip } from 'node:zlib';

/** One filesystem entry of a layer. Paths are relative to the root, without a leading slash. */
export type Entry =
  | { path: string; type: 'dir'; mode: number }
  | { path: string; type: 'file'; mode: number; data: Buffer }
  | { path: string; type: 'file'; mode: number; source: string; size: number }
  | { path: string; type: 'symlink'; target: string };

export interface TarOptions {
  /** Seconds since the epoch, the same for every entry (SOURCE_DATE_EPOCH). */
  mtime: number;
}

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

export function normalizePath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.some((s) => s === '..')) throw new Error(`path leaves the root: ${p}`);
  if (parts.length === 0) throw new Error(`empty path: ${p}`);
  return parts.join('/');
}

/** Byte-wise order (not locale order), so the result does not depend on the machine's settings. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function sortEntries(entries: readonly Entry[]): Entry[] {
  const seen = new Set<string>();
  const out = entries.map((e) => ({ ...e, path: normalizePath(e.path) }) as Entry);
  for (const e of out) {
    if (seen.has(e.path)) throw new Error(`duplicate entry ${e.path}`);
    seen.add(e.path);
  }
  return out.sort((a, b) => compareBytes(a.path, b.path));
}

function octal(value: number, width: number): string {
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`value ${value} does not fit a ${width}-byte tar field`);
  return s.padStart(width - 1, '0') + '\0';
}

/** A PAX extended-header record: "LEN key=value\n" where LEN counts the whole record. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return `${len}${body}`;
}

interface Header {
  name: string;
  mode: number;
  size: number;
  type: string;
  linkname?: string;
  prefix?: string;
}

function header(h: Header, mtime: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode & 0o7777, 8), 100, 'ascii');
  b.write(octal(0, 8), 108, 'ascii'); // uid
  b.write(octal(0, 8), 116, 'ascii'); // gid
  b.write(octal(h.size, 12), 124, 'ascii');
  b.write(octal(mtime, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii'); // checksum placeholder: spaces while summing
  b.write(h.type, 156, 'ascii');
  if (h.linkname !== undefined) b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write('root', 265, 'ascii');
  b.write('root', 297, 'ascii');
  b.write(octal(0, 8), 329, 'ascii');
  b.write(octal(0, 8), 337, 'ascii');
  if (h.prefix !== undefined) b.write(h.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 7) + ' ', 148, 'ascii');
  return b;
}

/** Splits a path into ustar's prefix (155 bytes) and name (100 bytes), or undefined when it cannot. */
function ustarSplit(path: string): { name: string; prefix?: string } | undefined {
  if (Buffer.byteLength(path) <= 100) return { name: path };
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') {
      return { name, prefix };
    }
  }
  return undefined;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/** The headers (and PAX header when a path or link target is too long) of one entry. */
function entryHeaders(e: Entry, size: number, mtime: number): Buffer[] {
  const path = e.type === 'dir' ? `${e.path}/` : e.path;
  const type = e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0';
  const mode = e.type === 'symlink' ? 0o777 : e.mode;
  const linkname = e.type === 'symlink' ? e.target : undefined;
  const split = ustarSplit(path);
  const longLink = linkname !== undefined && Buffer.byteLength(linkname) > 100;
  const out: Buffer[] = [];
  if (split === undefined || longLink) {
    let pax = '';
    if (split === undefined) pax += paxRecord('path', path);
    if (longLink) pax += paxRecord('linkpath', linkname);
    const data = Buffer.from(pax);
    const paxName = `PaxHeaders/${path.slice(-80)}`.slice(0, 99);
    out.push(
      header({ name: paxName, mode: 0o644, size: data.length, type: 'x' }, mtime),
      data,
      padding(data.length),
    );
  }
  const h: Header = {
    name: split?.name ?? path.slice(0, 100),
    mode,
    size,
    type,
    ...(split?.prefix !== undefined ? { prefix: split.prefix } : {}),
    ...(linkname !== undefined ? { linkname: linkname.slice(0, 100) } : {}),
  };
  out.push(header(h, mtime));
  return out;
}

/** The tar stream of entries, sorted, as chunks. Files with a source are read one at a time. */
export async function* tarChunks(entries: readonly Entry[], opts: TarOptions): AsyncGenerator<Buffer> {
  for (const e of sortEntries(entries)) {
    if (e.type !== 'file') {
      yield* entryHeaders(e, 0, opts.mtime);
      continue;
    }
    if ('data' in e) {
      yield* entryHeaders(e, e.data.length, opts.mtime);
      yield e.data;
      yield padding(e.data.length);
      continue;
    }
    const size = statSync(e.source).size;
    if (size !== e.size) throw new Error(`${e.source} changed size while the layer was written`);
    yield* entryHeaders(e, size, opts.mtime);
    let n = 0;
    for await (const chunk of createReadStream(e.source)) {
      n += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (n !== size) throw new Error(`${e.source} changed while the layer was written`);
    yield padding(size);
  }
  yield ZERO_BLOCK;
  yield ZERO_BLOCK;
}

/** The whole tar in memory (tests and small archives). */
export async function tarBuffer(entries: readonly Entry[], opts: TarOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of tarChunks(entries, opts)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Counts and hashes what passes through. */
class Digester extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** Writes entries as a gzipped tar layer to file; returns its descriptor and the uncompressed digest. */
export async function writeLayer(
  entries: readonly Entry[],
  file: string,
  opts: TarOptions,
): Promise<{ descriptor: Descriptor; diffId: string; uncompressedSize: number }> {
  const raw = new Digester();
  const packed = new Digester();
  // createGzip writes mtime 0 and no file name; a fixed level keeps the bytes stable
  await pipeline(
    Readable.from(tarChunks(entries, opts)),
    raw,
    createGzip({ level: zc.Z_BEST_COMPRESSION }),
    packed,
    createWriteStream(file),
  );
  return {
    descriptor: { mediaType: MEDIA.layerGzip, digest: packed.digest(), size: packed.size },
    diffId: raw.digest(),
    uncompressedSize: raw.size,
  };
}

/** The runtime settings of an image config (the subset of the OCI image spec's `config`). */
export interface RunConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

export interface ImageMeta {
  /** Fully qualified reference with a tag, e.g. kube-l2tp.local/pause:1.0. */
  name: string;
  config: RunConfig;
  /** SOURCE_DATE_EPOCH: every timestamp of the image. */
  epoch: number;
  architecture?: string;
  os?: string;
}

export interface BuiltImage {
  name: string;
  /** The manifest digest: what `ctr images ls` shows. */
  digest: string;
  configDigest: string;
  archive: string;
  archiveSize: number;
  layerSize: number;
  uncompressedSize: number;
}

/**
 * Whether a reference names its registry: containerd would otherwise not match it with kubelet's
 * normalized docker.io/... name. Returns the tag.
 */
export function parseReference(name: string): { repository: string; tag: string } {
  const m =
    /^([a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::[0-9]+)?)\/([a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*):([\w][\w.-]{0,127})$/.exec(
      name,
    );
  const host = m?.[1];
  if (
    m === null ||
    host === undefined ||
    !(host.includes('.') || host.includes(':') || host === 'localhost')
  ) {
    throw new Error(`image name ${name} is not fully qualified (registry.host/path:tag)`);
  }
  return { repository: `${host}/${m[2]}`, tag: m[3]! };
}

/** Canonical JSON of a value built with a fixed key order (JSON.stringify keeps insertion order). */
function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

/** Builds the image config, manifest and index for one layer. Pure. */
export function imageDocuments(
  meta: ImageMeta,
  layer: { descriptor: Descriptor; diffId: string },
): { config: Buffer; manifest: Buffer; index: Buffer; manifestDescriptor: Descriptor } {
  const { tag } = parseReference(meta.name);
  const created = new Date(meta.epoch * 1000).toISOString();
  const c = meta.config;
  const runConfig: RunConfig = {};
  if (c.User !== undefined) runConfig.User = c.User;
  if (c.Env !== undefined) runConfig.Env = [...c.Env];
  if (c.Entrypoint !== undefined) runConfig.Entrypoint = [...c.Entrypoint];
  if (c.Cmd !== undefined) runConfig.Cmd = [...c.Cmd];
  if (c.WorkingDir !== undefined) runConfig.WorkingDir = c.WorkingDir;
  if (c.Labels !== undefined) {
    runConfig.Labels = Object.fromEntries(
      Object.keys(c.Labels)
        .sort(compareBytes)
        .map((k) => [k, c.Labels![k]!]),
    );
  }
  const architecture = meta.architecture ?? 'amd64';
  const os = meta.os ?? 'linux';
  const config = json({
    created,
    architecture,
    os,
    config: runConfig,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: 'kube-l2tp image/oci.ts' }],
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: sha256(config), size: config.length },
    layers: [layer.descriptor],
  });
  const manifestDescriptor: Descriptor = {
    mediaType: MEDIA.manifest,
    digest: sha256(manifest),
    size: manifest.length,
  };
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [
      {
        ...manifestDescriptor,
        platform: { architecture, os },
        annotations: { 'io.containerd.image.name': meta.name, 'org.opencontainers.image.ref.name': tag },
      },
    ],
  });
  return { config, manifest, index, manifestDescriptor };
}

function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** Writes the image (one layer of entries) as an OCI layout tar archive at `archive`. */
export async function writeImage(
  entries: readonly Entry[],
  meta: ImageMeta,
  archive: string,
): Promise<BuiltImage> {
  parseReference(meta.name);
  const tmp = mkdtempSync(join(tmpdir(), 'kli-oci-'));
  try {
    const layerFile = join(tmp, 'layer');
    const layer = await writeLayer(entries, layerFile, { mtime: meta.epoch });
    const docs = imageDocuments(meta, layer);
    const layout: Entry[] = [
      { path: 'oci-layout', type: 'file', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
      { path: 'index.json', type: 'file', mode: 0o644, data: docs.index },
      { path: 'blobs', type: 'dir', mode: 0o755 },
      { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
      { path: blobPath(sha256(docs.config)), type: 'file', mode: 0o644, data: docs.config },
      { path: blobPath(docs.manifestDescriptor.digest), type: 'file', mode: 0o644, data: docs.manifest },
      {
        path: blobPath(layer.descriptor.digest),
        type: 'file',
        mode: 0o644,
        source: layerFile,
        size: layer.descriptor.size,
      },
    ];
    const out = new Digester();
    await pipeline(Readable.from(tarChunks(layout, { mtime: meta.epoch })), out, createWriteStream(archive));
    return {
      name: meta.name,
      digest: docs.manifestDescriptor.digest,
      configDigest: sha256(docs.config),
      archive,
      archiveSize: out.size,
      layerSize: layer.descriptor.size,
      uncompressedSize: layer.uncompressedSize,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Reads an OCI layout tar written by writeImage (or any plain ustar/PAX tar): path -> content. */
export function readTar(
  buf: Buffer,
): Map<string, { type: string; mode: number; data: Buffer; linkname: string }> {
  const files = new Map<string, { type: string; mode: number; data: Buffer; linkname: string }>();
  let off = 0;
  let paxPath: string | undefined;
  let paxLink: string | undefined;
  const str = (b: Buffer): string => b.toString('utf8').replace(/\0.*$/s, '');
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.equals(ZERO_BLOCK)) break;
    const size = parseInt(str(h.subarray(124, 136)), 8);
    const type = str(h.subarray(156, 157)) || '0';
    const data = buf.subarray(off + BLOCK, off + BLOCK + size);
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      for (const m of data.toString('utf8').matchAll(/\d+ (path|linkpath)=([^\n]*)\n/g)) {
        if (m[1] === 'path') paxPath = m[2];
        else paxLink = m[2];
      }
      continue;
    }
    const prefix = str(h.subarray(345, 500));
    const name = paxPath ?? (prefix ? `${prefix}/${str(h.subarray(0, 100))}` : str(h.subarray(0, 100)));
    const linkname = paxLink ?? str(h.subarray(157, 257));
    paxPath = paxLink = undefined;
    files.set(name.replace(/\/$/, ''), {
      type,
      mode: parseInt(str(h.subarray(100, 108)), 8),
      data,
      linkname,
    });
  }
  return files;
}

/** Reads back an archive's config and layer (the check against the Dockerfile uses it). */
export function readImage(archive: string): {
  name: string;
  digest: string;
  config: { config: RunConfig; architecture: string; os: string };
  layer: Buffer;
} {
  const files = readTar(readFileSync(archive));
  const blob = (d: string): Buffer => {
    const f = files.get(blobPath(d));
    if (f === undefined) throw new Error(`${archive}: blob ${d} missing`);
    if (sha256(f.data) !== d) throw new Error(`${archive}: blob ${d} does not match its digest`);
    return f.data;
  };
  const index = JSON.parse(files.get('index.json')?.data.toString() ?? 'null') as {
    manifests: (Descriptor & { annotations?: Record<string, string> })[];
  } | null;
  const m = index?.manifests[0];
  if (m === undefined) throw new Error(`${archive}: no index.json manifest`);
  const manifest = JSON.parse(blob(m.digest).toString()) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(blob(manifest.config.digest).toString()) as {
    config: RunConfig;
    architecture: string;
    os: string;
  };
  const layers = manifest.layers.map((l) => blob(l.digest));
  if (layers.length !== 1) throw new Error(`${archive}: expected one layer, found ${layers.length}`);
  return {
    name: m.annotations?.['io.containerd.image.name'] ?? '',
    digest: m.digest,
    config,
    layer: layers[0]!,
  };
}
