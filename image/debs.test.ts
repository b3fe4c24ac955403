import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPins, parsePins, pinnedVersion } from './debs.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

test('pins: "package version" lines with comments; formatting sorts and round-trips', () => {
  const pins = parsePins('# header\nzlib1g 1:1.2.13.dfsg-1\nlibc6 2.36-9+deb12u14  # glibc\n\n');
  assert.deepEqual(
    [...pins],
    [
      ['zlib1g', '1:1.2.13.dfsg-1'],
      ['libc6', '2.36-9+deb12u14'],
    ],
  );
  const text = formatPins('# h\n', pins);
  assert.equal(text, '# h\nlibc6 2.36-9+deb12u14\nzlib1g 1:1.2.13.dfsg-1\n');
  assert.deepEqual(parsePins(text), new Map([...pins].sort()));
  assert.throws(() => parsePins('libc6\n'), /line 1: expected "package version"/);
  assert.throws(() => pinnedVersion(pins, 'iperf3', 'pins.txt'), /iperf3 has no pinned version in pins.txt/);
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
