// The user documents' references resolve: relative links and their anchors, the repository files and
// folders they name in code spans, and the sections they send the reader to ("docs/install.md, Sizing").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { USER_DOCS, codeSpans, headings, readRepo, repoRoot, slug } from './markdown.js';

const TOP = [
  'bench',
  'cmd',
  'crds',
  'datapath',
  'deploy',
  'docs',
  'examples',
  'image',
  'lib',
  'operator',
  'scripts',
  'test',
];

/** A repository path named in a document exists (dist/X.js: its source X.ts; X.js of bench/: X.ts). */
export function pathExists(p: string, exists: (p: string) => boolean = (q) => existsSync(join(repoRoot, q))) {
  const q = p.replace(/\/$/, '').replace(/^dist\//, '');
  return exists(q) || (q.endsWith('.js') && exists(q.replace(/\.js$/, '.ts')));
}

/** Code spans of `doc` that name a file or folder of the repository (by its top-level folder). */
export function repoPaths(doc: string): string[] {
  return codeSpans(doc)
    .flatMap((s) => s.split(/\s+/))
    .map((s) => s.replace(/[),;:]+$/, ''))
    .filter(
      (s) => /^(dist\/)?[a-z-]+\/[\w./-]*$/.test(s) && TOP.includes(s.replace(/^dist\//, '').split('/')[0]!),
    )
    .filter((s) => !/\.\.\.|\.{2}$|\*/.test(s));
}

/** Section references in prose: `(docs/install.md, Sizing)`, `(SECURITY.md, "What a node exposes")`. */
export function sectionRefs(doc: string): { file: string; section: string }[] {
  const out: { file: string; section: string }[] = [];
  const re = /`?(docs\/install\.md|SECURITY\.md|README)`?, "?([A-Za-z][\w` -]*?)"?(?=[),;.])/g;
  for (const m of doc.matchAll(re))
    out.push({ file: m[1] === 'README' ? 'README.md' : m[1]!, section: m[2]!.replace(/`/g, '') });
  return out;
}

/** A section is a heading that starts with its name, or a bold lead-in (`**Name**`). */
export function hasSection(target: string, section: string): boolean {
  return (
    headings(target).some((h) => h.replace(/`/g, '').startsWith(section)) ||
    target.replace(/`/g, '').includes(`**${section}`)
  );
}

describe('references in the user documents', () => {
  it('relative links and anchors resolve', () => {
    const broken: string[] = [];
    for (const file of USER_DOCS) {
      for (const m of readRepo(file).matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1]!;
        if (/^[a-z]+:/.test(link)) continue;
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path ? normalize(join(dirname(file), path)) : file;
        if (!existsSync(join(repoRoot, target))) broken.push(`${file}: ${link}`);
        else if (anchor && target.endsWith('.md') && !headings(readRepo(target)).map(slug).includes(anchor))
          broken.push(`${file}: ${link} (no such heading)`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('files and folders named in code spans exist', () => {
    const missing = USER_DOCS.flatMap((file) =>
      repoPaths(readRepo(file))
        .filter((p) => !pathExists(p))
        .map((p) => `${file}: ${p}`),
    );
    assert.deepEqual(missing, []);
  });

  it('sections a document sends the reader to exist', () => {
    const refs = USER_DOCS.flatMap((file) => sectionRefs(readRepo(file)).map((r) => ({ ...r, from: file })));
    assert.ok(refs.length >= 5, JSON.stringify(refs));
    const bad = refs.filter((r) => !hasSection(readRepo(r.file), r.section));
    assert.deepEqual(
      bad.map((r) => `${r.from}: ${r.file}, ${r.section}`),
      [],
    );
  });

  it('the checks can fail', () => {
    assert.equal(pathExists('bench/agent.js'), true);
    assert.equal(pathExists('dist/operator/main.js'), true);
    assert.equal(pathExists('bench/memory-limit.ts'), false);
    assert.deepEqual(repoPaths('see `operator/nothing.ts` and `l2tp.kube-l2tp.io/node`'), [
      'operator/nothing.ts',
    ]);
    const [ref] = sectionRefs('(docs/install.md, eBPF datapath throughput)');
    assert.deepEqual(ref, { file: 'docs/install.md', section: 'eBPF datapath throughput' });
    assert.equal(hasSection(readRepo('docs/install.md'), ref!.section), false);
    assert.equal(hasSection(readRepo('docs/install.md'), 'Throughput of the eBPF datapath'), true);
  });
});
