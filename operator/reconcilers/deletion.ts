// Deleting a tunnel or pseudowire: our finalizer holds the object until no agent reports it any
// more (its sessions are gone from every node), or until the teardown timeout, with a Warning Event.
import type { KObject } from '../../lib/api/schemas.js';
import type { ReconcileContext } from './context.js';
import { removeFinalizer } from './patch.js';

/** True when the finalizer may go: no node still reports the object, or waiting has timed out. */
export async function agentsDone(
  ctx: ReconcileContext,
  obj: KObject,
  reported: string[],
  what: string,
): Promise<boolean> {
  if (!reported.length) return true;
  const d = obj.metadata.deletionTimestamp;
  if (d === undefined || Date.now() - Date.parse(d) <= ctx.cfg.teardownTimeoutMs) return false;
  await ctx.events.record(
    obj,
    'Warning',
    'TeardownTimeout',
    `agents on ${reported.join(', ')} did not confirm the ${what} removal`,
  );
  return true;
}

/** Drops our finalizer (the API server then deletes the object) and frees its IDs. */
export async function finishDeletion(
  ctx: ReconcileContext,
  path: string,
  obj: KObject,
  owner: string,
): Promise<void> {
  await removeFinalizer(ctx.client, path, obj);
  ctx.alloc.release(owner);
}
