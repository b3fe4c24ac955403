import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { missingLibraries, neededLibraries } from './elf.js';
import type { Entry } from './oci.js';

test("reads DT_NEEDED of this machine's programs: dynamic, static, not ELF", () => {
  const node = neededLibraries(readFileSync(process.execPath));
  assert.ok(node?.includes('libc.so.6'), String(node));
  assert.deepEqual(neededLibraries(readFileSync('/bin/busybox')), [], 'busybox-static has no DT_NEEDED');
  assert.equal(neededLibraries(Buffer.from('#!/bin/sh\necho\n')), undefined);
});

test('a program whose library is not in the root filesystem is reported', () => {
  const ip: Entry = { path: 'bin/ip', type: 'file', mode: 0o755, source: '/bin/ip', size: 0 };
  const needed = neededLibraries(readFileSync('/bin/ip')) ?? [];
  assert.ok(needed.includes('libmnl.so.0'), needed.join(' '));
  const libs: Entry[] = needed.map((l) => ({
    path: `lib/x86_64-linux-gnu/${l}`,
    type: 'symlink',
    target: 'x',
  }));
  assert.deepEqual(missingLibraries([ip, ...libs]), []);
  const without = libs.filter((e) => !e.path.endsWith('libmnl.so.0'));
  assert.deepEqual(missingLibraries([ip, ...without]), ['/bin/ip: libmnl.so.0']);
  // scripts and data files are not read as programs
  assert.deepEqual(
    missingLibraries([{ path: 'etc/x', type: 'file', mode: 0o644, data: Buffer.from('x') }]),
    [],
  );
});
