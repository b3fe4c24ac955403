// The CNI plugin: a skel-like dispatcher (injected env/stdin, a handler table, one error type) and
// the handlers. Side effects live in ensureX helpers; cmdAdd pushes an undo for each, so a failed
// ADD leaves nothing behind. DEL is idempotent and best effort.
import { CniCode, CniError } from '../../lib/cni/errors.js';
import {
  emptyResult,
  formatResult,
  parseResult,
  type CniInterface,
  type CniResult,
} from '../../lib/cni/result.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/versions.js';
import type { PseudowireDevice, PseudowireRef, PseudowireResolver } from '../../lib/agent-protocol.js';
import type { Logger } from '../../lib/log.js';
import { parsePrefix } from '../../lib/netlink/rtnl-addr.js';
import {
  parseCommand,
  parseEnv,
  parseNetConf,
  peekVersion,
  type CmdArgs,
  type Command,
  type Env,
  type NetConf,
} from './config.js';
import { delegateSearchPath, execDelegate, findPlugin, prepareDelegate, type DelegateCall } from './ipam.js';
import {
  errnoOf,
  exists,
  inNetns,
  isNamespaceFd,
  names,
  openNetnsRtnl,
  type NetnsRtnl,
  node,
  nodeDeleteLink,
  nodeRtnl,
  podLinkInfo,
  randomMac,
  withNetnsFd,
  type Netns,
} from './netops.js';
import type { AttachmentRecord, AttachmentStore, Locker } from './state.js';

export interface PluginDeps {
  resolver: PseudowireResolver;
  logger: Logger;
  store: AttachmentStore;
  locker: Locker;
  /** A PID in the node's network namespace (exclusive-mode devices return there on DEL). */
  nodePid: number;
  /** Directories of the node's CNI plugins as this process sees them, searched before CNI_PATH. */
  delegateDirs?: readonly string[];
}

export interface Invocation {
  env: Env;
  stdin: string;
  /** CNI_NETNS opened by the shim (the caller closes it after the invocation). */
  netnsFd?: number;
  /** The shim could not open CNI_NETNS. */
  netnsOpenError?: { errno: number; message: string };
}
export interface Outcome {
  exitCode: number;
  stdout: string;
}

interface Ctx {
  cmd: CmdArgs;
  conf: NetConf;
  env: Env;
  deps: PluginDeps;
  log: Logger;
  /** The pod's netns to act in: the shim's descriptor when there is one, else CNI_NETNS's path. */
  ns: Netns;
  /** Why the shim could not open CNI_NETNS, if it could not. */
  nsError?: { errno: number; message: string };
}
type Handler = (c: Ctx) => Promise<string | undefined>;

const HANDLERS: Record<Exclude<Command, 'VERSION'>, Handler> = {
  ADD: cmdAdd,
  DEL: cmdDel,
  CHECK: cmdCheck,
  STATUS: cmdStatus,
  GC: cmdGc,
};

export function versionOutput(stdin: string): string {
  return (
    JSON.stringify({
      cniVersion: peekVersion(stdin) ?? CURRENT_VERSION,
      supportedVersions: SUPPORTED_VERSIONS,
    }) + '\n'
  );
}

/** Run one plugin invocation. Never throws: errors become spec error JSON on stdout. */
export async function dispatch(inv: Invocation, deps: PluginDeps): Promise<Outcome> {
  const t0 = performance.now();
  let version = peekVersion(inv.stdin) ?? CURRENT_VERSION;
  let log = deps.logger;
  try {
    const command = parseCommand(inv.env);
    if (command === 'VERSION') return { exitCode: 0, stdout: versionOutput(inv.stdin) };
    const cmd = parseEnv(command, inv.env);
    log = deps.logger.child({
      cmd: command,
      containerID: cmd.containerID || undefined,
      ifname: cmd.ifname || undefined,
    });
    const conf = parseNetConf(inv.stdin, cmd.args);
    version = conf.cniVersion;
    if ((command === 'GC' || command === 'STATUS') && !versionAtLeast(version, '1.1.0')) {
      throw new CniError(
        CniCode.IncompatibleVersion,
        `config version ${version} does not allow ${command} (needs 1.1.0)`,
      );
    }
    const ctx: Ctx = { cmd, conf, env: inv.env, deps, log, ns: inv.netnsFd ?? cmd.netns };
    if (inv.netnsOpenError && inv.netnsFd === undefined) ctx.nsError = inv.netnsOpenError;
    const stdout = (await HANDLERS[command](ctx)) ?? '';
    log.info({ ms: +(performance.now() - t0).toFixed(1) }, `${command} ok`);
    return { exitCode: 0, stdout };
  } catch (e) {
    const err = CniError.from(e);
    log.error(
      { code: err.code, err: err.message, details: err.details, ms: +(performance.now() - t0).toFixed(1) },
      'failed',
    );
    return { exitCode: 1, stdout: JSON.stringify(err.toJSON(version)) + '\n' };
  }
}

