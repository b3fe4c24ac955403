// A PseudowireResolver from a table (tests, benchmarks, the in-process entry point), optionally
// backed by a JSON file that is re-read when it changes:
//   {"ready": true, "pseudowires": {"ns/name": {"ifname","mtu","tunnelId","sessionId","up",
//     "mode"?, "allowedNamespaces"?}}}
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import type { PseudowireDevice, PseudowireRef, PseudowireResolver } from '../../lib/agent-protocol.js';

export const resolverFileSchema = z.object({
  ready: z.boolean().default(true),
  pseudowires: z.record(
    z.string(),
    z.object({
      ifname: z.string(),
      mtu: z.number().int(),
      tunnelId: z.number().int(),
      sessionId: z.number().int(),
      up: z.boolean(),
      mode: z.enum(['bridge', 'exclusive']).default('bridge'),
      allowedNamespaces: z.array(z.string()).optional(),
    }),
  ),
});
export type ResolverFile = z.infer<typeof resolverFileSchema>;

export class StaticResolver implements PseudowireResolver {
  constructor(
    public table: Map<string, PseudowireDevice> = new Map(),
    public isReady = true,
  ) {}

  set(ref: PseudowireRef, dev: PseudowireDevice): void {
    this.table.set(`${ref.namespace}/${ref.name}`, dev);
  }
  ready(): boolean {
    return this.isReady;
  }
  lookup(ref: PseudowireRef): Promise<PseudowireDevice | undefined> {
    return Promise.resolve(this.table.get(`${ref.namespace}/${ref.name}`));
  }
}

export class FileResolver implements PseudowireResolver {
  private mtimeMs = -1;
  private data: ResolverFile = { ready: false, pseudowires: {} };
  constructor(readonly file: string) {}

  private load(): ResolverFile {
    try {
      const st = statSync(this.file);
      if (st.mtimeMs !== this.mtimeMs) {
        this.data = resolverFileSchema.parse(JSON.parse(readFileSync(this.file, 'utf8')));
        this.mtimeMs = st.mtimeMs;
      }
    } catch {
      this.data = { ready: false, pseudowires: {} };
      this.mtimeMs = -1;
    }
    return this.data;
  }
  ready(): boolean {
    return this.load().ready;
  }
  lookup(ref: PseudowireRef): Promise<PseudowireDevice | undefined> {
    const e = this.load().pseudowires[`${ref.namespace}/${ref.name}`];
    if (!e) return Promise.resolve(undefined);
    const { allowedNamespaces, ...rest } = e;
    return Promise.resolve({ ...rest, ...(allowedNamespaces ? { allowedNamespaces } : {}) });
  }
}
