// Proves that the image built here and the Dockerfile's image hold the same thing: the runtime stage's
// user, entrypoint, env, workdir, labels and wrapper scripts against the OCI config and layer, and
// /app against the tree the Dockerfile's build stage assembles (scripts/dockerfile-dry-build.sh --out).
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readImage, readTar, type RunConfig } from './oci.js';

export interface RuntimeStage {
  user?: string;
  entrypoint?: string[];
  workdir?: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Files the stage writes with printf (the wrappers), path without the leading slash -> content. */
  written: Record<string, string>;
}

/** The defaults of the ARGs before the first FROM (the ones a FROM line may use). */
export function globalArgs(dockerfile: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of dockerfile.split('\n')) {
    if (/^FROM\s/i.test(line)) break;
    const m = /^ARG\s+([A-Za-z_]\w*)=(\S*)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

export interface BaseImage {
  /** The FROM line as written. */
  from: string;
  /** Its image with the global ARGs' defaults substituted. */
  image: string;
  /** The stage's name (AS ...), if any. */
  stage?: string;
}

/** Every FROM of a Dockerfile, the image resolved from the global ARGs' defaults. */
export function baseImages(dockerfile: string): BaseImage[] {
  const args = globalArgs(dockerfile);
  const out: BaseImage[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(line);
    if (!m) continue;
    const image = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a?: string, b?: string) => args[(a ?? b)!] ?? '');
    out.push({ from: line, image, ...(m[2] !== undefined ? { stage: m[2] } : {}) });
  }
  return out;
}

const DIGEST_RE = /^[^@\s]+:[^@:/\s]+@sha256:[0-9a-f]{64}$/;

/**
 * Every base image pinned as name:tag@sha256:digest (a tag alone names whatever was pushed last), and
 * the node image's tag naming the Dockerfile's NODE_VERSION (the daemon-less image takes that release).
 */
export function baseImageProblems(dockerfile: string): string[] {
  const problems: string[] = [];
  const stages = new Set<string>();
  const nodeVersion = globalArgs(dockerfile).NODE_VERSION;
  for (const b of baseImages(dockerfile)) {
    if (stages.has(b.image.toLowerCase())) continue; // FROM an earlier stage
    if (b.stage !== undefined) stages.add(b.stage.toLowerCase());
    if (!DIGEST_RE.test(b.image)) {
      const tag = b.image.split('@')[0];
      problems.push(
        `${b.from}: the base image ${b.image === '' ? '(empty)' : b.image} is not pinned by digest: write it as ` +
          `name:tag@sha256:<digest>, the digest from \`docker buildx imagetools inspect ${tag}\``,
      );
      continue;
    }
    const repo = b.image.split(':')[0]!;
    if ((repo === 'node' || repo.endsWith('/node')) && nodeVersion !== undefined) {
      const tag = b.image.split('@')[0]!.split(':')[1]!;
      if (!tag.startsWith(`${nodeVersion}-`) && tag !== nodeVersion) {
        problems.push(
          `${b.from}: the base image's tag ${tag} is not Node.js ${nodeVersion} (ARG NODE_VERSION): ` +
            `change both together, with the new tag's digest`,
        );
      }
    }
  }
  return problems;
}