class UndoStack {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];
  constructor(private readonly log: Logger) {}
  push(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }
  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const s = this.steps.pop()!;
      try {
        await s.fn();
        this.log.debug({ undo: s.what }, 'undone');
      } catch (e) {
        this.log.warn({ undo: s.what, err: (e as Error).message }, 'undo failed');
      }
    }
  }
}

const pwKey = (r: PseudowireRef): string => `pw_${r.namespace}_${r.name}`;
const pwText = (r: PseudowireRef): string => `${r.namespace}/${r.name}`;

/** The agent's resolver may say more than the protocol's fields: the session's state and error. */
type PseudowireReport = PseudowireDevice & { state?: string; error?: string };

/**
 * The pseudowire's device on this node. Every refusal names the pseudowire (the runtime shows the
 * message in the pod's events) and comes before anything is made.
 */
async function lookupPseudowire(c: Ctx): Promise<PseudowireDevice> {
  const name = pwText(c.conf.pseudowire);
  if (!c.deps.resolver.ready()) {
    throw new CniError(
      CniCode.TryAgainLater,
      `pseudowire ${name}: the kube-l2tp node agent has not synced this node's state yet; try again later`,
    );
  }
  const pw = (await c.deps.resolver.lookup(c.conf.pseudowire)) as PseudowireReport | undefined;
  if (pw === undefined) {
    throw new CniError(
      CniCode.PseudowireUnknown,
      `pseudowire ${name} has no endpoint on this node: it does not exist, is not allocated yet, or its tunnel does not end on this node`,
    );
  }
  if (pw.state === 'Error') {
    throw new CniError(
      CniCode.TryAgainLater,
      `pseudowire ${name} is not Ready on this node: session ${pw.sessionId} of tunnel ${pw.tunnelId} failed${pw.error ? `: ${pw.error}` : ''}; try again later`,
    );
  }
  return pw;
}

const ENOENT = 2;
const ENOTDIR = 20;

/**
 * ADD and CHECK need the pod's netns: a clear error when it is missing (3: nothing to clean up) or
 * cannot be used (4, naming CNI_NETNS), before anything is made.
 */
