import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  baseImageProblems,
  baseImages,
  compareImage,
  describeTree,
  runtimeStage,
} from './dockerfile-check.js';
import { dockerfileNodeVersion } from './node-dist.js';
import { readTar, tarBuffer, type Entry, type RunConfig } from './oci.js';
import { PRODUCT_LABELS, PRODUCT_WRAPPERS } from './recipes.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');
const config: RunConfig = {
  User: '65532:65532',
  Env: [
    'PATH=/usr/local/bin:/usr/bin:/bin',
    `NODE_VERSION=${dockerfileNodeVersion(dockerfile)}`,
    'NODE_ENV=production',
  ],
  Entrypoint: ['kube-l2tp-operator'],
  WorkingDir: '/app',
  Labels: PRODUCT_LABELS,
};

async function fixture(
  dir: string,
  extra: Entry[] = [],
): Promise<{ layer: ReturnType<typeof readTar>; tree: Map<string, string> }> {
  const app = join(dir, 'app');
  mkdirSync(join(app, 'dist'), { recursive: true });
  writeFileSync(join(app, 'package.json'), '{}\n');
  writeFileSync(join(app, 'dist', 'main.js'), 'export {};\n');
  const entries: Entry[] = [
    { path: 'app', type: 'dir', mode: 0o755 },
    { path: 'app/dist', type: 'dir', mode: 0o755 },
    { path: 'app/package.json', type: 'file', mode: 0o644, data: Buffer.from('{}\n') },
    { path: 'app/dist/main.js', type: 'file', mode: 0o644, data: Buffer.from('export {};\n') },
    ...Object.entries(PRODUCT_WRAPPERS).map(([path, body]): Entry => ({
      path,
      type: 'file',
      mode: 0o755,
      data: Buffer.from(body),
    })),
    ...extra,
  ];
  return { layer: readTar(await tarBuffer(entries, { mtime: 0 })), tree: describeTree(app) };
}

