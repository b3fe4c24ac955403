// The link work of an attachment, node side and pod side: the per-pseudowire bridge and the pod's
// veth (Bridge mode), the l2tpeth itself moved into the pod and back (Exclusive mode), and the
// pod's link named, up and addressed. All through rtnetlink; each step that makes something pushes
// its undo.
import type { PseudowireDevice, PseudowireRef } from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { hardenDevice } from '../../lib/netdev-hardening.js';
import type { CniResult } from '../../lib/cni/result.js';
import { formatBridgeMarker, marksBridge, parseBridgeMarker } from '../../lib/device-marker.js';
import { pwKey, pwText, type Ctx, type UndoStack } from './context.js';
import {
  errnoOf,
  inNetns,
  names,
  node,
  nodeDeleteLink,
  nodeRtnl,
  openNetnsRtnl,
  randomMac,
  withNetnsFd,
  type Netns,
  type NetnsRtnl,
} from './netops.js';

/**
 * Bridge mode, node side: the per-pseudowire bridge holding the l2tpeth, plus this pod's veth, whose
 * peer is created straight in the pod's netns with its final name, MAC and MTU (as the reference
 * bridge plugin does). Up, addresses and routes are the pod side's (ensurePodLinkUp, ensurePodAddresses).
 */
export async function ensureBridgePort(
  c: Ctx,
  pw: PseudowireDevice,
  mtu: number,
  podMac: string,
  undo: UndoStack,
) {
  const { cmd, conf, deps } = c;
  const hostVeth = names.hostVeth(cmd.containerID, cmd.ifname);
  const hostMac = randomMac();
  return deps.locker.withLock(pwKey(conf.pseudowire), async () => {
    const { bridge, bridgeIndex, bridgeMac } = await ensureBridge(c, pw, undo);
    if (node.hasLink(hostVeth)) {
      throw new CniError(
        CniCode.InterfaceExists,
        `node link ${hostVeth} for ${cmd.containerID}/${cmd.ifname} already exists`,
      );
    }
    try {
      await withNetnsFd(c.ns, (fd) =>
        nodeRtnl().links.createVeth(
          // up only once hardened (below): the node sends nothing onto the wire from it
          { name: hostVeth, mtu, address: hostMac, master: bridgeIndex, up: false },
          // not up yet: a veth peer cannot open before the pair is complete (ENOTCONN)
          { name: cmd.ifname, mtu, address: podMac, netnsFd: fd },
        ),
      );
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') {
        // the node-side name was free a moment ago (checked under the lock): the pod's it is
        throw new CniError(
          CniCode.InterfaceExists,
          node.hasLink(hostVeth)
            ? `node link ${hostVeth} for ${cmd.containerID}/${cmd.ifname} already exists`
            : `CNI_IFNAME: interface ${cmd.ifname} already exists in ${cmd.netns}`,
        );
      }
      throw new CniError(CniCode.LinkSetupFailed, `veth for ${cmd.ifname}: ${(e as Error).message}`);
    }
    undo.push('veth', () => deleteLink(hostVeth));
    try {
      await hardenDevice(hostVeth);
      const index = node.ifindex(hostVeth);
      if (index === undefined) throw new Error('it vanished while being set up');
      await nodeRtnl().links.set(index, { up: true }, hostVeth);
    } catch (e) {
      throw new CniError(
        CniCode.LinkSetupFailed,
        `veth ${hostVeth} for ${cmd.ifname}: ${(e as Error).message}`,
      );
    }
    return { bridge, bridgeMac, hostVeth, hostMac };
  });
}

/**
 * Whether a node link is this pseudowire's attachment bridge: a bridge carrying its ownership marker,
 * or (made by a release before the marker) an unmarked bridge of the old hashed name.
 */
export function ownedBridge(link: string, ref: PseudowireRef): boolean {
  if (!node.isBridge(link)) return false;
  const alias = node.alias(link);
  if (alias !== undefined) return marksBridge(alias, ref);
  return link === names.legacyBridge(ref.namespace, ref.name);
}

/**
 * The attachment bridge of a pseudowire on this node: the one of ours its device is already in, else
 * an older one of ours, else the name a new one gets (by session ID, unique on the node).
 */
export function bridgeFor(ref: PseudowireRef, pw: { ifname: string; sessionId: number }): string {
  const master = node.master(pw.ifname);
  if (master !== undefined && ownedBridge(master, ref)) return master;
  const legacy = names.legacyBridge(ref.namespace, ref.name);
  return ownedBridge(legacy, ref) ? legacy : names.bridge(pw.sessionId);
}

/**
 * The pseudowire's device is not in the node's namespace: a pod holds it (exclusive mode, 102 naming
 * the container), or the datapath has not made it yet (11). Caller holds the pseudowire's lock.
 */
