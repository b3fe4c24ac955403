// What a cluster with this prefix could leave on the machine after stop(): network namespaces,
// processes, mounts, cgroups, /run directories and links in the root namespace. An empty list means
// the machine is as before; the e2e suite asserts it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCapture } from '../../../lib/exec.js';
import { cgroupHierarchies } from './node.js';

export async function leftovers(prefix: string): Promise<string[]> {
  const left: string[] = [];
  const ns = await runCapture('ip', ['netns', 'list']);
  for (const l of ns.stdout.split('\n')) {
    const name = l.split(' ')[0] ?? '';
    if (name.startsWith(`${prefix}-`)) left.push(`netns ${name}`);
  }
  const links = await runCapture('ip', ['-o', 'link', 'show']);
  for (const l of links.stdout.split('\n')) {
    const name = l.split(':')[1]?.trim().split('@')[0] ?? '';
    if (name.startsWith(`${prefix}-`)) left.push(`link ${name}`);
  }
  const marks = [`/run/${prefix}-n`, `${prefix}-cluster-`];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (marks.some((m) => cmd.includes(m))) left.push(`process ${pid} ${cmd.slice(0, 120)}`);
  }
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mnt = l.split(' ')[4] ?? '';
    if (marks.some((m) => mnt.includes(m))) left.push(`mount ${mnt}`);
  }
  for (const h of cgroupHierarchies()) {
    for (const e of readdirSync(h, { withFileTypes: true }))
      if (e.isDirectory() && e.name.startsWith(`${prefix}-node`)) left.push(`cgroup ${join(h, e.name)}`);
  }
  if (existsSync('/run'))
    for (const e of readdirSync('/run')) if (e.startsWith(`${prefix}-n`)) left.push(`directory /run/${e}`);
  return left;
}
