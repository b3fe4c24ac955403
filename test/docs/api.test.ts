// The API as the documents describe it, against lib/api (the zod schemas are the one source of the
// CRDs): the README's API section names every field of L2TPTunnel and Pseudowire specs and each
// kind's short name; the operator README's L2TPNodeState contract names every field of the node
// state; and every condition or Event reason a document names is one the code writes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { KINDS } from '../../lib/api/crdgen.js';
import {
  nodeSessionSpecSchema,
  nodeSessionStatusSchema,
  nodeStateStatusSchema,
  nodeTunnelSpecSchema,
  nodeTunnelStatusSchema,
} from '../../lib/api/schemas.js';
import { USER_DOCS, codeSpans, readRepo, repoRoot, tables } from './markdown.js';

/** Field names of a schema's objects, nested objects included (optional/default unwrapped). */
export function fieldNames(schema: z.ZodType, depth = 3): string[] {
  let s: z.ZodType = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodNullable)
      s = s.unwrap() as z.ZodType;
    else break;
  }
  if (s instanceof z.ZodArray) return fieldNames(s.element as z.ZodType, depth);
  if (!(s instanceof z.ZodObject) || depth === 0) return [];
  // conditions are the Kubernetes kind, documented as such; ipam is the CNI plugins' own (SECURITY.md)
  return Object.entries(s.shape as Record<string, z.ZodType>).flatMap(([k, v]) => [
    k,
    ...(k === 'conditions' || k === 'ipam' ? [] : fieldNames(v, depth - 1)),
  ]);
}

const section = (doc: string, heading: string) => {
  const start = doc.indexOf(heading);
  assert.ok(start >= 0, `no section ${heading}`);
  const next = doc.indexOf('\n#', start + heading.length);
  return doc.slice(start, next < 0 ? undefined : next);
};
const missingWords = (text: string, words: string[]) =>
  [...new Set(words)].filter((w) => !new RegExp(`\\b${w}\\b`).test(text));

/** The capitalised string literals of the code ('TunnelFull', 'DatapathPodRefused', ...). */
function codeLiterals(): Set<string> {
  const literals = new Set<string>();
  const walk = (dir: string) => {
    for (const f of readdirSync(join(repoRoot, dir))) {
      const p = join(dir, f);
      if (statSync(join(repoRoot, p)).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts'))
        for (const m of readRepo(p).matchAll(/'([A-Z][A-Za-z]+)'/g)) literals.add(m[1]!);
    }
  };
  for (const d of ['operator', 'lib', 'datapath']) walk(d);
  return literals;
}

/** Reasons a document names: reason=X, reason `X`, `X` Event, Event `X`, report `X`, (XyzAbc). */
export function namedReasons(doc: string): string[] {
  const re =
    /reason[= ]`?([A-Z]\w+)|`([A-Z]\w+)` (?:Event|event|Warning)|(?:Event|event) `([A-Z]\w+)`|report `([A-Z]\w+)`|\(([A-Z][a-z]+[A-Z]\w+)\)/g;
  return [...doc.matchAll(re)].map((m) => m.slice(1).find(Boolean)!);
}

const readme = readRepo('README.md');

describe('the API in the documentation', () => {
  it("README's API section names every field of the L2TPTunnel and Pseudowire specs", () => {
    const api = section(readme, '## The API');
    for (const k of KINDS.filter((x) => x.kind !== 'L2TPNodeState')) {
      assert.deepEqual(missingWords(api, fieldNames(k.spec)), [], `${k.kind} fields missing from README`);
      assert.match(api, new RegExp(`\`${k.kind}\` \\((cluster-scoped|namespaced)`));
      const scope = k.scope === 'Cluster' ? 'cluster-scoped' : 'namespaced';
      assert.match(api, new RegExp(`\`${k.kind}\` \\(${scope}`), `${k.kind} is ${scope}`);
    }
    for (const k of KINDS)
      assert.match(api, new RegExp(`\`${k.kind}\` \\([^)]*\`${k.shortNames[0]}\``), `${k.kind}: short name`);
  });

  it("README's printer column table is the CRDs' columns", () => {
    const rows = tables(readme, ['kind', '`kubectl get` columns', 'added by `-o wide`']).flat();
    const documented = rows.map((r) => `${codeSpans(r[0]!)[0]}: ${codeSpans(r[1]!)} | ${codeSpans(r[2]!)}`);
    const defined = KINDS.map((k) => {
      const cols = (wide: boolean) =>
        k.columns.filter((c) => (c.priority ?? 0) > 0 === wide).map((c) => c.name);
      return `${k.kind}: ${cols(false)} | ${cols(true)}`;
    });
    assert.deepEqual(documented.sort(), defined.sort());
  });

  it("the operator README's L2TPNodeState contract names every field of the node state", () => {
    const contract = section(readRepo('operator/README.md'), '## L2TPNodeState contract');
    const schemas = [
      nodeTunnelSpecSchema,
      nodeSessionSpecSchema,
      nodeStateStatusSchema,
      nodeTunnelStatusSchema,
      nodeSessionStatusSchema,
    ];
    assert.deepEqual(
      missingWords(
        contract,
        schemas.flatMap((s) => fieldNames(s)),
      ),
      [],
    );
    const backends = (nodeStateStatusSchema.shape.backend.unwrap() as z.ZodEnum).options as string[];
    assert.match(contract, new RegExp(`backend: ${backends.join('\\|')}\\b`));
  });

  it('every reason a document names is a reason the code writes', () => {
    const literals = codeLiterals();
    const named = USER_DOCS.flatMap((file) =>
      namedReasons(readRepo(file)).map((reason) => ({ file, reason })),
    );
    assert.ok(named.length >= 10, JSON.stringify(named));
    assert.deepEqual(
      named.filter((n) => !literals.has(n.reason)).map((n) => `${n.file}: ${n.reason}`),
      [],
    );
  });

  it('the reason check can fail', () => {
    const doc = 'reports `Ready=False`, reason `TunnelVanished`, and a `NodeGone` Event';
    assert.deepEqual(namedReasons(doc), ['TunnelVanished', 'NodeGone']);
    assert.equal(codeLiterals().has('TunnelVanished'), false);
  });

  it('the field check can fail', () => {
    const api = section(readme, '## The API').replace(/udpChecksum/g, 'checksum');
    const tunnel = KINDS.find((k) => k.kind === 'L2TPTunnel')!;
    assert.deepEqual(missingWords(api, fieldNames(tunnel.spec)), ['udpChecksum']);
  });
});
