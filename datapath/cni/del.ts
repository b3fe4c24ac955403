// CNI DEL: idempotent and best effort. The links and the IPAM release run together; a link that
// exists and cannot be removed fails the DEL (the runtime retries), an IPAM release that fails
// does not (the record stays marked for GC to retry it).
import type { PseudowireRef } from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { delegateCall, findIpam, netnsReachable, pwKey, type Ctx } from './context.js';
import { execDelegate } from './ipam.js';
import { deleteLink, moveBack, ownedBridge, removeBridgeIfUnused } from './links.js';
import { names, type Netns } from './netops.js';
import type { AttachmentRecord } from './state.js';

export async function cmdDel(c: Ctx): Promise<undefined> {
  const { cmd, conf, deps } = c;
  const rec = await deps.store.get(cmd.containerID, cmd.ifname);
  // links and the IPAM release are independent: both run, together
  const [links, ipam] = await Promise.allSettled([
    releaseAttachment(c, rec, {
      // without a record no device was moved: only a bridge port can be left (DEL reads no "mode")
      mode: rec?.mode ?? 'bridge',
      pseudowire: rec?.pseudowire ?? conf.pseudowire,
      containerID: cmd.containerID,
      ifname: cmd.ifname,
      netns: cmd.netns !== '' ? c.ns : (rec?.netns ?? ''),
      ...(cmd.netns !== '' && c.nsError ? { netnsError: c.nsError } : {}),
    }),
    releaseIpam(c),
  ]);
  // A link that exists and cannot be removed is a real failure: the runtime retries, the record stays.
  if (links.status === 'rejected') throw links.reason;
  if (ipam.status === 'rejected') {
    // A DEL that can never succeed leaves a sandbox the runtime retries for ever; an address whose
    // release failed only stays allocated (nobody else gets it). So the DEL succeeds, says so, and
    // the record stays marked for GC to try the release again.
    const e = CniError.from(ipam.reason);
    c.log.error(
      { ipam: conf.ipam?.type, code: e.code, err: e.message, details: e.details },
      'IPAM release failed; DEL succeeds anyway, the address stays allocated until a GC releases it',
    );
    if (rec) {
      try {
        await deps.store.put({ ...rec, ipamReleasePending: true });
        return undefined;
      } catch (pe) {
        c.log.warn({ err: (pe as Error).message }, 'could not mark the attachment for a later IPAM release');
      }
    }
  }
  try {
    await deps.store.remove(cmd.containerID, cmd.ifname);
  } catch (e) {
    // the links are gone: an unwritable state dir must not make the DEL fail for ever
    c.log.warn({ err: (e as Error).message }, 'could not remove the attachment record');
  }
  return undefined;
}

/** The IPAM delegate's DEL, when the config has IPAM. */
async function releaseIpam(c: Ctx): Promise<void> {
  if (c.conf.ipamRefused !== undefined) {
    c.log.warn(
      { err: c.conf.ipamRefused },
      'IPAM not released: the network config names an IPAM the agent refuses, so no ADD allocated anything with it',
    );
  }
  if (!c.conf.ipam) return;
  const plugin = await findIpam(c, c.conf.ipam.type);
  await execDelegate(delegateCall(c, 'DEL', plugin));
}

interface Release {
  mode: 'bridge' | 'exclusive';
  pseudowire: PseudowireRef;
  containerID: string;
  ifname: string;
  netns: Netns;
  /** The shim could not open the netns (gone, most likely). */
  netnsError?: unknown;
}

/** Undo an attachment's links (DEL, and GC of stale records). Missing netns, links or bridge are success. */
export async function releaseAttachment(
  c: Ctx,
  rec: AttachmentRecord | undefined,
  a: Release,
): Promise<void> {
  if (a.mode === 'bridge') {
    // The pod end goes with it. The per-pseudowire bridge stays (as the reference bridge plugin's does):
    // it belongs to the pseudowire, and the agent removes it with releasePseudowireBridge. When the
    // pseudowire already left this node while pods were attached, the last DEL takes the bridge along.
    await deleteLink(names.hostVeth(a.containerID, a.ifname));
    const pw = await c.deps.resolver.lookup(a.pseudowire).catch(() => 'unknown' as const);
    if (pw === undefined) {
      const bridge = rec?.bridge ?? names.legacyBridge(a.pseudowire.namespace, a.pseudowire.name);
      if (ownedBridge(bridge, a.pseudowire))
        await c.deps.locker.withLock(pwKey(a.pseudowire), () => removeBridgeIfUnused(bridge));
    }
    return;
  }
  // exclusive: only a recorded attachment owns the device (after a failed ADD the pod's CNI_IFNAME is not ours)
  if (rec === undefined || !netnsReachable(a.netns, a.netnsError)) return;
  // the session's MTU now, or as recorded when the agent cannot say it (not synced since a restart)
  const pw = await c.deps.resolver.lookup(a.pseudowire).catch(() => undefined);
  const mtu = pw?.mtu ?? rec.deviceMtu;
  await c.deps.locker.withLock(pwKey(a.pseudowire), async () => {
    try {
      await moveBack(c, a.netns, a.ifname, rec.device, mtu, rec.deviceMac);
    } catch (e) {
      throw new CniError(
        CniCode.LinkSetupFailed,
        `returning ${a.ifname} to the node as ${rec.device}: ${(e as Error).message}`,
      );
    }
  });
}