function requireNetns(c: Ctx, code: number = CniCode.UnknownContainer): void {
  const path = c.cmd.netns;
  const gone = new CniError(code, `CNI_NETNS: network namespace ${path} does not exist`);
  if (c.nsError) {
    if (c.nsError.errno === ENOENT || c.nsError.errno === ENOTDIR) throw gone;
    throw new CniError(
      CniCode.InvalidEnvironment,
      `CNI_NETNS: cannot open network namespace ${path}: ${c.nsError.message}`,
    );
  }
  if (typeof c.ns === 'number') {
    if (!isNamespaceFd(c.ns)) {
      throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS: ${path} is not a network namespace`);
    }
    return;
  }
  if (!exists(path)) throw gone;
}

/** DEL: whether the pod's netns can still be entered (gone is fine: there is nothing to undo in it). */
function netnsReachable(ns: Netns, nsError?: unknown): boolean {
  if (typeof ns === 'number') return true;
  return nsError === undefined && ns !== '' && exists(ns);
}

/** The IPAM delegate's executable, found where this process sees the node's plugins. */
function findIpam(c: Ctx, type: string): Promise<string> {
  return findPlugin(type, delegateSearchPath(c.deps.delegateDirs, c.cmd.path));
}

function delegateConfig(c: Ctx): Record<string, unknown> {
  return c.conf.raw;
}

// ---------------------------------------------------------------- ADD

/** Milliseconds since creation at named points, for a debug log of where an ADD spends its time. */
class Phases {
  private readonly t0 = performance.now();
  readonly at: Record<string, number> = {};
  mark(name: string): void {
    this.at[name] = +(performance.now() - this.t0).toFixed(2);
  }
}

async function cmdAdd(c: Ctx): Promise<string> {
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
  requireNetns(c);
  const prev = conf.prevResult ? parseResult(conf.prevResult, 'prevResult', conf.cniVersion) : emptyResult();
  const ipamPlugin = conf.ipam ? await findIpam(c, conf.ipam.type) : undefined;
  if (
    deps.store.has(cmd.containerID, cmd.ifname) &&
    !(await deps.store.get(cmd.containerID, cmd.ifname))?.ipamReleasePending
  ) {
    throw new CniError(
      CniCode.InterfaceExists,
      `CNI_IFNAME: attachment ${cmd.containerID}/${cmd.ifname} already exists (DEL it first)`,
    );
  }
  const deviceMac = conf.mode === 'exclusive' ? node.mac(pw.ifname) : undefined;
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
    if (ipamPlugin && allocated.status === 'fulfilled') {
      undo.push('ipam', () => execDelegate(delegateCall(c, 'DEL', ipamPlugin)));
    }
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

/** The IPAM delegate invocation for this request. */
function delegateCall(c: Ctx, command: DelegateCall['command'], plugin: string): DelegateCall {
  return { command, plugin, config: delegateConfig(c), env: c.env, logger: c.log };
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
    mode: conf.mode,
    pseudowire: conf.pseudowire,
    device: pw.ifname,
    createdAt: new Date().toISOString(),
    cniPath: cmd.path,
  };
  if (conf.ipam) rec.ipamConfig = delegateConfig(c);
  if (conf.mode === 'bridge') {
    rec.bridge = names.bridge(conf.pseudowire.namespace, conf.pseudowire.name);
    rec.hostVeth = names.hostVeth(cmd.containerID, cmd.ifname);
  }
  if (deviceMac !== undefined) rec.deviceMac = deviceMac;
  const recorded = deps.store.put(rec).then(() => {
    undo.push('record', () => deps.store.remove(cmd.containerID, cmd.ifname));
  });
  const linked = (async () => {
    const interfaces: CniInterface[] = [];
    // the pod-side link's current name (changes on rename); bridge mode creates it named, MAC and MTU set
    const pod = { name: pw.ifname, configured: false };
    if (conf.mode === 'bridge') {
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

/**
 * Bridge mode, node side: the per-pseudowire bridge holding the l2tpeth, plus this pod's veth, whose
 * peer is created straight in the pod's netns with its final name, MAC and MTU (as the reference
 * bridge plugin does). Up, addresses and routes are the pod side's (ensurePodLinkUp, ensurePodAddresses).
 */
async function ensureBridgePort(c: Ctx, pw: PseudowireDevice, mtu: number, podMac: string, undo: UndoStack) {
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
          { name: hostVeth, mtu, address: hostMac, master: bridgeIndex, up: true },
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
    return { bridge, bridgeMac, hostVeth, hostMac };
  });
}

/** The pseudowire's bridge, up, with the l2tpeth as a port (up). Caller holds the pseudowire's lock. */
async function ensureBridge(c: Ctx, pw: PseudowireDevice, undo: UndoStack) {
  const { conf, deps } = c;
  const bridge = names.bridge(conf.pseudowire.namespace, conf.pseudowire.name);
  const dev = pw.ifname;
  const devIndex = node.ifindex(dev);
  if (devIndex === undefined) {
    const owner = (await deps.store.list()).find(
      (r) => r.mode === 'exclusive' && pwKey(r.pseudowire) === pwKey(conf.pseudowire),
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
  const { links } = nodeRtnl();
  let bridgeMac = node.mac(bridge);
  try {
    let bridgeIndex: number | undefined;
    if (bridgeMac === undefined) {
      bridgeMac = randomMac();
      await links.createBridge({ name: bridge, mtu: pw.mtu, address: bridgeMac, up: true });
      // a bridge made by a failed ADD goes again
      undo.push('bridge', () =>
        deps.locker.withLock(pwKey(conf.pseudowire), () => removeBridgeIfUnused(bridge)),
      );
      bridgeIndex = node.ifindex(bridge);
    } else {
      if (!node.isBridge(bridge)) {
        throw new CniError(CniCode.LinkSetupFailed, `node link ${bridge} exists and is not a bridge`);
      }
      bridgeIndex = node.ifindex(bridge);
      if (bridgeIndex !== undefined && !node.isUp(bridge)) await links.set(bridgeIndex, { up: true }, bridge);
    }
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
async function deleteLink(dev: string): Promise<void> {
  if (!node.hasLink(dev)) return;
  try {
    await nodeDeleteLink(dev);
  } catch (e) {
    if (errnoOf(e) !== 'ENODEV') throw e;
  }
}

/** Delete a per-pseudowire bridge that has no pod ports left (only the l2tpeth). Caller holds the lock. */
async function removeBridgeIfUnused(bridge: string): Promise<void> {
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
 * mode changes). Refuses while pods are still attached. Releases the l2tpeth device from it.
 */
export async function releasePseudowireBridge(ref: PseudowireRef): Promise<boolean> {
  const bridge = names.bridge(ref.namespace, ref.name);
  await removeBridgeIfUnused(bridge);
  return !node.hasLink(bridge);
}

/** Exclusive mode, node side: the l2tpeth device itself moves into the pod. */
async function ensureExclusiveMove(c: Ctx, pw: PseudowireDevice, pod: { name: string }, undo: UndoStack) {
  const { cmd, conf, deps } = c;
  const dev = pw.ifname;
  await deps.locker.withLock(pwKey(conf.pseudowire), async () => {
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
    if (!node.hasLink(dev)) {
      throw new CniError(
        CniCode.TryAgainLater,
        `pseudowire ${pwText(conf.pseudowire)} is not Ready on this node: its device ${dev} is not there yet; try again later`,
      );
    }
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
 * False when the pod has no link called `current` (nothing to return).
 */
async function moveBack(
  c: Ctx,
  netns: Netns,
  current: string,
  orig: string,
  mtu: number,
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
  await nodeRtnl().links.set(index, { mtu, ...(mac ? { address: mac } : {}), up: true }, orig);
  return true;
}

/** The pod's link, found in the pod's netns, with a socket there (close it). */
interface PodSide {
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
async function ensurePodLinkUp(
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
async function ensurePodAddresses(c: Ctx, side: PodSide, ipam: CniResult | undefined): Promise<void> {
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

// ---------------------------------------------------------------- DEL

async function cmdDel(c: Ctx): Promise<undefined> {
  const { cmd, conf, deps } = c;
  const rec = await deps.store.get(cmd.containerID, cmd.ifname);
  // links and the IPAM release are independent: both run, together
  const [links, ipam] = await Promise.allSettled([
    releaseAttachment(c, rec, {
      mode: rec?.mode ?? conf.mode,
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

/** Undo an attachment's links. Missing netns, links or bridge are success. */
async function releaseAttachment(c: Ctx, rec: AttachmentRecord | undefined, a: Release): Promise<void> {
  if (a.mode === 'bridge') {
    // The pod end goes with it. The per-pseudowire bridge stays (as the reference bridge plugin's does):
    // it belongs to the pseudowire, and the agent removes it with releasePseudowireBridge. When the
    // pseudowire already left this node while pods were attached, the last DEL takes the bridge along.
    await deleteLink(names.hostVeth(a.containerID, a.ifname));
    const pw = await c.deps.resolver.lookup(a.pseudowire).catch(() => 'unknown' as const);
    if (pw === undefined) {
      await c.deps.locker.withLock(pwKey(a.pseudowire), () =>
        removeBridgeIfUnused(names.bridge(a.pseudowire.namespace, a.pseudowire.name)),
      );
    }
    return;
  }
  // exclusive: only a recorded attachment owns the device (after a failed ADD the pod's CNI_IFNAME is not ours)
  if (rec === undefined || !netnsReachable(a.netns, a.netnsError)) return;
  const pw = await c.deps.resolver.lookup(a.pseudowire).catch(() => undefined);
  await c.deps.locker.withLock(pwKey(a.pseudowire), async () => {
    try {
      await moveBack(c, a.netns, a.ifname, rec.device, pw?.mtu ?? 1500, rec.deviceMac);
    } catch (e) {
      throw new CniError(
        CniCode.LinkSetupFailed,
        `returning ${a.ifname} to the node as ${rec.device}: ${(e as Error).message}`,
      );
    }
  });
}

// ---------------------------------------------------------------- CHECK

async function cmdCheck(c: Ctx): Promise<undefined> {
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
  const mtu = want.mtu ?? conf.mtu ?? pw.mtu;
  if (link.mtu !== mtu)
    throw new CniError(CniCode.CheckFailed, `mtu: ${cmd.ifname} has MTU ${link.mtu}, expected ${mtu}`);
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
  if (conf.mode === 'bridge') {
    const bridge = names.bridge(conf.pseudowire.namespace, conf.pseudowire.name);
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

// ---------------------------------------------------------------- STATUS, GC

async function cmdStatus(c: Ctx): Promise<undefined> {
  if (!c.deps.resolver.ready()) {
    throw new CniError(CniCode.NotAvailable, 'kube-l2tp node agent is not ready (node state not synced yet)');
  }
  if (c.conf.ipam && c.cmd.path.length > 0) {
    const plugin = await findIpam(c, c.conf.ipam.type);
    await execDelegate(delegateCall(c, 'STATUS', plugin));
  }
  return undefined;
}

async function cmdGc(c: Ctx): Promise<undefined> {
  const { conf, deps } = c;
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const stale = (await deps.store.list()).filter(
    (r) => r.network === conf.name && !valid.has(`${r.containerID}/${r.ifname}`),
  );
  const failures: string[] = [];
  const ipamPlugin = conf.ipam ? await findIpam(c, conf.ipam.type) : undefined;
  for (const r of stale) {
    try {
      await releaseAttachment(c, r, { ...r });
      if (ipamPlugin) {
        const env = { ...c.env, CNI_CONTAINERID: r.containerID, CNI_IFNAME: r.ifname, CNI_NETNS: '' };
        await execDelegate({
          command: 'DEL',
          plugin: ipamPlugin,
          config: r.ipamConfig ?? delegateConfig(c),
          env,
          logger: c.log,
        });
      }
      await deps.store.remove(r.containerID, r.ifname);
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
