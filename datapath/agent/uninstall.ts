// What the agent does when it stops: the uninstall procedure (docs/install.md) annotates every
// L2TPNodeState with UNINSTALL_ANNOTATION before it deletes the datapath pods; a node that carries
// nothing any more (no endpoints, or the Node deleted) has its node state emptied, then deleted before
// its pod, so its agent removes the devices whether it is running or stopping. An agent that stops
// otherwise (rolling update, node drain, crash) leaves every device in place for the next agent, as
// the design requires.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GROUP, type L2TPNodeState } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';
import { SECCOMP_PROFILE_FILE } from '../seccomp/profile.js';
import { CNI_BINARY } from './install-cni.js';

export const UNINSTALL_ANNOTATION = `${GROUP}/uninstall`;

/** keep: devices stay for the next agent; release: devices go; uninstall: devices and node files go. */
export type StopAction = 'keep' | 'release' | 'uninstall';

/**
 * What a stopping agent does, from the node's shards read just now (undefined: the read failed).
 * No shard at all means the node carries nothing: a running agent removes everything for that, and
 * a SIGTERM that arrives before the watch event must not keep it.
 */
export function stopAction(shards: Pick<L2TPNodeState, 'metadata'>[] | undefined): StopAction {
  if (shards === undefined) return 'keep';
  if (shards.length === 0) return 'release';
  return shards[0]!.metadata.annotations?.[UNINSTALL_ANNOTATION] === 'true' ? 'uninstall' : 'keep';
}

export interface NodeFiles {
  binDir: string;
  confDir: string;
  /** Attachment records of the CNI plugin. */
  stateDir: string;
  /** The node's directory of the agent's seccomp profile (Localhost profile), when mounted. */
  seccompDir?: string;
  logger: Logger;
}

export interface NodeCleanup {
  removed: string[];
  /** Attachments still recorded: pods attached to pseudowires that were not deleted first. */
  attached: string[];
}

/**
 * Removes what the agent installed on the node: the reference CNI config, the agent's seccomp
 * profile (no agent starts after this one), and, when no pod is attached any more, the CNI
 * executable and the attachment records. With pods still attached the
 * executable stays: with no agent behind it, it answers their DEL with success (best effort), so
 * those pods can still be deleted; remove it by hand after them.
 */
export async function cleanNodeFiles(o: NodeFiles): Promise<NodeCleanup> {
  const removed: string[] = [];
  const conf = join(o.confDir, 'kube-l2tp.d');
  await rm(conf, { recursive: true, force: true });
  removed.push(conf);
  if (o.seccompDir) {
    // the file only: the directory is the pod's mount of the node's kube-l2tp directory
    const profile = join(o.seccompDir, SECCOMP_PROFILE_FILE);
    await rm(profile, { force: true });
    removed.push(profile);
  }
  let records: string[] = [];
  try {
    records = (await readdir(o.stateDir)).filter((f) => f.endsWith('.json'));
  } catch {
    // no records directory: nothing was ever attached
  }
  const attached = records.map((f) => f.replace(/\.json$/, ''));
  if (attached.length > 0) {
    o.logger.warn(
      { attached },
      'pods are still attached to pseudowires: the CNI executable stays so their DEL succeeds; remove it after them',
    );
    return { removed, attached };
  }
  const shim = join(o.binDir, CNI_BINARY);
  await rm(shim, { force: true });
  await rm(o.stateDir, { recursive: true, force: true });
  removed.push(shim, o.stateDir);
  o.logger.info({ removed }, 'removed what kube-l2tp installed on this node');
  return { removed, attached };
}