/** The last stage of a Dockerfile, continuation lines joined. */
export function runtimeStage(dockerfile: string): RuntimeStage {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  const stages = joined.split(/^FROM /m);
  const last = stages[stages.length - 1] ?? '';
  const st: RuntimeStage = { env: {}, labels: {}, written: {} };
  // the node base images set NODE_VERSION: the image built here carries the same Node.js
  const nodeVersion = globalArgs(dockerfile).NODE_VERSION;
  const lastBase = baseImages(dockerfile).pop()?.image ?? '';
  if (nodeVersion !== undefined && /^(\S*\/)?node:/.test(lastBase)) st.env.NODE_VERSION = nodeVersion;
  const pairs = (s: string): [string, string][] =>
    [...s.matchAll(/([\w.-]+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/g)].map((m) => [
      m[1]!,
      (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1'),
    ]);
  for (const line of last.split('\n')) {
    const [instr, ...restParts] = line.trim().split(/\s+/);
    const rest = line
      .trim()
      .slice((instr ?? '').length)
      .trim();
    void restParts;
    switch (instr) {
      case 'USER':
        st.user = rest;
        break;
      case 'WORKDIR':
        st.workdir = rest;
        break;
      case 'ENTRYPOINT':
        st.entrypoint = JSON.parse(rest) as string[];
        break;
      case 'ENV':
        for (const [k, v] of pairs(rest)) st.env[k] = v;
        break;
      case 'LABEL':
        for (const [k, v] of pairs(rest)) st.labels[k] = v;
        break;
      case 'RUN':
        for (const m of rest.matchAll(/printf '([^']*)' > \/(\S+)/g)) {
          st.written[m[2]!] = m[1]!.replace(/\\n/g, '\n').replace(/%%/g, '%');
        }
        break;
      default:
        break;
    }
  }
  return st;
}

/** path -> "d" | "l TARGET" | "f MODE SHA256" of a tree on disk, relative to dir. */
export function describeTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(r, `l ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(r, 'd');
        walk(p, r);
      } else
        out.set(
          r,
          `f ${(st.mode & 0o111) !== 0 ? 'x' : '-'} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`,
        );
    }
  };
  walk(dir, '');
  return out;
}

/** The same description of a layer's entries under prefix/. */
export function describeLayer(layer: ReturnType<typeof readTar>, prefix: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [path, e] of layer) {
    if (!path.startsWith(`${prefix}/`)) continue;
    const r = path.slice(prefix.length + 1);
    if (e.type === '5') out.set(r, 'd');
    else if (e.type === '2') out.set(r, `l ${e.linkname}`);
    else
      out.set(
        r,
        `f ${(e.mode & 0o111) !== 0 ? 'x' : '-'} ${createHash('sha256').update(e.data).digest('hex')}`,
      );
  }
  return out;
}

function diffTrees(want: Map<string, string>, got: Map<string, string>): string[] {
  const problems: string[] = [];
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  const changed = [...want.keys()].filter((k) => got.has(k) && got.get(k) !== want.get(k));
  const some = (l: string[]): string =>
    l.slice(0, 8).join(', ') + (l.length > 8 ? `, ... (${l.length})` : '');
  if (missing.length > 0) problems.push(`/app lacks what the dry build assembles: ${some(missing)}`);
  if (extra.length > 0) problems.push(`/app holds what the dry build does not: ${some(extra)}`);
  if (changed.length > 0) problems.push(`/app files differ from the dry build's: ${some(changed)}`);
  return problems;
}

/** Compares an image's config and layer with a Dockerfile's runtime stage and an app tree. */
export function compareImage(
  stage: RuntimeStage,
  config: RunConfig,
  layer: ReturnType<typeof readTar>,
  appTree: Map<string, string>,
): string[] {
  const problems: string[] = [];
  const eq = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  if (config.User !== stage.user) problems.push(`USER ${stage.user} but the image runs as ${config.User}`);
  if (!eq(config.Entrypoint, stage.entrypoint)) {
    problems.push(
      `ENTRYPOINT ${JSON.stringify(stage.entrypoint)} but the image has ${JSON.stringify(config.Entrypoint)}`,
    );
  }
  if (config.WorkingDir !== stage.workdir)
    problems.push(`WORKDIR ${stage.workdir} but the image has ${config.WorkingDir}`);
  const env = config.Env ?? [];
  for (const [k, v] of Object.entries(stage.env)) {
    if (!env.includes(`${k}=${v}`))
      problems.push(`ENV ${k}=${v} is not in the image's env ${JSON.stringify(env)}`);
  }
  const sortObj = (o: Record<string, string>): [string, string][] =>
    Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
  if (!eq(sortObj(config.Labels ?? {}), sortObj(stage.labels))) {
    problems.push(
      `LABELs ${JSON.stringify(stage.labels)} but the image has ${JSON.stringify(config.Labels ?? {})}`,
    );
  }
  for (const [path, body] of Object.entries(stage.written)) {
    const f = layer.get(path);
    if (f === undefined) problems.push(`/${path} is missing from the image`);
    else {
      if (f.data.toString() !== body)
        problems.push(`/${path} differs: ${JSON.stringify(f.data.toString())} vs ${JSON.stringify(body)}`);
      if ((f.mode & 0o777) !== 0o755) problems.push(`/${path} has mode ${f.mode.toString(8)}, not 755`);
    }
  }
  problems.push(...diffTrees(appTree, describeLayer(layer, 'app')));
  return problems;
}

export function checkAgainstDockerfile(dockerfile: string, archive: string, appTree: string): string[] {
  const img = readImage(archive);
  const layer = readTar(gunzipSync(img.layer));
  return compareImage(runtimeStage(dockerfile), img.config.config, layer, describeTree(appTree));
}
