// Debian packages as image content: pinned versions and the SHA-256 of each .deb (a committed file, so
// a build is reproducible and takes exactly the bytes reviewed), fetched with `apt-get download`,
// checked against the pin and unpacked with `dpkg-deb -x` into the cache, never installed.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { runCapture } from '../lib/exec.js';

export const REFRESH_COMMAND = 'node dist/image/main.js pins --refresh';

export interface Pin {
  version: string;
  /** SHA-256 of the .deb, as the signed apt index lists it. */
  sha256: string;
}
export type Pins = ReadonlyMap<string, Pin>;

/** Parses the pins file: "name version sha256" per line, # comments. */
export function parsePins(text: string): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const m = /^([a-z0-9][a-z0-9+.-]+)\s+(\S+)\s+([0-9a-f]{64})$/.exec(line);
    if (m === null) throw new Error(`pins line ${i + 1}: expected "package version sha256": ${raw}`);
    pins.set(m[1]!, { version: m[2]!, sha256: m[3]! });
  }
  return pins;
}

export function formatPins(header: string, pins: Pins): string {
  const names = [...pins.keys()].sort();
  return header + names.map((n) => `${n} ${pins.get(n)!.version} ${pins.get(n)!.sha256}\n`).join('');
}

export function pinFor(pins: Pins, name: string, pinsFile: string): Pin {
  const p = pins.get(name);
  if (p === undefined) throw new Error(`Debian package ${name} has no pinned version in ${pinsFile}`);
  return p;
}

export const sha256Of = (file: string): string =>
  createHash('sha256').update(readFileSync(file)).digest('hex');

/** File-name-safe form of name=version (versions may hold an epoch "1:"). */
function key(name: string, version: string): string {
  return `${name}_${version.replace(/:/g, '%3a')}`;
}

export class DebianPackages {
  constructor(
    private readonly cacheDir: string,
    private readonly pins: Pins,
    private readonly pinsFile: string,
    private readonly log: Logger,
  ) {}

  /** The unpacked tree of a pinned package (downloaded and unpacked once into the cache). */
  async unpacked(name: string): Promise<string> {
    const { version, sha256 } = pinFor(this.pins, name, this.pinsFile);
    const k = key(name, version);
    const dir = join(this.cacheDir, 'x', k);
    // an unpacked tree counts only when it was checked against this pin
    const done = join(dir, '.complete');
    if (existsSync(done) && readFileSync(done, 'utf8') === `${name} ${version} ${sha256}\n`)
      return join(dir, 'root');
    const deb = await this.download(name, version);
    const got = sha256Of(deb);
    if (got !== sha256) {
      rmSync(deb, { force: true });
      throw new Error(
        `Debian package ${name} ${version}: the .deb has SHA-256 ${got}, ${this.pinsFile} pins ${sha256}; ` +
          `not used. If the pin is stale, refresh it with \`${REFRESH_COMMAND}\` and review the change.`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const r = await runCapture('dpkg-deb', ['-x', deb, join(dir, 'root')]);
    if (r.code !== 0) throw new Error(`dpkg-deb -x ${deb}: ${r.stderr.trim()}`);
    writeFileSync(done, `${name} ${version} ${sha256}\n`);
    return join(dir, 'root');
  }

  private async download(name: string, version: string): Promise<string> {
    const deb = join(this.cacheDir, `${key(name, version)}.deb`);
    if (existsSync(deb)) return deb;
    const tmp = join(this.cacheDir, `.dl-${key(name, version)}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      this.log.info({ pkg: name, version }, 'apt-get download');
      // without the sandbox user: the cache may be a directory _apt cannot write
      const r = await runCapture('bash', [
        '-c',
        'cd "$1" && apt-get download -q -o APT::Sandbox::User=root "$2"',
        '-',
        tmp,
        `${name}=${version}`,
      ]);
      if (r.code !== 0) {
        const out = (r.stderr + r.stdout).trim();
        const gone = /not found|Unable to locate|has no installation candidate|Can't select/i.test(out);
        throw new Error(
          gone
            ? `Debian package ${name} ${version} (pinned in ${this.pinsFile}) is not served by the apt sources ` +
                `(${out.split('\n').pop()}). Run \`apt-get update\` and retry; if it is still missing, ` +
                `refresh the pins with \`${REFRESH_COMMAND}\` and commit ${this.pinsFile}.`
            : `apt-get download ${name}=${version} failed: ${out}`,
        );
      }
      const got = readdirSync(tmp).filter((f) => f.endsWith('.deb'));
      if (got.length !== 1)
        throw new Error(`apt-get download ${name}=${version} left ${got.join(', ') || 'nothing'}`);
      mkdirSync(this.cacheDir, { recursive: true });
      renameSync(join(tmp, got[0]!), deb);
      return deb;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

/** The candidate version apt would install now, from `apt-cache policy`. */
export async function candidateVersion(name: string): Promise<string> {
  const r = await runCapture('apt-cache', ['policy', name]);
  const v = /^\s*Candidate:\s*(\S+)/m.exec(r.stdout)?.[1];
  if (r.code !== 0 || v === undefined || v === '(none)') {
    throw new Error(`apt-cache policy ${name}: no candidate version (apt-get update first?)`);
  }
  return v;
}

/** The SHA-256 of name=version's .deb from the apt index (`apt-cache show`). */
export async function indexSha256(name: string, version: string): Promise<string> {
  const r = await runCapture('apt-cache', ['show', `${name}=${version}`]);
  const h = /^SHA256:\s*([0-9a-f]{64})$/m.exec(r.stdout)?.[1];
  if (r.code !== 0 || h === undefined) throw new Error(`apt-cache show ${name}=${version}: no SHA256`);
  return h;
}

/** Rewrites the pins file with today's candidate versions of the same packages, and their hashes. */
export async function refreshPins(pinsFile: string, log: Logger): Promise<Map<string, Pin>> {
  const text = readFileSync(pinsFile, 'utf8');
  const header = text
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => `${l}\n`)
    .join('');
  const old = parsePins(text);
  const fresh = new Map<string, Pin>();
  for (const name of old.keys()) {
    const v = await candidateVersion(name);
    if (v !== old.get(name)?.version)
      log.info({ pkg: name, from: old.get(name)?.version, to: v }, 'pin changed');
    fresh.set(name, { version: v, sha256: await indexSha256(name, v) });
  }
  writeFileSync(pinsFile, formatPins(header, fresh));
  return fresh;
}
