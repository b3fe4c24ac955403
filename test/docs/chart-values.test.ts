// The values tables of docs/install.md and the chart's README against the chart itself: install.md
// names every value of values.schema.json, no table names a value the chart does not have, and each
// default a table gives (a code span, read as YAML) is the one in values.yaml. The environment the
// chart hands the operator is named in install.md too.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { codeSpans, readRepo, tables } from './markdown.js';

const CHART = 'deploy/helm/kube-l2tp';

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
}

/** Dotted names of the schema's leaves: a node with `properties` is a group, anything else a value. */
export function schemaLeaves(node: SchemaNode, prefix = ''): string[] {
  if (!node.properties) return prefix ? [prefix] : [];
  return Object.entries(node.properties).flatMap(([k, v]) => schemaLeaves(v, prefix ? `${prefix}.${k}` : k));
}

function valueAt(values: unknown, path: string): { found: boolean; value?: unknown } {
  let cur: unknown = values;
  for (const k of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || !(k in cur)) return { found: false };
    cur = (cur as Record<string, unknown>)[k];
  }
  return { found: true, value: cur };
}

/**
 * What is wrong with the `| value | default | ... |` tables of `doc`: names the chart does not have,
 * defaults that differ from values.yaml, and (with `complete`) values no table names. A row names its
 * values as code spans in the first cell and gives their defaults as code spans, in the same order, in
 * the second.
 */
export function valuesTableProblems(
  doc: string,
  values: unknown,
  leaves: string[],
  complete: boolean,
): string[] {
  const problems: string[] = [];
  const found = tables(doc, ['value', 'default']);
  if (found.length === 0) return ['no "| value | default |" table'];
  const named = new Set<string>();
  for (const row of found.flat()) {
    const names = codeSpans(row[0] ?? '');
    const defaults = codeSpans(row[1] ?? '');
    if (names.length !== defaults.length) {
      problems.push(`${names.join(', ')}: ${names.length} values but ${defaults.length} defaults`);
      continue;
    }
    names.forEach((name, i) => {
      named.add(name);
      if (!leaves.includes(name)) {
        problems.push(`${name}: not a value of the chart`);
        return;
      }
      const want = valueAt(values, name).value;
      let got: unknown;
      try {
        got = YAML.parse(defaults[i]!);
      } catch {
        got = defaults[i];
      }
      try {
        assert.deepEqual(got ?? null, want ?? null);
      } catch {
        problems.push(`${name}: documented default ${defaults[i]}, values.yaml has ${JSON.stringify(want)}`);
      }
    });
  }
  if (complete) for (const l of leaves) if (!named.has(l)) problems.push(`${l}: not in the table`);
  return problems;
}

const values: unknown = YAML.parse(readRepo(`${CHART}/values.yaml`));
const leaves = schemaLeaves(JSON.parse(readRepo(`${CHART}/values.schema.json`)) as SchemaNode).filter(
  (l) => l !== 'global', // Helm's own, for subcharts
);
const install = readRepo('docs/install.md');

describe('chart values in the documentation', () => {
  it('every value of the schema is in values.yaml and the schema knows every value there', () => {
    for (const l of leaves) assert.ok(valueAt(values, l).found, `${l}: in the schema, not in values.yaml`);
    const yamlLeaves = (v: unknown, p: string): string[] =>
      typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length
        ? Object.entries(v).flatMap(([k, x]) => yamlLeaves(x, p ? `${p}.${k}` : k))
        : [p];
    for (const y of yamlLeaves(values, ''))
      assert.ok(
        leaves.some((l) => y === l || y.startsWith(`${l}.`)),
        `${y}: in values.yaml, not in the schema`,
      );
  });

  it('docs/install.md names every value with its default, and nothing else', () => {
    assert.deepEqual(valuesTableProblems(install, values, leaves, true), []);
  });

  it("the chart README's table names real values with their defaults", () => {
    assert.deepEqual(valuesTableProblems(readRepo(`${CHART}/README.md`), values, leaves, false), []);
  });

  it('catches a table that drifted from the chart', () => {
    const dropped = install.replace(/^\| `operator\.metricsPort` .*\n/m, '');
    assert.deepEqual(valuesTableProblems(dropped, values, leaves, true), [
      'operator.metricsPort: not in the table',
    ]);
    const wrongDefault = install.replace('| `logLevel` | `info` |', '| `logLevel` | `debug` |');
    assert.match(valuesTableProblems(wrongDefault, values, leaves, true).join('\n'), /logLevel: documented/);
    const wrongObject = install.replace('`[{operator: Exists}]`', '`[]`');
    assert.match(
      valuesTableProblems(wrongObject, values, leaves, true).join('\n'),
      /datapath\.tolerations: documented/,
    );
    const unknown = install.replace('| `logLevel` |', '| `loglevel` |');
    assert.match(valuesTableProblems(unknown, values, leaves, true).join('\n'), /loglevel: not a value/);
  });

  it("install.md names every variable of the operator's environment the chart sets", () => {
    const deployment = readRepo(`${CHART}/templates/deployment.yaml`);
    const env = [...deployment.matchAll(/^\s+- name: ([A-Z][A-Z0-9_]+)$/gm)].map((m) => m[1]!);
    assert.ok(env.includes('DATAPATH_IMAGE') && env.length > 10, `found ${env.join(' ')}`);
    const section = install.slice(install.indexOf('## Operator settings'));
    const spans = codeSpans(section);
    const documented = (v: string) =>
      spans.some((s) => s === v || (s.endsWith('_*') && v.startsWith(s.slice(0, -1))));
    const missing = env.filter(
      (v) => !['POD_NAME', 'POD_NAMESPACE', 'LOG_LEVEL'].includes(v) && !documented(v),
    );
    assert.deepEqual(missing, [], 'docs/install.md, "Operator settings and compatibility"');
    // and every variable named there is one the chart sets (a name or a prefix of some)
    for (const s of spans.filter((x) => /^[A-Z][A-Z0-9_]+(_\*)?$/.test(x)))
      assert.ok(
        env.some((v) => v === s || (s.endsWith('_*') && v.startsWith(s.slice(0, -1)))),
        `${s}: named in install.md, not set by the chart`,
      );
  });
});
