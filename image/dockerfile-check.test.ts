import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareImage, describeTree, runtimeStage } from './dockerfile-check.js';
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