async function deviceAbsent(c: Ctx, dev: string): Promise<never> {
  const { cmd, conf, deps } = c;
  const owner = (await deps.store.list()).find(
    (r) =>
      r.mode === 'exclusive' &&
      pwKey(r.pseudowire) === pwKey(conf.pseudowire) &&
      !(r.containerID === cmd.containerID && r.ifname === cmd.ifname),
  );
  if (owner) {
    throw new CniError(
      CniCode.DeviceBusy,
      `pseudowire: ${pwText(conf.pseudowire)} is attached exclusively to container ${owner.containerID}`,
    );
  }
  throw new CniError(
    CniCode.TryAgainLater,
    `pseudowire ${pwText(conf.pseudowire)} is not Ready on this node: its device ${dev} is not there yet; try again later`,
  );
}

/** The pseudowire's bridge, up, with the l2tpeth as a port (up). Caller holds the pseudowire's lock. */
async function ensureBridge(c: Ctx, pw: PseudowireDevice, undo: UndoStack) {
  const { conf, deps } = c;
  const bridge = bridgeFor(conf.pseudowire, pw);
  const dev = pw.ifname;
  const devIndex = node.ifindex(dev);
  if (devIndex === undefined) return deviceAbsent(c, dev);
  const { links } = nodeRtnl();
  let bridgeMac = node.mac(bridge);
  try {
    let bridgeIndex: number | undefined;
    if (bridgeMac === undefined) {
      bridgeMac = randomMac();
      await links.createBridge({ name: bridge, mtu: pw.mtu, address: bridgeMac, up: false });
      // a bridge made by a failed ADD goes again
      undo.push('bridge', () =>
        deps.locker.withLock(pwKey(conf.pseudowire), () => removeBridgeIfUnused(bridge)),
      );
      bridgeIndex = node.ifindex(bridge);
      if (bridgeIndex !== undefined) {
        await links.set(bridgeIndex, { alias: formatBridgeMarker(conf.pseudowire) }, bridge);
      }
    } else {
      // never adopt what is not ours: a link of that name made by anybody else is left alone
      if (!ownedBridge(bridge, conf.pseudowire)) {
        throw new CniError(
          CniCode.LinkSetupFailed,
          `node link ${bridge} exists and is not kube-l2tp's bridge for ${pwText(conf.pseudowire)} ` +
            `(no ownership marker "${formatBridgeMarker(conf.pseudowire)}"): remove it`,
        );
      }
      bridgeIndex = node.ifindex(bridge);
    }
    // hardened before it is up (and again, cheaply, for one made by an earlier release)
    await hardenDevice(bridge);
    if (bridgeIndex !== undefined && !node.isUp(bridge)) await links.set(bridgeIndex, { up: true }, bridge);
    if (bridgeIndex === undefined) throw new Error('it vanished while being set up');
    const master = node.master(dev);
    if (master !== bridge) {
      if (master !== undefined) {
        throw new CniError(CniCode.DeviceBusy, `pseudowire: device ${dev} is already enslaved to ${master}`);
      }
      await links.set(devIndex, { master: bridgeIndex, up: true }, dev);
    } else if (!node.isUp(dev)) {
      await links.set(devIndex, { up: true }, dev);
    }
    return { bridge, bridgeIndex, bridgeMac };
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw new CniError(
      CniCode.LinkSetupFailed,
      `bridge ${bridge} for ${pwText(conf.pseudowire)}: ${(e as Error).message}`,
    );
  }
}

/** Delete a node-side link; a missing one is fine. */
export async function deleteLink(dev: string): Promise<void> {
  if (!node.hasLink(dev)) return;
  try {
    await nodeDeleteLink(dev);
  } catch (e) {
    if (errnoOf(e) !== 'ENODEV') throw e;
  }
}

/** Delete a per-pseudowire bridge that has no pod ports left (only the l2tpeth). Caller holds the lock. */
export async function removeBridgeIfUnused(bridge: string): Promise<void> {
  if (!node.isBridge(bridge)) return;
  const ports = node.ports(bridge);
  if (ports.some((p) => p.startsWith('kl2h'))) return;
  const { links } = nodeRtnl();
  for (const p of ports) {
    const index = node.ifindex(p);
    if (index !== undefined) await links.set(index, { master: 0 }, p);
  }
  await deleteLink(bridge);
}

/**
 * For the agent: remove a pseudowire's bridge when the pseudowire leaves this node (or its attachment
 * mode changes). Refuses while pods are still attached. Releases the l2tpeth device from it. Only a
 * bridge that is the pseudowire's own (ownership marker) is touched.
 */
export async function releasePseudowireBridge(ref: PseudowireRef, sessionId: number): Promise<boolean> {
  let gone = true;
  for (const bridge of [names.bridge(sessionId), names.legacyBridge(ref.namespace, ref.name)]) {
    if (!ownedBridge(bridge, ref)) continue;
    await removeBridgeIfUnused(bridge);
    gone &&= !node.hasLink(bridge);
  }
  return gone;
}

