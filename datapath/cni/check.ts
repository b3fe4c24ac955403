// CNI CHECK: the attachment is still what ADD returned (prevResult): session up, link present with
// its MTU, MAC and addresses, bridge ports in place, and the IPAM delegate's own CHECK.
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { parseResult } from '../../lib/cni/result.js';
import { parsePrefix } from '../../lib/netlink/rtnl-addr.js';
import { delegateCall, findIpam, lookupPseudowire, pwText, requireNetns, type Ctx } from './context.js';
import { execDelegate } from './ipam.js';
import { bridgeFor } from './links.js';
import { names, node, podLinkInfo } from './netops.js';

export async function cmdCheck(c: Ctx): Promise<undefined> {
  const { cmd, conf } = c;
  if (!conf.prevResult)
    throw new CniError(CniCode.InvalidConfig, 'invalid network config: prevResult: required for CHECK');
  const prev = parseResult(conf.prevResult, 'prevResult', conf.cniVersion);
  const pw = await lookupPseudowire(c);
  if (!pw.up) {
    throw new CniError(
      CniCode.SessionDown,
      `pseudowire: ${pwText(conf.pseudowire)} session ${pw.sessionId} (tunnel ${pw.tunnelId}) is not up`,
    );
  }
  const idx = prev.interfaces.findIndex((i) => i.name === cmd.ifname && i.sandbox === cmd.netns);
  if (idx < 0)
    throw new CniError(
      CniCode.CheckFailed,
      `prevResult: no interface ${cmd.ifname} with sandbox ${cmd.netns}`,
    );
  const want = prev.interfaces[idx]!;
  requireNetns(c, CniCode.CheckFailed);
  const link = await podLinkInfo(c.ns, cmd.ifname);
  if (!link) throw new CniError(CniCode.CheckFailed, `CNI_IFNAME: ${cmd.ifname} is missing in ${cmd.netns}`);
  // A result that states the MTU is what the link must have, or what the agent brought it to since
  // (the session's MTU changed; the record says). One that does not (0.4.0, or a later chained
  // plugin such as tuning changed the MTU and re-encoded the result without it) allows any MTU the
  // pseudowire carries: the spec lets later plugins modify what ADD made.
  const followed = (await c.deps.store.get(cmd.containerID, cmd.ifname))?.mtu;
  if (want.mtu !== undefined && link.mtu !== want.mtu && link.mtu !== followed) {
    throw new CniError(CniCode.CheckFailed, `mtu: ${cmd.ifname} has MTU ${link.mtu}, expected ${want.mtu}`);
  }
  if ((link.mtu ?? 0) > pw.mtu) {
    throw new CniError(
      CniCode.CheckFailed,
      `mtu: ${cmd.ifname} has MTU ${link.mtu}, above the MTU ${pw.mtu} of pseudowire ${pwText(conf.pseudowire)}`,
    );
  }
  if (want.mac && (link.address ?? '').toLowerCase() !== want.mac.toLowerCase()) {
    throw new CniError(
      CniCode.CheckFailed,
      `mac: ${cmd.ifname} has ${link.address}, prevResult says ${want.mac}`,
    );
  }
  for (const ip of prev.ips.filter((i) => i.interface === idx)) {
    const match = sameAddress(ip.address);
    const ok = link.addrs.some((a) => match(a.family, a.local, a.prefixlen));
    if (!ok) throw new CniError(CniCode.CheckFailed, `ips: ${ip.address} is not assigned to ${cmd.ifname}`);
  }
  if (pw.mode === 'bridge') {
    const bridge = bridgeFor(conf.pseudowire, pw);
    const hv = names.hostVeth(cmd.containerID, cmd.ifname);
    if (node.master(hv) !== bridge) {
      throw new CniError(CniCode.CheckFailed, `node veth ${hv} is not a port of bridge ${bridge}`);
    }
    if (node.master(pw.ifname) !== bridge) {
      throw new CniError(
        CniCode.CheckFailed,
        `pseudowire device ${pw.ifname} is not a port of bridge ${bridge}`,
      );
    }
  }
  if (conf.ipam) {
    const plugin = await findIpam(c, conf.ipam.type);
    await execDelegate(delegateCall(c, 'CHECK', plugin));
  }
  return undefined;
}

/** A matcher for CIDR against a kernel address (compared as bytes: text forms of IPv6 vary). */
function sameAddress(cidr: string): (family: number, local: string, prefixlen: number) => boolean {
  const p = parsePrefix(cidr);
  return (family, local, prefixlen) =>
    family === p.family && prefixlen === p.prefixlen && parsePrefix(local).addr.equals(p.addr);
}
