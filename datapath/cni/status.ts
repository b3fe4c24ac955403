// CNI STATUS: ready once the agent has synced this node's state, and the IPAM delegate agrees.
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { delegateCall, findIpam, type Ctx } from './context.js';
import { execDelegate } from './ipam.js';

export async function cmdStatus(c: Ctx): Promise<undefined> {
  if (!c.deps.resolver.ready()) {
    throw new CniError(CniCode.NotAvailable, 'kube-l2tp node agent is not ready (node state not synced yet)');
  }
  if (c.conf.ipam && c.cmd.path.length > 0) {
    const plugin = await findIpam(c, c.conf.ipam.type);
    await execDelegate(delegateCall(c, 'STATUS', plugin));
  }
  return undefined;
}
