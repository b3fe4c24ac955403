// Writes cmd/cni/shim/versions.h from lib/cni/versions.ts and lib/agent-protocol.ts, so the shim's
// VERSION answer, its own checks and the agent's cannot drift apart. Run from dist:
//   node dist/scripts/gen-shim-versions.js [outFile]   (default: cmd/cni/shim/versions.h)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_SOCKET_DIR, DEFAULT_CNI_SOCKET, DEFERRED_DEL_DIR } from '../lib/agent-protocol.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from '../lib/cni/versions.js';

function renderShimVersions(): string {
  const list = JSON.stringify(SUPPORTED_VERSIONS).replaceAll('"', '\\"');
  return [
    '/* Generated from lib/cni/versions.ts and lib/agent-protocol.ts by scripts/gen-shim-versions.ts; do not edit. */',
    '#ifndef KUBE_L2TP_SHIM_VERSIONS_H',
    '#define KUBE_L2TP_SHIM_VERSIONS_H',
    `#define SUPPORTED "${list}"`,
    `#define SUPPORTED_LIST ${SUPPORTED_VERSIONS.map((v) => `"${v}"`).join(', ')}`,
    `#define SUPPORTED_TEXT "${SUPPORTED_VERSIONS.join(', ')}"`,
    `#define CURRENT_VERSION "${CURRENT_VERSION}"`,
    `#define AGENT_SOCKET_DIR "${AGENT_SOCKET_DIR}"`,
    `#define DEFAULT_SOCKET "${DEFAULT_CNI_SOCKET}"`,
    `#define DEFERRED_DEL_DIR "${DEFERRED_DEL_DIR}"`,
    '#endif',
    '',
  ].join('\n');
}

const root = join(import.meta.dirname, '..', '..');
const out = process.argv[2] ?? join(root, 'cmd', 'cni', 'shim', 'versions.h');
writeFileSync(out, renderShimVersions());
console.log(`wrote ${out}`);
