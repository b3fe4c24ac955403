// The metrics table of docs/install.md against what the operator and the agent register with
// prom-client: every metric is documented with its type and labels, every kube_l2tp_ name a user
// document mentions exists, and every drop reason is listed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../operator/metrics.js';
import { createAgentMetrics } from '../../datapath/agent/metrics.js';
import { DROP_REASONS } from '../../datapath/backend/types.js';
import { USER_DOCS, codeSpans, readRepo, tables } from './markdown.js';

interface Registered {
  name: string;
  type: string;
  labels: string[];
  by: 'operator' | 'agent';
}

function registered(): Registered[] {
  const of = (by: Registered['by'], r: ReturnType<typeof createMetrics>['registry']) =>
    r.getMetricsAsArray().map((m) => {
      const x = m as unknown as { name: string; type: string; labelNames?: string[] };
      return { name: x.name, type: String(x.type), labels: [...(x.labelNames ?? [])], by };
    });
  return [
    ...of('operator', createMetrics(true).registry),
    ...of('agent', createAgentMetrics('userspace', 'test').registry),
  ];
}

/** Prefixes written as `name_*` stand for every registered name that starts with them. */
const matches = (doc: string, name: string) =>
  doc === name || (doc.endsWith('_*') && name.startsWith(doc.slice(0, -1)));

/** What is wrong with the `| metric | type | labels | served by | ... |` table of `doc`. */
export function metricsTableProblems(doc: string, regs: Registered[]): string[] {
  const problems: string[] = [];
  const rows = tables(doc, ['metric', 'type', 'labels', 'served by']).flat();
  if (rows.length === 0) return ['no metrics table'];
  const covered = new Set<string>();
  for (const [names = '', type = '', labels = '', by = '', what = ''] of rows) {
    for (const n of codeSpans(names)) {
      const hits = regs.filter((r) => matches(n, r.name));
      if (hits.length === 0) problems.push(`${n}: documented, not registered`);
      for (const r of hits) covered.add(r.name);
      if (n.endsWith('_*')) continue; // a family (process metrics): their types and labels vary
      for (const r of hits) {
        if (r.type !== type.trim()) problems.push(`${n}: documented as ${type}, registered as ${r.type}`);
        if (codeSpans(labels).join(',') !== r.labels.join(','))
          problems.push(
            `${n}: labels documented ${codeSpans(labels).join(',')}, registered ${r.labels.join(',')}`,
          );
        if (r.by !== by.trim()) problems.push(`${n}: documented as served by ${by}, served by ${r.by}`);
      }
      if (n === 'kube_l2tp_session_drops_total')
        for (const reason of DROP_REASONS)
          if (!codeSpans(what).includes(reason)) problems.push(`${n}: reason ${reason} not listed`);
    }
  }
  for (const r of regs) if (!covered.has(r.name)) problems.push(`${r.name}: registered, not documented`);
  return problems;
}

const regs = registered();
const install = readRepo('docs/install.md');

describe('metrics in the documentation', () => {
  it('docs/install.md documents every metric the operator and the agent register, as registered', () => {
    assert.ok(regs.length > 10);
    assert.deepEqual(metricsTableProblems(install, regs), []);
  });

  it('every kube_l2tp_ name in the user documents is a registered metric (or a prefix of some)', () => {
    for (const file of USER_DOCS) {
      for (const m of readRepo(file).matchAll(/kube_l2tp_[a-z0-9_]*\*?/g)) {
        const name = m[0].replace(/_?\*?$/, (s) => (s ? '_*' : ''));
        assert.ok(
          regs.some((r) => matches(name, r.name)),
          `${file}: ${m[0]} is not a metric the code registers`,
        );
      }
    }
  });

  it('catches a table that drifted from the code', () => {
    const renamed = install.replace('`kube_l2tp_leader`', '`kube_l2tp_is_leader`');
    assert.deepEqual(metricsTableProblems(renamed, regs), [
      'kube_l2tp_is_leader: documented, not registered',
      'kube_l2tp_leader: registered, not documented',
    ]);
    const labels = install.replace('| `verb`, `resource`, `code` |', '| `verb`, `code` |');
    assert.match(metricsTableProblems(labels, regs).join('\n'), /api_requests_total: labels documented/);
    const reason = install.replace('`badChecksum` |', '|');
    assert.match(metricsTableProblems(reason, regs).join('\n'), /reason badChecksum not listed/);
    const extra = regs.concat({ name: 'kube_l2tp_new_total', type: 'counter', labels: [], by: 'agent' });
    assert.deepEqual(metricsTableProblems(install, extra), [
      'kube_l2tp_new_total: registered, not documented',
    ]);
  });
});
