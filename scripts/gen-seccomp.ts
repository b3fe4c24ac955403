// Writes the datapath agent's seccomp profile, one file per architecture, from datapath/seccomp/profile.ts
// (run from dist, after tsc): deploy/seccomp/kube-l2tp-datapath-<arch>.json. The datapath pods install
// the same text themselves; these copies are for review and for installing the profile by other means.
//   usage: node dist/scripts/gen-seccomp.js [outDir]      (default: deploy/seccomp)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ARCHES,
  checkedProfileFile,
  datapathSeccompProfileText,
  type SeccompArch,
} from '../datapath/seccomp/profile.js';

const root = join(import.meta.dirname, '..', '..');
const out = process.argv[2] ?? join(root, 'deploy', 'seccomp');
mkdirSync(out, { recursive: true });
for (const arch of Object.keys(ARCHES) as SeccompArch[]) {
  const f = join(out, checkedProfileFile(arch));
  writeFileSync(f, datapathSeccompProfileText(arch));
  console.log(`wrote ${f}`);
}
