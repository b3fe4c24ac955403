// Every `kube-l2tp-operator ...` and `kube-l2tp-datapath ...` command line in the user documents and
// the examples uses only options its command parses (node:util parseArgs in the command's source).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { USER_DOCS, readRepo, repoRoot } from './markdown.js';

/** Option names of the parseArgs calls in `source` (between `from` and `to` when given). */
function options(source: string, from?: string, to?: string): Set<string> {
  const start = from ? source.indexOf(from) : 0;
  const end = to ? source.indexOf(to, start) : source.length;
  assert.ok(start >= 0 && end > start, `${from} ... ${to}`);
  const part = source.slice(start, end);
  return new Set(
    [...part.matchAll(/[\s{,]'?([a-z][a-z-]*)'?: \{\s*type: '(?:string|boolean)'/g)].map((m) => m[1]!),
  );
}

function commands(): Map<string, Set<string>> {
  const main = readRepo('operator/main.ts');
  return new Map([
    ['kube-l2tp-operator mirror', options(main, "argv[0] === 'mirror'", "argv[0] === 'uninstall'")],
    [
      'kube-l2tp-operator uninstall',
      options(readRepo('operator/uninstall.ts'), 'export async function uninstallCommand'),
    ],
    ['kube-l2tp-operator', options(main, "argv[0] === 'uninstall'")],
    ['kube-l2tp-datapath agent', options(readRepo('datapath/agent/command.ts'))],
    ['kube-l2tp-datapath static', options(readRepo('datapath/static/command.ts'))],
    ['kube-l2tp-datapath seccomp-profile', options(readRepo('datapath/seccomp/install.ts'))],
  ]);
}

/** Command lines in a document: each use of a command, its usage continuation lines joined. */
export function commandLines(doc: string): string[] {
  const joined = doc.replace(/\n\s+(?=\[--)/g, ' ');
  return [...joined.matchAll(/kube-l2tp-(?:operator|datapath)\b[^`\n]*/g)].map((m) => m[0]);
}

/** Options a command line uses that its command does not parse. */
export function unknownOptions(line: string, cmds: Map<string, Set<string>>): string[] {
  const name = [...cmds.keys()]
    .sort((a, b) => b.length - a.length)
    .find((c) => line.startsWith(`${c} `) || line === c);
  if (!name) return [];
  const used = [...line.slice(name.length).matchAll(/(?:^|[\s[])--([a-z][a-z-]*)/g)].map((m) => m[1]!);
  return used.filter((o) => !cmds.get(name)!.has(o)).map((o) => `${name} --${o}`);
}

describe('command lines in the documentation', () => {
  const cmds = commands();

  it('each command parses options (the source is read right)', () => {
    for (const [c, o] of cmds) assert.ok(o.size > 0, c);
    assert.ok(cmds.get('kube-l2tp-operator mirror')!.has('local-address'));
    assert.ok(cmds.get('kube-l2tp-datapath static')!.has('config'));
  });

  it('every option a document or example gives a command exists', () => {
    const files = [
      ...USER_DOCS,
      ...readdirSync(join(repoRoot, 'examples'), { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ya?ml|sh)$/.test(f))
        .map((f) => `examples/${f}`),
    ];
    const lines = files.flatMap((f) => commandLines(readRepo(f)).map((l) => ({ f, l })));
    assert.ok(lines.filter((x) => / --/.test(x.l)).length >= 5, JSON.stringify(lines));
    const bad = lines.flatMap(({ f, l }) => unknownOptions(l, cmds).map((u) => `${f}: ${u}`));
    assert.deepEqual(bad, []);
  });

  it('catches an option that does not exist', () => {
    assert.deepEqual(unknownOptions('kube-l2tp-operator mirror -f a.yaml --node b --peer-address c', cmds), [
      'kube-l2tp-operator mirror --peer-address',
    ]);
    assert.deepEqual(unknownOptions('kube-l2tp-datapath static --config f --backend auto', cmds), []);
  });
});
