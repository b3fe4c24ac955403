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

/** The last stage of a Dockerfile, continuation lines joined. */
export function runtimeStage(dockerfile: string): RuntimeStage {
  const joined = dockerfile.replace(/\\\n/g, ' ');
  const stages = joined.split(/^FROM /m);
  const last = stages[stages.length - 1] ?? '';
  const st: RuntimeStage = { env: {}, labels: {}, written: {} };
  // the node base images set NODE_VERSION: the image built here carries the same Node.js
  const nodeVersion = /^ARG NODE_VERSION=(\S+)$/m.exec(dockerfile)?.[1];
  if (nodeVersion !== undefined && /^FROM node:\$\{NODE_VERSION\}/m.test(last === '' ? '' : `FROM ${last}`)) {
    st.env.NODE_VERSION = nodeVersion;
  }
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