/**
 * For the agent, after every pass: attachment bridges of ours (by their marker) that are not the
 * bridge of a session this node carries go once no pod hangs on them. Level-triggered on purpose:
 * pods torn down while no agent runs (their DEL succeeds without one) leave a bridge nothing else
 * would remove, under the name of a session that may not come back.
 */
export async function releaseOrphanBridges(
  carried: readonly { pseudowire: PseudowireRef; sessionId: number }[],
): Promise<void> {
  const keep = new Map(carried.map((c) => [names.bridge(c.sessionId), formatBridgeMarker(c.pseudowire)]));
  for (const link of node.links()) {
    if (!link.startsWith(names.bridgePrefix) || !node.isBridge(link)) continue;
    const alias = node.alias(link);
    if (!parseBridgeMarker(alias) || keep.get(link) === alias) continue;
    await removeBridgeIfUnused(link);
  }
}

/**
 * For the agent: a session device that was made again (its tunnel left the node and came back, or it
 * was deleted by hand) is not a port of its pseudowire's bridge any more, while pods still hang there.
 * Puts it back; a device enslaved elsewhere is left alone (the next ADD reports it).
 */
export async function rejoinPseudowireBridge(
  ref: PseudowireRef,
  dev: string,
  sessionId: number,
): Promise<void> {
  const bridge = bridgeFor(ref, { ifname: dev, sessionId });
  if (!ownedBridge(bridge, ref) || !node.hasLink(dev) || node.master(dev) !== undefined) return;
  const bridgeIndex = node.ifindex(bridge);
  const devIndex = node.ifindex(dev);
  if (bridgeIndex === undefined || devIndex === undefined) return;
  await nodeRtnl().links.set(devIndex, { master: bridgeIndex, up: true }, dev);
}

/**
 * rejoinPseudowireBridge for every session of a pass: one listing of the node's links finds the few
 * whose attachment bridge exists (most sessions have no pod attached), so a large node does not pay
 * several sysfs lookups per session on every pass.
 */
export async function rejoinPseudowireBridges(
  sessions: readonly { pseudowire: PseudowireRef; ifname: string; sessionId: number }[],
  onError: (s: { pseudowire: PseudowireRef; ifname: string }, e: unknown) => void,
): Promise<void> {
  const links = new Set(node.links());
  for (const s of sessions) {
    const { namespace, name } = s.pseudowire;
    if (!links.has(names.bridge(s.sessionId)) && !links.has(names.legacyBridge(namespace, name))) continue;
    await rejoinPseudowireBridge(s.pseudowire, s.ifname, s.sessionId).catch((e: unknown) => onError(s, e));
  }
}

/** Exclusive mode, node side: the l2tpeth device itself moves into the pod. */
export async function ensureExclusiveMove(
  c: Ctx,
  pw: PseudowireDevice,
  pod: { name: string },
  undo: UndoStack,
) {
  const { cmd, conf, deps } = c;
  const dev = pw.ifname;
  await deps.locker.withLock(pwKey(conf.pseudowire), async () => {
    // On the node, the device is free whatever the records say: a record of a pod that went while no
    // agent ran (its DEL succeeded without one, e.g. across a node reboot) must not block it for ever.
    if (!node.hasLink(dev)) await deviceAbsent(c, dev);
    const master = node.master(dev);
    if (master !== undefined) {
      const users = node.ports(master).filter((p) => p.startsWith('kl2h'));
      if (users.length > 0) {
        throw new CniError(
          CniCode.DeviceBusy,
          `pseudowire: ${pwText(conf.pseudowire)} is in bridge mode use by ${users.length} pod(s); mode: exclusive needs it free`,
        );
      }
    }
    const origMac = node.mac(dev);
    const index = node.ifindex(dev);
    const { links } = nodeRtnl();
    try {
      if (index === undefined) throw new Error(`${dev} vanished`);
      await links.set(index, { up: false, ...(master ? { master: 0 } : {}) }, dev);
      await withNetnsFd(c.ns, (fd) => links.set(index, { netnsFd: fd }, dev));
    } catch (e) {
      if (index !== undefined) await links.set(index, { up: true }, dev).catch(() => undefined);
      if (errnoOf(e) === 'EEXIST') {
        throw new CniError(
          CniCode.InterfaceExists,
          `CNI_NETNS: a link named ${dev} already exists in ${cmd.netns}`,
        );
      }
      throw new CniError(CniCode.LinkSetupFailed, `moving ${dev} into ${cmd.netns}: ${(e as Error).message}`);
    }
    if (master) await removeBridgeIfUnused(master).catch(() => undefined);
    undo.push('move back', () => moveBack(c, c.ns, pod.name, dev, pw.mtu, origMac));
  });
}

