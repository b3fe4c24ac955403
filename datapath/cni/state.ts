// Per-attachment records (for DEL without prevResult, and for GC) and locking.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { PodDevice } from '../backend/types.js';

export const DEFAULT_STATE_DIR = '/var/lib/cni/kube-l2tp';

export const attachmentRecordSchema = z.object({
  v: z.literal(1),
  network: z.string(),
  containerID: z.string(),
  ifname: z.string(),
  netns: z.string(),
  mode: z.enum(['bridge', 'exclusive']),
  pseudowire: z.object({ namespace: z.string(), name: z.string() }),
  /** The node-side device: the l2tpeth (exclusive: its name before it moved) */
  device: z.string(),
  /** Exclusive mode: the device's MAC before it moved (restored on DEL). */
  deviceMac: z.string().optional(),
  /**
   * Exclusive mode: the session's MTU when the device moved (restored on DEL when the agent cannot
   * say it yet: before its first sync after a restart).
   */
  deviceMtu: z.number().int().positive().optional(),
  /**
   * The MTU of the pod's interface as ADD made it or the agent last brought it to (it follows the
   * session's MTU). Absent in records of earlier releases: the agent reads the pod's interface.
   */
  mtu: z.number().int().positive().optional(),
  /** The network config's own "mtu": the pod keeps it while the session carries more. */
  configMtu: z.number().int().positive().optional(),
  bridge: z.string().optional(),
  hostVeth: z.string().optional(),
  /** Config the IPAM delegate got on ADD (GC and DEL without config reuse it). */
  ipamConfig: z.record(z.string(), z.unknown()).optional(),
  cniPath: z.array(z.string()).optional(),
  createdAt: z.string(),
  /**
   * DEL removed the links but the IPAM delegate could not release the address: the record stays
   * so that GC tries the release again; the attachment itself is gone.
   */
  ipamReleasePending: z.boolean().optional(),
});
export type AttachmentRecord = z.infer<typeof attachmentRecordSchema>;

export class AttachmentStore {
  private made = false;
  /** current()'s and podDevice's index, as of the directory's modification time. */
  private index:
    | {
        mtime: bigint;
        records: AttachmentRecord[];
        byDevice: Map<string, PodDevice>;
        settled: boolean;
      }
    | undefined;
  constructor(readonly dir: string) {}

  private file(containerID: string, ifname: string): string {
    return join(this.dir, `${containerID}_${ifname}.json`);
  }

  async put(rec: AttachmentRecord): Promise<void> {
    if (!this.made) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      this.made = true;
    }
    const f = this.file(rec.containerID, rec.ifname);
    await writeFile(`${f}.tmp`, JSON.stringify(rec));
    await rename(`${f}.tmp`, f);
  }

  /** Whether a record exists (sync: one stat, on the ADD critical path). */
  has(containerID: string, ifname: string): boolean {
    return existsSync(this.file(containerID, ifname));
  }

  async get(containerID: string, ifname: string): Promise<AttachmentRecord | undefined> {
    try {
      return attachmentRecordSchema.parse(JSON.parse(await readFile(this.file(containerID, ifname), 'utf8')));
    } catch {
      return undefined;
    }
  }

  async remove(containerID: string, ifname: string): Promise<void> {
    await rm(this.file(containerID, ifname), { force: true });
  }

  async list(): Promise<AttachmentRecord[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: AttachmentRecord[] = [];
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(attachmentRecordSchema.parse(JSON.parse(await readFile(join(this.dir, f), 'utf8'))));
      } catch {
        // a torn or foreign file: ignore
      }
    }
    return out;
  }

  /**
   * Every record (not those DEL already took apart), read again only when the directory changed
   * (every write renames a file into it): the agent asks on every pass, a node may hold many pods.
   */
  async current(): Promise<readonly AttachmentRecord[]> {
    const mtime = await stat(this.dir, { bigint: true }).then(
      (s) => s.mtimeNs,
      () => undefined,
    );
    if (mtime === undefined) {
      this.index = undefined;
      return [];
    }
    let index = this.index;
    if (index?.mtime !== mtime || !index.settled) {
      const records = (await this.list()).filter((r) => !r.ipamReleasePending);
      const byDevice = new Map<string, PodDevice>();
      for (const r of records)
        if (r.mode === 'exclusive') byDevice.set(r.device, { netns: r.netns, ifname: r.ifname });
      // file times advance by clock ticks: a change in the tick of the read could leave the time as
      // it was, so an index is trusted only once its directory has been quiet for a second
      const settled = BigInt(Date.now()) * 1_000_000n - mtime > 1_000_000_000n;
      this.index = index = { mtime, records, byDevice, settled };
    }
    return index.records;
  }

  /**
   * The pod an exclusive attachment moved the node's device `device` into: its netns and name there.
   * Asked for every session whose device is not on the node (all of them when a node starts anew).
   */
  async podDevice(device: string): Promise<PodDevice | undefined> {
    await this.current();
    return this.index?.byDevice.get(device);
  }
}

export interface Locker {
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Whether someone holds (or waits for) `key` now: a caller about to wait can say so. */
  held(key: string): boolean;
}

/** Keyed async mutex for one process (the agent serves every CNI call). */
export class ProcessLocker implements Locker {
  private readonly tails = new Map<string, Promise<unknown>>();

  held(key: string): boolean {
    return this.tails.has(key);
  }

  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Cross-process lock files (O_EXCL) for the in-process entry point, where each call is its own process. */
export class FileLocker implements Locker {
  constructor(
    readonly dir: string,
    readonly staleMs = 30_000,
  ) {}

  private file(key: string): string {
    return join(this.dir, `${key.replace(/[^a-zA-Z0-9_.-]/g, '_')}.lock`);
  }

  held(key: string): boolean {
    return existsSync(this.file(key));
  }

  async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const f = this.file(key);
    const t0 = Date.now();
    for (;;) {
      try {
        const h = await open(f, 'wx');
        await h.writeFile(String(process.pid));
        await h.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let holder = 0;
        try {
          holder = Number(await readFile(f, 'utf8'));
        } catch {
          continue;
        }
        let alive = true; // an empty file is a lock being taken right now
        try {
          if (holder > 0) process.kill(holder, 0);
        } catch {
          alive = false;
        }
        if (!alive || Date.now() - t0 > this.staleMs) await rm(f, { force: true });
        else await new Promise((r) => setTimeout(r, 3));
      }
    }
    try {
      return await fn();
    } finally {
      await rm(f, { force: true });
    }
  }
}
