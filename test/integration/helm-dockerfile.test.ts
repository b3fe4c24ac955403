// The Dockerfile cannot be built on machines without a Docker engine, so it is linted: hadolint plus the
// rules the image promises (scripts/check-dockerfile.sh). This test runs the check, shows it catches
// broken Dockerfiles, and checks that the image, the chart and the operator's datapath pod agree on the
// privileges of each component.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapture } from '../../lib/exec.js';
import { DEFAULT_POD_CONFIG, desiredDatapathPod } from '../../operator/render.js';

const root = join(import.meta.dirname, '..', '..', '..');
const script = join(root, 'scripts', 'check-dockerfile.sh');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const dockerignore = join(root, '.dockerignore');

describe('Dockerfile', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kube-l2tp-dockerfile-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes hadolint and the image rules', async () => {
    const r = await runCapture('bash', [script]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /hadolint .* pass/);
  });

  for (const [what, edit, expect] of [
    ['runs as root', (s: string) => s.replace('USER 65532:65532', 'USER root'), /must not be root/],
    [
      'is single-stage',
      (s: string) => s.replace(/^FROM \$\{BASE_IMAGE\} AS build$/m, '# no build stage'),
      /multi-stage/,
    ],
    [
      'skips the native build script',
      (s: string) => s.replace('bash scripts/build-native.sh', 'true'),
      /build-native/,
    ],
    [
      'names its base image by tag only',
      (s: string) => s.replace(/^(ARG BASE_IMAGE=[^@\n]+)@sha256:[0-9a-f]{64}$/m, '$1'),
      /the base image node:20\.19\.5-bookworm-slim is not pinned by digest/,
    ],
    [
      'starts its runtime stage from a tag',
      (s: string) => s.replace(/^FROM \$\{BASE_IMAGE\}$/m, 'FROM node:20.19.5-bookworm-slim'),
      /FROM node:20\.19\.5-bookworm-slim: the base image .* is not pinned by digest/,
    ],
    ['breaks a hadolint rule', (s: string) => s.replace('WORKDIR /app', 'RUN cd /app'), /DL3003/],
    [
      'starts the wrong operator entry',
      (s: string) => s.replace('exec node /app/dist/operator/main.js', 'exec node /app/dist/op.js'),
      /kube-l2tp-operator must start/,
    ],
  ] as const) {
    it(`fails when the Dockerfile ${what}`, async () => {
      const f = join(dir, 'Dockerfile');
      writeFileSync(f, edit(dockerfile));
      const r = await runCapture('bash', [script, f, dockerignore]);
      assert.notEqual(r.code, 0, `accepted a Dockerfile that ${what}`);
      assert.match(r.stdout + r.stderr, expect);
    });
  }

  it('the build stage, run without Docker, assembles a runtime tree whose entries start', async () => {
    // scripts/dockerfile-dry-build.sh runs the Dockerfile's own COPY/RUN lines on the committed tree
    const r = await runCapture('bash', [join(root, 'scripts', 'dockerfile-dry-build.sh')], {
      timeoutMs: 600_000,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr.slice(-3000));
    assert.match(r.stdout, /dry build of Dockerfile: runtime tree .*l2tp_pump\.node/);
  });

  it('the image, the chart and the datapath pod agree on privileges', () => {
    const pod = desiredDatapathPod('node-a', DEFAULT_POD_CONFIG) as unknown as {
      spec: { hostNetwork: boolean; containers: { securityContext: Record<string, unknown> }[] };
    };
    const sc = pod.spec.containers[0]!.securityContext as {
      capabilities: { drop: string[]; add: string[] };
      allowPrivilegeEscalation: boolean;
      privileged: boolean;
    };
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, false);
    const caps = [...sc.capabilities.add].sort();
    // every capability the datapath pod adds is named in the Dockerfile header, the chart values and
    // the install guide, and nothing else is added
    for (const c of caps) {
      assert.match(dockerfile, new RegExp(c), `Dockerfile does not mention ${c}`);
      assert.match(
        readFileSync(join(root, 'deploy', 'helm', 'kube-l2tp', 'values.yaml'), 'utf8'),
        new RegExp(c),
      );
      assert.match(readFileSync(join(root, 'docs', 'install.md'), 'utf8'), new RegExp(c));
    }
    assert.ok(
      caps.every((c) => ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'].includes(c)),
      caps.join(','),
    );
    assert.equal(pod.spec.hostNetwork, true);
    // the image's default user is the operator's non-root user the chart runs it as
    assert.match(dockerfile, /^USER 65532:65532$/m);
    const chart = readFileSync(join(root, 'deploy', 'kube-l2tp.yaml'), 'utf8');
    assert.match(chart, /runAsUser: 65532/);
  });
});
