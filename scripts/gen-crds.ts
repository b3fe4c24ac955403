// Writes crds/*.yaml (and deploy/rbac/*.yaml) from the zod schemas. Run from dist:
//   node dist/scripts/gen-crds.js [outDir]      (default: crds/ of the repository)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCRDFiles } from '../lib/api/crdgen.js';
import { renderRBACFiles } from '../lib/api/rbac.js';

const root = join(import.meta.dirname, '..', '..');
const crdDir = process.argv[2] ?? join(root, 'crds');
const rbacDir = process.argv[3] ?? join(root, 'deploy', 'rbac');
for (const [dir, files] of [
  [crdDir, renderCRDFiles()],
  [rbacDir, renderRBACFiles()],
] as const) {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  console.log(`wrote ${files.size} files to ${dir}`);
}