/**
 * Return an exclusive device from a pod to the node, under its original name, MTU and MAC.
 * False when the pod has no link called `current` (nothing to return). Without an MTU (a record
 * older than deviceMtu, and no synced agent) the device keeps the one it has: any default could be
 * larger than what the session carries.
 */
export async function moveBack(
  c: Ctx,
  netns: Netns,
  current: string,
  orig: string,
  mtu: number | undefined,
  mac?: string,
): Promise<boolean> {
  const found = await inNetns(netns, async ({ links }) => {
    const link = await links.byName(current);
    if (!link) return false;
    await links.set(link.index, { up: false }, current); // a running link cannot be renamed
    if (current !== orig) await links.set(link.index, { name: orig }, current);
    await links.set(link.index, { netnsPid: c.deps.nodePid }, orig);
    return true;
  });
  if (!found) return false;
  const index = node.ifindex(orig);
  if (index === undefined) throw new Error(`${orig} did not arrive on the node`);
  // a device entering a namespace gets that namespace's defaults: harden it again before it is up
  await hardenDevice(orig);
  await nodeRtnl().links.set(
    index,
    { ...(mtu !== undefined ? { mtu } : {}), ...(mac ? { address: mac } : {}), up: true },
    orig,
  );
  return true;
}

/** The pod's link, found in the pod's netns, with a socket there (close it). */
export interface PodSide {
  r: NetnsRtnl;
  index: number;
}

const podStepFailed = (c: Ctx, step: string, e: unknown): CniError =>
  e instanceof CniError
    ? e
    : new CniError(
        CniCode.LinkSetupFailed,
        `configuring ${c.cmd.ifname} in ${c.cmd.netns} (${step}): ${(e as Error).message}`,
      );

/**
 * Pod side, first half (needs no IPAM result): exclusive mode renames the device to CNI_IFNAME
 * (fails if that exists) and sets MAC and MTU (bridge mode created the veth peer so); then up.
 */
export async function ensurePodLinkUp(
  c: Ctx,
  pod: { name: string; configured: boolean },
  mac: string,
  mtu: number,
): Promise<PodSide> {
  const { cmd } = c;
  const ifn = cmd.ifname;
  let step = `entering the netns`;
  let r: NetnsRtnl | undefined;
  try {
    r = openNetnsRtnl(c.ns);
    step = `link ${pod.name}`;
    const link = await r.links.byName(pod.name);
    if (!link) throw new Error(`${pod.name} is not there`);
    if (!pod.configured) {
      step = `rename ${pod.name} to ${ifn}`;
      try {
        await r.links.set(link.index, { name: ifn, address: mac, mtu }, pod.name);
      } catch (e) {
        if (errnoOf(e) === 'EEXIST') {
          throw new CniError(
            CniCode.InterfaceExists,
            `CNI_IFNAME: interface ${ifn} already exists in ${cmd.netns}`,
          );
        }
        throw e;
      }
      pod.name = ifn;
    }
    step = 'up';
    await r.links.set(link.index, { up: true }, ifn);
    return { r, index: link.index };
  } catch (e) {
    r?.close();
    throw podStepFailed(c, step, e);
  }
}

/** Pod side, second half: the IPAM result's addresses and routes. */
export async function ensurePodAddresses(c: Ctx, side: PodSide, ipam: CniResult | undefined): Promise<void> {
  const { r, index } = side;
  const ifn = c.cmd.ifname;
  let step = '';
  try {
    const gateways = { v4: undefined as string | undefined, v6: undefined as string | undefined };
    for (const ip of ipam?.ips ?? []) {
      const v6 = ip.address.includes(':');
      step = `address ${ip.address}`;
      await r.addrs.add(index, ip.address, { nodad: v6 }, ifn);
      if (ip.gateway) {
        if (v6) gateways.v6 ??= ip.gateway;
        else gateways.v4 ??= ip.gateway;
      }
    }
    for (const rt of ipam?.routes ?? []) {
      const gw = rt.gw ?? (rt.dst.includes(':') ? gateways.v6 : gateways.v4);
      step = `route ${rt.dst}${gw ? ` via ${gw}` : ''}`;
      await r.routes.add(
        {
          dst: rt.dst,
          oif: index,
          ...(gw ? { gateway: gw } : {}),
          ...(rt.priority ? { priority: rt.priority } : {}),
          ...(rt.table !== undefined ? { table: rt.table } : {}),
          ...(rt.scope !== undefined ? { scope: rt.scope } : {}),
          ...(rt.mtu ? { mtu: rt.mtu } : {}),
          ...(rt.advmss ? { advmss: rt.advmss } : {}),
        },
        ifn,
      );
    }
  } catch (e) {
    throw podStepFailed(c, step, e);
  }
}
