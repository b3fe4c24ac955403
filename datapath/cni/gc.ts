// CNI GC: every recorded attachment of this network that the runtime no longer lists is released
// (links, IPAM, record), then the IPAM delegate's own GC; failures are collected, not fatal midway.
// A config whose ipam the agent refuses still has its stale attachments' links released, as DEL does.
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { attachmentKey, delegateCall, findIpam, type Ctx } from './context.js';
import { releaseAttachment } from './del.js';
import { execDelegate } from './ipam.js';
import type { AttachmentRecord } from './state.js';

export async function cmdGc(c: Ctx): Promise<undefined> {
  const { conf, deps } = c;
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const stale = (await deps.store.list()).filter(
    (r) => r.network === conf.name && !valid.has(`${r.containerID}/${r.ifname}`),
  );
  const failures: string[] = [];
  if (conf.ipamRefused !== undefined) {
    c.log.warn(
      { err: conf.ipamRefused },
      'IPAM not garbage-collected: the network config names an IPAM the agent refuses, so no ADD allocated anything with it',
    );
  }
  const ipamPlugin = conf.ipam ? await findIpam(c, conf.ipam.type) : undefined;
  for (const r of stale) {
    try {
      await deps.locker.withLock(attachmentKey(r.containerID, r.ifname), () =>
        releaseStale(c, r, ipamPlugin),
      );
      c.log.info({ gc: `${r.containerID}/${r.ifname}` }, 'stale attachment removed');
    } catch (e) {
      failures.push(`${r.containerID}/${r.ifname}: ${(e as Error).message}`);
    }
  }
  if (ipamPlugin) {
    try {
      await execDelegate(delegateCall(c, 'GC', ipamPlugin));
    } catch (e) {
      failures.push(`ipam GC: ${(e as Error).message}`);
    }
  }
  if (failures.length > 0) {
    throw new CniError(CniCode.Internal, `GC: ${failures.length} cleanup(s) failed`, failures.join('; '));
  }
  return undefined;
}

/** One stale attachment's links, IPAM lease and record. */
async function releaseStale(c: Ctx, r: AttachmentRecord, ipamPlugin: string | undefined): Promise<void> {
  await releaseAttachment(c, r, { ...r });
  if (ipamPlugin) {
    const env = { ...c.env, CNI_CONTAINERID: r.containerID, CNI_IFNAME: r.ifname, CNI_NETNS: '' };
    await execDelegate({
      command: 'DEL',
      plugin: ipamPlugin,
      config: r.ipamConfig ?? c.conf.raw,
      env,
      logger: c.log,
    });
  }
  await c.deps.store.remove(r.containerID, r.ifname);
}