test("the Dockerfile's runtime stage is what the recipe builds", async () => {
  const st = runtimeStage(dockerfile);
  assert.equal(st.user, '65532:65532');
  assert.deepEqual(st.entrypoint, ['kube-l2tp-operator']);
  assert.deepEqual(st.labels, PRODUCT_LABELS);
  assert.deepEqual(st.written, PRODUCT_WRAPPERS);
  const dir = mkdtempSync(join(tmpdir(), 'kli-dfcheck-'));
  try {
    const { layer, tree } = await fixture(dir);
    assert.deepEqual(compareImage(st, config, layer, tree), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the check fails when the Dockerfile and the image diverge', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kli-dfcheck-'));
  try {
    const { layer, tree } = await fixture(dir);
    for (const [what, edit, expect] of [
      ['another user', (s: string) => s.replace('USER 65532:65532', 'USER 1000:1000'), /USER 1000:1000/],
      [
        'another entrypoint',
        (s: string) => s.replace('ENTRYPOINT ["kube-l2tp-operator"]', 'ENTRYPOINT ["kube-l2tp-datapath"]'),
        /ENTRYPOINT/,
      ],
      ['another label', (s: string) => s.replace('Apache-2.0', 'MIT'), /LABELs/],
      [
        'another env',
        (s: string) => s.replace('ENV NODE_ENV=production', 'ENV NODE_ENV=production LOG_LEVEL=debug'),
        /LOG_LEVEL=debug/,
      ],
      [
        'another Node.js',
        (s: string) => s.replace(/^ARG NODE_VERSION=.*$/m, 'ARG NODE_VERSION=22.1.0'),
        /NODE_VERSION=22\.1\.0/,
      ],
      ['another workdir', (s: string) => s.replace('WORKDIR /app', 'WORKDIR /srv'), /WORKDIR \/srv/],
      [
        'another wrapper',
        (s: string) => s.replace('exec node /app/dist/datapath/main.js', 'exec node /app/dist/agent.js'),
        /kube-l2tp-datapath differs/,
      ],
    ] as const) {
      const problems = compareImage(runtimeStage(edit(dockerfile)), config, layer, tree);
      assert.ok(
        problems.some((p) => expect.test(p)),
        `${what}: ${problems.join('; ')}`,
      );
    }
    // /app with a file the dry build did not assemble, and without one it did
    const extra = await fixture(dir, [
      { path: 'app/dist/test/x.test.js', type: 'file', mode: 0o644, data: Buffer.from('') },
    ]);
    assert.match(
      compareImage(runtimeStage(dockerfile), config, extra.layer, tree).join('\n'),
      /holds what the dry build does not: dist\/test/,
    );
    writeFileSync(join(dir, 'app', 'dist', 'extra.js'), '');
    assert.match(
      compareImage(runtimeStage(dockerfile), config, layer, describeTree(join(dir, 'app'))).join('\n'),
      /lacks .*dist\/extra\.js/,
    );
    writeFileSync(join(dir, 'app', 'package.json'), '{"changed":true}\n');
    assert.match(
      compareImage(runtimeStage(dockerfile), config, layer, describeTree(join(dir, 'app'))).join('\n'),
      /differ .*package\.json/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the Dockerfile's base images are pinned by digest, at NODE_VERSION", () => {
  assert.deepEqual(baseImageProblems(dockerfile), []);
  const bases = baseImages(dockerfile);
  assert.equal(bases.length, 2, 'a build stage and the runtime stage');
  for (const b of bases) {
    assert.match(
      b.image,
      new RegExp(`^node:${dockerfileNodeVersion(dockerfile)}-bookworm-slim@sha256:[0-9a-f]{64}$`),
    );
  }
  assert.equal(bases[0]!.stage, 'build');
});

test('a base image without a digest, or at another Node.js, fails the check', () => {
  const digest = /@sha256:[0-9a-f]{64}/;
  for (const [what, edit, expect] of [
    [
      'the ARG by tag only',
      (s: string) => s.replace(/^(ARG BASE_IMAGE=[^@\n]+)@sha256:[0-9a-f]{64}$/m, '$1'),
      /FROM \$\{BASE_IMAGE\} AS build: the base image node:20\.19\.5-bookworm-slim is not pinned by digest: .*docker buildx imagetools inspect node:20\.19\.5-bookworm-slim/,
    ],
    [
      'a FROM naming an image by tag',
      (s: string) => s.replace(/^FROM \$\{BASE_IMAGE\}$/m, 'FROM node:20.19.5-bookworm-slim'),
      /^FROM node:20\.19\.5-bookworm-slim: the base image .* is not pinned by digest/,
    ],
    [
      'a digest alone (no tag to read the version from)',
      (s: string) => s.replace(/^FROM \$\{BASE_IMAGE\}$/m, `FROM node${digest.exec(s)![0]}`),
      /is not pinned by digest: write it as name:tag@sha256/,
    ],
    [
      'a short digest',
      (s: string) => s.replace(/(@sha256:[0-9a-f]{12})[0-9a-f]{52}/, '$1'),
      /not pinned by digest/,
    ],
    [
      'an ARG that is not set',
      (s: string) => s.replace(/^ARG BASE_IMAGE=.*$/m, 'ARG BASE_IMAGE'),
      /\(empty\)/,
    ],
    [
      'another NODE_VERSION than the tag',
      (s: string) => s.replace(/^ARG NODE_VERSION=.*$/m, 'ARG NODE_VERSION=22.1.0'),
      /tag 20\.19\.5-bookworm-slim is not Node\.js 22\.1\.0 \(ARG NODE_VERSION\)/,
    ],
  ] as const) {
    const problems = baseImageProblems(edit(dockerfile));
    assert.ok(
      problems.some((p) => expect.test(p)),
      `${what}: ${problems.join('; ') || 'no problem found'}`,
    );
  }
  // FROM an earlier stage is not a registry image
  const fromStage = dockerfile.replace(/^FROM \$\{BASE_IMAGE\}$/m, 'FROM build');
  assert.deepEqual(baseImageProblems(fromStage), []);
  assert.deepEqual(
    baseImages('ARG A=x:1@sha256:' + 'a'.repeat(64) + '\nFROM --platform=linux/amd64 $A AS one\n').map(
      (b) => b.image,
    ),
    ['x:1@sha256:' + 'a'.repeat(64)],
  );
});
