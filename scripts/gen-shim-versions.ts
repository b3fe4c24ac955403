// Writes cmd/cni/shim/versions.h from lib/cni/versions.ts, so the shim's VERSION answer and the
// agent's checks cannot drift apart. Run from dist:
//   node dist/scripts/gen-shim-versions.js [outFile]   (default: cmd/cni/shim/versions.h)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from '../lib/cni/versions.js';

function renderShimVersions(): string {
  const list = JSON.stringify(SUPPORTED_VERSIONS).replaceAll('"', '\\"');
  return [
    '/* Generated from lib/cni/versions.ts by scripts/gen-shim-versions.ts; do not edit. */',
    '#ifndef KUBE_L2TP_SHIM_VERSIONS_H',
    '#define KUBE_L2TP_SHIM_VERSIONS_H',
    `#define SUPPORTED "${list}"`,
    `#define CURRENT_VERSION "${CURRENT_VERSION}"`,
    '#endif',
    '',
  ].join('\n');
}

const root = join(import.meta.dirname, '..', '..');
const out = process.argv[2] ?? join(root, 'cmd', 'cni', 'shim', 'versions.h');
writeFileSync(out, renderShimVersions());
console.log(`wrote ${out}`);
