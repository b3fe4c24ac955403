// SECURITY.md lists the capabilities of the datapath pod; the pod the operator renders must ask for
// exactly those, so the document and the code cannot drift apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_POD_CONFIG, desiredDatapathPod } from './render.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

test('the datapath pod asks only for the capabilities SECURITY.md lists', () => {
  const doc = readFileSync(join(repo, 'SECURITY.md'), 'utf8');
  const m = /<!-- capabilities: ([A-Z_ ]+) -->/.exec(doc);
  assert.ok(m, 'SECURITY.md has the capabilities marker');
  const documented = m[1]!.trim().split(/\s+/).sort();
  const pod = desiredDatapathPod('n1', DEFAULT_POD_CONFIG);
  const c = (
    pod.spec as {
      containers: {
        securityContext: {
          capabilities: { add: string[]; drop: string[] };
          privileged: boolean;
          allowPrivilegeEscalation: boolean;
        };
      }[];
    }
  ).containers[0]!;
  assert.deepEqual([...c.securityContext.capabilities.add].sort(), documented);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.equal(c.securityContext.privileged, false);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  for (const cap of documented)
    assert.match(doc, new RegExp(`\\*\\*${cap}\\*\\*:`), `SECURITY.md explains ${cap}`);
});
