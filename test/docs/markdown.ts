// Small Markdown readers for the tests that hold the user documentation to the code: tables, code
// spans, headings, links. Only what those documents use (GitHub-flavoured pipes, backticks).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..', '..');
export const readRepo = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

/** The documents a user reads (README, install guide, chart README, SECURITY, operator README). */
export const USER_DOCS = [
  'README.md',
  'SECURITY.md',
  'docs/install.md',
  'docs/reliability-report.md',
  'deploy/helm/kube-l2tp/README.md',
  'operator/README.md',
] as const;

/** The text inside each `code span` of a piece of Markdown (fenced blocks left out), in order. */
export function codeSpans(md: string): string[] {
  const prose = md.replace(/^\s*```[^\n]*\n[\s\S]*?^\s*```\s*$/gm, '');
  return [...prose.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

/** A table row's cells, with pipes inside code spans kept (`a|b`). */
function cells(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let code = false;
  for (const ch of line.trim().replace(/^\|/, '').replace(/\|$/, '')) {
    if (ch === '`') code = !code;
    if (ch === '|' && !code) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/** Every table whose header row's first cells are `header`: its body rows as cells. */
export function tables(md: string, header: string[]): string[][][] {
  const lines = md.split('\n');
  const found: string[][][] = [];
  for (let i = 0; i < lines.length; i++) {
    const h = cells(lines[i]!);
    if (!lines[i]!.trim().startsWith('|') || !header.every((x, j) => h[j] === x)) continue;
    const rows: string[][] = [];
    for (let j = i + 2; j < lines.length && lines[j]!.trim().startsWith('|'); j++)
      rows.push(cells(lines[j]!));
    found.push(rows);
  }
  return found;
}

/** GitHub's anchor for a heading. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-');
}

export function headings(md: string): string[] {
  // headings outside fenced code blocks
  const out: string[] = [];
  let fence = false;
  for (const line of md.split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    else if (!fence) {
      const m = /^#{1,6}\s+(.*)$/.exec(line);
      if (m) out.push(m[1]!);
    }
  }
  return out;
}
