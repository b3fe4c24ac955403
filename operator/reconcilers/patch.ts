// Writes that change only what differs: status through the status subresource as a merge patch,
// finalizers guarded by resourceVersion.
import type { KObject } from '../../lib/api/schemas.js';
import { deepEqual } from '../../lib/deep-equal.js';
import { isNotFound, type KubeApi } from '../../lib/kube/client.js';
import { FINALIZER } from '../render.js';

/** A merge patch from `prev` to `next` that also removes keys `next` dropped (null). */
export function mergePatchFrom(prev: object | undefined, next: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...next };
  for (const k of Object.keys(prev ?? {})) if (!(k in next)) out[k] = null;
  return out;
}

/** Writes the status when it differs; true when it wrote. */
export async function writeStatus(
  client: Pick<KubeApi, 'patch'>,
  path: string,
  obj: { status?: object | undefined },
  next: object,
): Promise<boolean> {
  if (deepEqual(obj.status ?? {}, next)) return false;
  await client.patch(`${path}/status`, { status: mergePatchFrom(obj.status, next) });
  return true;
}

export async function setFinalizers(
  client: Pick<KubeApi, 'patch'>,
  path: string,
  obj: KObject,
  finalizers: string[],
): Promise<void> {
  await client.patch(path, { metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion } });
}

/** Adds our finalizer; the update event brings the object back to its reconciler. */
export const addFinalizer = (client: Pick<KubeApi, 'patch'>, path: string, obj: KObject) =>
  setFinalizers(client, path, obj, [...(obj.metadata.finalizers ?? []), FINALIZER]);

/** Drops our finalizer: the API server then deletes the object. */
export const removeFinalizer = (client: Pick<KubeApi, 'patch'>, path: string, obj: KObject) =>
  setFinalizers(
    client,
    path,
    obj,
    (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
  );

/** Delete that treats an object already gone as done. */
export async function deleteIfExists(
  client: Pick<KubeApi, 'delete'>,
  path: string,
  opts?: { gracePeriodSeconds?: number; uid?: string },
): Promise<void> {
  await client.delete(path, opts).catch((e: unknown) => {
    if (!isNotFound(e)) throw e;
  });
}
