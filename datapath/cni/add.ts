// CNI ADD: checks first (nothing is made before every refusal is known), then the IPAM allocation
// and the links together, then the pod's addresses; a failure undoes every step made.
import type { PseudowireDevice } from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import {
  emptyResult,
  formatResult,
  parseResult,
  type CniInterface,
  type CniResult,
} from '../../lib/cni/result.js';
import {
  delegateCall,
  findIpam,
  lookupPseudowire,
  pwText,
  requireNetns,
  UndoStack,
  type Ctx,
} from './context.js';
import { execDelegate, prepareDelegate } from './ipam.js';
import {
  ensureBridgePort,
  ensureExclusiveMove,
  ensurePodAddresses,
  bridgeFor,
  ensurePodLinkUp,
  type PodSide,
} from './links.js';
import { names, node, randomMac } from './netops.js';
import type { AttachmentRecord } from './state.js';

/** Milliseconds since creation at named points, for a debug log of where an ADD spends its time. */
class Phases {
  private readonly t0 = performance.now();
  readonly at: Record<string, number> = {};
  mark(name: string): void {
    this.at[name] = +(performance.now() - this.t0).toFixed(2);
  }
}

export async function cmdAdd(c: Ctx): Promise<string> {
  const { cmd, conf, deps } = c;
  const ph = new Phases();
  const pw = await lookupPseudowire(c);
  const mtu = conf.mtu ?? pw.mtu;
  if (mtu > pw.mtu) {
    throw new CniError(
      CniCode.MtuTooLarge,
      `mtu: ${mtu} exceeds the MTU ${pw.mtu} of pseudowire ${pwText(conf.pseudowire)}`,
    );
  }
  const ipamPlugin = conf.ipam ? await findIpam(c, conf.ipam.type) : undefined;
  requireNetns(c);
  const prev = conf.prevResult ? parseResult(conf.prevResult, 'prevResult', conf.cniVersion) : emptyResult();
  if (
    deps.store.has(cmd.containerID, cmd.ifname) &&
    !(await deps.store.get(cmd.containerID, cmd.ifname))?.ipamReleasePending
  ) {
    throw new CniError(
      CniCode.InterfaceExists,
      `CNI_IFNAME: attachment ${cmd.containerID}/${cmd.ifname} already exists (DEL it first)`,
    );
  }
  const deviceMac = pw.mode === 'exclusive' ? node.mac(pw.ifname) : undefined;
  const mac = conf.mac ?? deviceMac ?? randomMac();
  ph.mark('checks');

  const undo = new UndoStack(c.log);
  let podSide: PodSide | undefined;
  try {
    // The IPAM allocation and the links do not depend on each other: run them together. The link
    // work starts first and runs up to its first kernel request, which a pool thread serves while the
    // delegate starts: with the posix_spawn addon the start barely holds this thread, with the
    // child_process fallback it blocks it for the fork (which copies the agent's page tables).
    const launchIpam = ipamPlugin ? await prepareDelegate(delegateCall(c, 'ADD', ipamPlugin)) : undefined;
    const linkStep = attach(c, pw, mtu, mac, deviceMac, undo, ph);
    linkStep.catch(() => undefined); // handled below (allSettled); not an unhandled rejection meanwhile
    await new Promise<void>((r) => setImmediate(r)); // the link work reaches the kernel
    ph.mark('prespawn');
    const ipamStep = launchIpam ? launchIpam() : Promise.resolve(undefined);
    ph.mark('spawned');
    const [linked, allocated] = await Promise.allSettled([linkStep, ipamStep]);
    ph.mark('joined');
    // Also after a failed ADD (spec): a delegate killed at its timeout, or one whose output could not
    // be read, may have allocated all the same (the dhcp daemon keeps a lease it got until a DEL).
    if (ipamPlugin && launchIpam) undo.push('ipam', () => execDelegate(delegateCall(c, 'DEL', ipamPlugin)));
    if (linked.status === 'fulfilled') podSide = linked.value.pod;
    if (linked.status === 'rejected') throw linked.reason;
    if (allocated.status === 'rejected') throw allocated.reason;
    const ipam = allocated.value;
    await ensurePodAddresses(c, podSide!, ipam);
    ph.mark('pod');
    c.log.debug({ at: ph.at }, 'ADD timings (ms since start)');

    const res: CniResult = {
      interfaces: [...prev.interfaces, ...linked.value.interfaces],
      ips: [...prev.ips],
      routes: [...prev.routes],
      dns: prev.dns,
    };
    res.interfaces.push({ name: cmd.ifname, mac, mtu, sandbox: cmd.netns });
    const podIdx = res.interfaces.length - 1;
    if (ipam) {
      for (const ip of ipam.ips) res.ips.push({ ...ip, interface: podIdx });
      res.routes.push(...ipam.routes);
      if (Object.keys(ipam.dns).length > 0) res.dns = ipam.dns;
    }
    return JSON.stringify(formatResult(res, conf.cniVersion)) + '\n';
  } catch (e) {
    await undo.run();
    throw e;
  } finally {
    podSide?.r.close();
  }
}

/**
 * Everything of an ADD that needs no IPAM result: the attachment record (for DEL without config, and
 * GC; written while the links are made), the node-side links, and the pod's link named and up.
 */
async function attach(
  c: Ctx,
  pw: PseudowireDevice,
  mtu: number,
  mac: string,
  deviceMac: string | undefined,
  undo: UndoStack,
  ph: Phases,
): Promise<{ interfaces: CniInterface[]; pod: PodSide }> {
  const { cmd, conf, deps } = c;
  const rec: AttachmentRecord = {
    v: 1,
    network: conf.name,
    containerID: cmd.containerID,
    ifname: cmd.ifname,
    netns: cmd.netns,
    mode: pw.mode,
    pseudowire: conf.pseudowire,
    device: pw.ifname,
    createdAt: new Date().toISOString(),
    cniPath: cmd.path,
    mtu,
  };
  if (conf.mtu !== undefined) rec.configMtu = conf.mtu;
  if (conf.ipam) rec.ipamConfig = conf.raw;
  if (pw.mode === 'bridge') {
    rec.bridge = bridgeFor(conf.pseudowire, pw);
    rec.hostVeth = names.hostVeth(cmd.containerID, cmd.ifname);
  }
  if (deviceMac !== undefined) rec.deviceMac = deviceMac;
  if (pw.mode === 'exclusive') rec.deviceMtu = pw.mtu;
  const recorded = deps.store.put(rec).then(() => {
    undo.push('record', () => deps.store.remove(cmd.containerID, cmd.ifname));
  });
  const linked = (async () => {
    const interfaces: CniInterface[] = [];
    // the pod-side link's current name (changes on rename); bridge mode creates it named, MAC and MTU set
    const pod = { name: pw.ifname, configured: false };
    if (pw.mode === 'bridge') {
      const made = await ensureBridgePort(c, pw, mtu, mac, undo);
      Object.assign(pod, { name: cmd.ifname, configured: true });
      interfaces.push({ name: made.bridge, mac: made.bridgeMac }, { name: made.hostVeth, mac: made.hostMac });
    } else {
      await ensureExclusiveMove(c, pw, pod, undo);
    }
    ph.mark('node');
    const side = await ensurePodLinkUp(c, pod, mac, mtu);
    ph.mark('links');
    return { interfaces, pod: side };
  })();
  const [r, l] = await Promise.allSettled([recorded, linked]);
  if (r.status === 'rejected') {
    if (l.status === 'fulfilled') l.value.pod.r.close();
    throw r.reason;
  }
  if (l.status === 'rejected') throw l.reason;
  return l.value;
}
