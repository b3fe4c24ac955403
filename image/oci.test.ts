import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runCapture } from '../lib/exec.js';
import {
  imageDocuments,
  paxRecord,
  parseReference,
  readImage,
  readTar,
  sha256,
  tarBuffer,
  writeImage,
  type Entry,
  type ImageMeta,
} from './oci.js';
import { Rootfs } from './rootfs.js';

const EPOCH = 1_700_000_000;
const longDir = `app/node_modules/${'deep-package-name/'.repeat(9)}lib`;
const entries = (): Entry[] => [
  { path: 'usr/local/bin/tool', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { path: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0::/root:/bin/sh\n') },
  { path: 'bin/sh', type: 'symlink', target: 'dash' },
  { path: 'tmp', type: 'dir', mode: 0o1777 },
  { path: `${longDir}/index.js`, type: 'file', mode: 0o644, data: Buffer.from('export {};\n') },
  { path: 'lib/long-link', type: 'symlink', target: `/${longDir}/index.js` },
];
const meta: ImageMeta = {
  name: 'kube-l2tp.local/test:1.0',
  config: { User: '65532:65532', Entrypoint: ['tool'], Env: ['A=1'], Labels: { b: '2', a: '1' } },
  epoch: EPOCH,
};

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'kli-oci-test-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('a PAX record counts its own length', () => {
  for (const v of ['x', 'a'.repeat(90), 'b'.repeat(995)]) {
    const r = paxRecord('path', v);
    assert.equal(Number(r.split(' ')[0]), Buffer.byteLength(r));
  }
});

test('the same entries give the same tar bytes whatever their order', async () => {
  const a = await tarBuffer(entries(), { mtime: EPOCH });
  const b = await tarBuffer(entries().reverse(), { mtime: EPOCH });
  assert.ok(a.equals(b));
  assert.ok(!a.equals(await tarBuffer(entries(), { mtime: EPOCH + 1 })), 'the mtime is in the bytes');
});

test('GNU tar reads the layer: sorted names, long paths, modes, root owner, the fixed mtime', async () => {
  await withDir(async (dir) => {
    const f = join(dir, 'layer.tar');
    writeFileSync(f, await tarBuffer(entries(), { mtime: EPOCH }));
    const list = await runCapture('tar', ['-tf', f]);
    assert.equal(list.code, 0, list.stderr);
    const names = list.stdout.trim().split('\n');
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes(`${longDir}/index.js`), names.join('\n'));
    const verbose = await runCapture('tar', ['--numeric-owner', '--full-time', '-tvf', f], {
      env: { ...process.env, TZ: 'UTC' },
    });
    assert.match(verbose.stdout, /^drwxrwxrwt 0\/0 +0 2023-11-14 22:13:20 tmp\/$/m);
    assert.match(verbose.stdout, /^-rwxr-xr-x 0\/0 +18 .* usr\/local\/bin\/tool$/m);
    assert.match(verbose.stdout, new RegExp(`lib/long-link -> /${longDir}/index.js$`, 'm'));
    const x = await runCapture('tar', ['-xf', f, '-C', dir]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(readFileSync(join(dir, longDir, 'index.js'), 'utf8'), 'export {};\n');
  });
});

test('the image archive: digests match content, the name annotations, the same bytes twice', async () => {
  await withDir(async (dir) => {
    const a = await writeImage(entries(), meta, join(dir, 'a.tar'));
    const b = await writeImage(entries(), meta, join(dir, 'b.tar'));
    assert.equal(a.digest, b.digest);
    assert.ok(readFileSync(a.archive).equals(readFileSync(b.archive)));
    const files = readTar(readFileSync(a.archive));
    assert.deepEqual(
      [...files.keys()].filter((k) => !k.startsWith('blobs/sha256/')),
      ['blobs', 'blobs/sha256', 'index.json', 'oci-layout'],
    );
    for (const [path, f] of files) {
      if (path.startsWith('blobs/sha256/')) assert.equal(sha256(f.data), `sha256:${path.slice(13)}`);
    }
    const index = JSON.parse(files.get('index.json')!.data.toString()) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    assert.equal(index.manifests[0]!.digest, a.digest);
    assert.deepEqual(index.manifests[0]!.annotations, {
      'io.containerd.image.name': 'kube-l2tp.local/test:1.0',
      'org.opencontainers.image.ref.name': '1.0',
    });
    const img = readImage(a.archive);
    assert.deepEqual(img.config.config.Labels, { a: '1', b: '2' });
    assert.equal(img.config.config.User, '65532:65532');
    // the layer's uncompressed digest is the config's diff_id; gzip carries no timestamp
    const raw = gunzipSync(img.layer);
    const cfg = JSON.parse(files.get(`blobs/sha256/${a.configDigest.slice(7)}`)!.data.toString()) as {
      rootfs: { diff_ids: string[] };
      created: string;
    };
    assert.deepEqual(cfg.rootfs.diff_ids, [sha256(raw)]);
    assert.equal(cfg.created, new Date(EPOCH * 1000).toISOString());
    assert.equal(img.layer.readUInt32LE(4), 0, 'gzip mtime');
    assert.ok(raw.equals(await tarBuffer(entries(), { mtime: EPOCH })));
    // another name is another manifest list entry, not another layer
    const other = imageDocuments(
      { ...meta, name: 'kube-l2tp.local/test:2.0' },
      { descriptor: { mediaType: 'x', digest: 'sha256:00', size: 1 }, diffId: 'sha256:00' },
    );
    assert.match(other.index.toString(), /"org.opencontainers.image.ref.name":"2.0"/);
  });
});

test('names must be fully qualified with a tag (kubelet would look for docker.io/...)', () => {
  assert.deepEqual(parseReference('kube-l2tp.local/pause:1.0'), {
    repository: 'kube-l2tp.local/pause',
    tag: '1.0',
  });
  assert.equal(parseReference('localhost:5000/a/b:v4.2.3').tag, 'v4.2.3');
  for (const bad of ['pause:1.0', 'library/pause:1.0', 'kube-l2tp.local/pause', 'Kube.local/x:1']) {
    assert.throws(() => parseReference(bad), /not fully qualified/, bad);
  }
});

test('rootfs: later additions win, parents are added, a file cannot be a parent', () => {
  const fs = new Rootfs().file('a/b/c', 'one').file('a/b/c', 'two', 0o600).symlink('x', 'a');
  const es = fs.entries();
  assert.deepEqual(fs.paths(), ['a', 'a/b', 'a/b/c', 'x']);
  const c = es.find((e) => e.path === 'a/b/c');
  assert.ok(c?.type === 'file' && 'data' in c && c.data.toString() === 'two' && c.mode === 0o600);
  assert.throws(() => new Rootfs().file('f', '').file('f/g', '').entries(), /parent f is a file/);
  assert.throws(() => new Rootfs().file('../etc/x', ''), /leaves the root/);
});
