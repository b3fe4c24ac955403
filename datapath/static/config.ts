// The static-mode configuration file: YAML with the vocabulary of `ip l2tp`, camelCased.
// Everything is validated before anything is created; errors name the field path and the reason.
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import {
  sessionParamsSchema,
  tunnelParamsSchema,
  type SessionParams,
  type TunnelParams,
} from '../../lib/wire/session.js';

export interface StaticTunnel extends TunnelParams {
  sessions: SessionParams[];
}
export interface StaticConfig {
  tunnels: StaticTunnel[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Path = (string | number)[];

function fmtPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s || '(top level)';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function check<T>(schema: z.ZodType<T>, value: unknown, at: Path, problems: string[]): T | undefined {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  for (const issue of r.error.issues) problems.push(`${fmtPath([...at, ...issue.path])}: ${issue.message}`);
  return undefined;
}

/** Validate an already-parsed document. */
export function validateStaticConfig(doc: unknown): StaticConfig {
  const problems: string[] = [];
  if (!isRecord(doc)) throw new ConfigError(['(top level): must be a mapping with a "tunnels" list']);
  for (const k of Object.keys(doc)) if (k !== 'tunnels') problems.push(`${k}: unknown field`);
  const list = doc.tunnels;
  if (!Array.isArray(list) || list.length === 0) {
    problems.push('tunnels: must be a non-empty list');
    throw new ConfigError(problems);
  }
  const tunnels: StaticTunnel[] = [];
  list.forEach((raw: unknown, i) => {
    if (!isRecord(raw)) return void problems.push(`tunnels[${i}]: must be a mapping`);
    const { sessions, ...rest } = raw;
    const t = check(tunnelParamsSchema, rest, ['tunnels', i], problems);
    if (!Array.isArray(sessions) || sessions.length === 0) {
      return void problems.push(`tunnels[${i}].sessions: must be a non-empty list`);
    }
    const ss: SessionParams[] = [];
    sessions.forEach((s: unknown, j) => {
      const p = check(sessionParamsSchema, s, ['tunnels', i, 'sessions', j], problems);
      if (p) ss.push(p);
    });
    if (t) tunnels.push({ ...t, sessions: ss });
  });
  crossChecks(tunnels, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return { tunnels };
}

/** Uniqueness rules of the kernel: tunnel IDs, session IDs (global per netns), names, UDP sockets. */
function crossChecks(tunnels: StaticTunnel[], problems: string[]): void {
  const tids = new Map<number, number>();
  const sids = new Map<number, string>();
  const names = new Map<string, string>();
  const sockets = new Map<string, number>();
  tunnels.forEach((t, i) => {
    const prev = tids.get(t.tunnelId);
    if (prev !== undefined)
      problems.push(`tunnels[${i}].tunnelId: ${t.tunnelId} is also used by tunnels[${prev}]`);
    tids.set(t.tunnelId, i);
    if (t.encap === 'udp') {
      const key = `${t.local}:${t.udpSourcePort}`;
      const other = sockets.get(key);
      if (other !== undefined) {
        problems.push(`tunnels[${i}].udpSourcePort: ${key} is also bound by tunnels[${other}]`);
      }
      sockets.set(key, i);
    }
    t.sessions.forEach((s, j) => {
      const here = `tunnels[${i}].sessions[${j}]`;
      const dup = sids.get(s.sessionId);
      if (dup)
        problems.push(`${here}.sessionId: ${s.sessionId} is also used by ${dup} (session IDs are per host)`);
      sids.set(s.sessionId, here);
      if (s.name !== undefined) {
        const n = names.get(s.name);
        if (n) problems.push(`${here}.name: ${s.name} is also used by ${n}`);
        names.set(s.name, here);
      }
    });
  });
}

/** Parse and validate YAML text. */
export function parseStaticConfig(text: string): StaticConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    if (err instanceof YAMLParseError) throw new ConfigError([`YAML: ${err.message.split('\n')[0]}`]);
    // the yaml library also throws ReferenceError for alias bombs (resource exhaustion guard)
    if (err instanceof Error) throw new ConfigError([`YAML: ${err.message.split('\n')[0]}`]);
    throw err;
  }
  return validateStaticConfig(doc);
}
