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
import { execDelegate, findPlugin } from './ipam.js';
import { IpBatchError, exists, ipBatch, names, node, podLinkInfo, randomMac } from './netops.js';
import type { AttachmentRecord, AttachmentStore, Locker } from './state.js';

export interface PluginDeps {
  resolver: PseudowireResolver;
  logger: Logger;
  store: AttachmentStore;
  locker: Locker;
  /** A PID in the node's network namespace (exclusive-mode devices return there on DEL). */
  nodePid: number;
}

export interface Invocation {
  env: Env;
  stdin: string;
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
    const stdout = (await HANDLERS[command]({ cmd, conf, env: inv.env, deps, log })) ?? '';
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

async function lookupPseudowire(c: Ctx): Promise<PseudowireDevice> {
  if (!c.deps.resolver.ready()) {
    throw new CniError(
      CniCode.TryAgainLater,
      'kube-l2tp node agent is not ready (node state not synced yet)',
    );
  }
  const pw = await c.deps.resolver.lookup(c.conf.pseudowire);
  if (pw === undefined) {
    throw new CniError(
      CniCode.PseudowireUnknown,
      `pseudowire: ${pwText(c.conf.pseudowire)} has no endpoint on this node`,
    );
  }
  return pw;
}

function delegateConfig(c: Ctx): Record<string, unknown> {
  return c.conf.raw;
}

// ---------------------------------------------------------------- ADD

async function cmdAdd(c: Ctx): Promise<string> {
  const { cmd, conf, deps } = c;
  const pw = await lookupPseudowire(c);
  const mtu = conf.mtu ?? pw.mtu;
  if (mtu > pw.mtu) {
    throw new CniError(
      CniCode.MtuTooLarge,
      `mtu: ${mtu} exceeds the MTU ${pw.mtu} of pseudowire ${pwText(conf.pseudowire)}`,
    );
  }
  if (!(await exists(cmd.netns))) {
    throw new CniError(CniCode.UnknownContainer, `CNI_NETNS: network namespace ${cmd.netns} does not exist`);
  }
  const prev = conf.prevResult ? parseResult(conf.prevResult, 'prevResult', conf.cniVersion) : emptyResult();
  const ipamPlugin = conf.ipam ? await findPlugin(conf.ipam.type, cmd.path) : undefined;

  const undo = new UndoStack(c.log);
  try {
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
    const deviceMac = conf.mode === 'exclusive' ? await node.mac(pw.ifname) : undefined;
    if (deviceMac !== undefined) rec.deviceMac = deviceMac;
    if ((await deps.store.get(cmd.containerID, cmd.ifname)) !== undefined) {
      throw new CniError(
        CniCode.InterfaceExists,
        `CNI_IFNAME: attachment ${cmd.containerID}/${cmd.ifname} already exists (DEL it first)`,
      );
    }
    await deps.store.put(rec);
    undo.push('record', () => deps.store.remove(cmd.containerID, cmd.ifname));

    const res: CniResult = {
      interfaces: [...prev.interfaces],
      ips: [...prev.ips],
      routes: [...prev.routes],
      dns: prev.dns,
    };
    const mac = conf.mac ?? deviceMac ?? randomMac();
    const pod = { name: pw.ifname }; // the pod-side link's current name (changes on rename)
    // The node-side links and the IPAM allocation do not depend on each other: run them together.
    const linkStep =
      conf.mode === 'bridge'
        ? ensureBridgePort(c, pw, mtu, undo).then((made) => {
            pod.name = made.tmpPeer;
            res.interfaces.push(
              { name: made.bridge, mac: made.bridgeMac },
              { name: made.hostVeth, mac: made.hostMac },
            );
          })
        : ensureExclusiveMove(c, pw, pod, undo);
    const ipamStep = ipamPlugin
      ? execDelegate({
          command: 'ADD',
          plugin: ipamPlugin,
          config: delegateConfig(c),
          env: c.env,
          logger: c.log,
        })
      : Promise.resolve(undefined);
    const [linked, allocated] = await Promise.allSettled([linkStep, ipamStep]);
    if (ipamPlugin && allocated.status === 'fulfilled') {
      undo.push('ipam', () =>
        execDelegate({
          command: 'DEL',
          plugin: ipamPlugin,
          config: delegateConfig(c),
          env: c.env,
          logger: c.log,
        }),
      );
    }
    if (linked.status === 'rejected') throw linked.reason;
    if (allocated.status === 'rejected') throw allocated.reason;
    const podIface: CniInterface = { name: cmd.ifname, mac, mtu, sandbox: cmd.netns };
    res.interfaces.push(podIface);
    const podIdx = res.interfaces.length - 1;

    const ipam = allocated.value;
    if (ipamPlugin) {
      if (ipam) {
        for (const ip of ipam.ips) res.ips.push({ ...ip, interface: podIdx });
        res.routes.push(...ipam.routes);
        if (Object.keys(ipam.dns).length > 0) res.dns = ipam.dns;
      }
    }
    await ensurePodLink(c, pod, mac, mtu, ipam);
    return JSON.stringify(formatResult(res, conf.cniVersion)) + '\n';
  } catch (e) {
    await undo.run();
    throw e;
  }
}

/** Bridge mode, node side: the per-pseudowire bridge holding the l2tpeth, plus this pod's veth. */
async function ensureBridgePort(c: Ctx, pw: PseudowireDevice, mtu: number, undo: UndoStack) {
  const { cmd, conf, deps } = c;
  const bridge = names.bridge(conf.pseudowire.namespace, conf.pseudowire.name);
  const hostVeth = names.hostVeth(cmd.containerID, cmd.ifname);
  const tmpPeer = names.tmpPeer(cmd.containerID, cmd.ifname);
  const hostMac = randomMac();
  return deps.locker.withLock(pwKey(conf.pseudowire), async () => {
    const dev = pw.ifname;
    if (!(await node.hasLink(dev))) {
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
        `pseudowire: device ${dev} of ${pwText(conf.pseudowire)} is not present yet`,
      );
    }
    const cmds: string[] = [];
    let bridgeMac = await node.mac(bridge);
    if (bridgeMac === undefined) {
      bridgeMac = randomMac();
      cmds.push(`link add ${bridge} address ${bridgeMac} mtu ${pw.mtu} type bridge`);
    } else if (!(await node.isBridge(bridge))) {
      throw new CniError(CniCode.LinkSetupFailed, `node link ${bridge} exists and is not a bridge`);
    }
    const master = await node.master(dev);
    if (master !== bridge) {
      if (master !== undefined) {
        throw new CniError(CniCode.DeviceBusy, `pseudowire: device ${dev} is already enslaved to ${master}`);
      }
      cmds.push(`link set dev ${dev} master ${bridge}`);
    }
    if (cmds.length > 0 || !(await node.isUp(bridge))) cmds.push(`link set dev ${bridge} up`);
    if (!(await node.isUp(dev))) cmds.push(`link set dev ${dev} up`);
    const vethIdx = cmds.length;
    cmds.push(
      `link add ${hostVeth} mtu ${mtu} address ${hostMac} type veth peer name ${tmpPeer} mtu ${mtu} netns ${cmd.netns}`,
      `link set dev ${hostVeth} master ${bridge} up`,
    );
    if (cmds.length > vethIdx - 1 && cmds[0]?.startsWith(`link add ${bridge}`)) {
      // a bridge made by a failed ADD goes again
      undo.push('bridge', () =>
        deps.locker.withLock(pwKey(conf.pseudowire), () => removeBridgeIfUnused(bridge)),
      );
    }
    try {
      await ipBatch(cmds);
    } catch (e) {
      if (e instanceof IpBatchError && e.index >= 0 && e.index < vethIdx) {
        throw new CniError(
          CniCode.LinkSetupFailed,
          `bridge ${bridge} for ${pwText(conf.pseudowire)}: ${e.message}`,
        );
      }
      if (e instanceof IpBatchError && e.index === vethIdx && /File exists/.test(e.stderr)) {
        throw new CniError(
          CniCode.InterfaceExists,
          `node link ${hostVeth} for ${cmd.containerID}/${cmd.ifname} already exists`,
        );
      }
      if (e instanceof IpBatchError && e.index > vethIdx) await deleteLink(hostVeth);
      throw new CniError(CniCode.LinkSetupFailed, `veth for ${cmd.ifname}: ${(e as Error).message}`);
    }
    undo.push('veth', () => deleteLink(hostVeth));
    return { bridge, bridgeMac, hostVeth, hostMac, tmpPeer };
  });
}

async function deleteLink(dev: string): Promise<void> {
  if (!(await node.hasLink(dev))) return;
  try {
    await ipBatch([`link del dev ${dev}`]);
  } catch (e) {
    if (!/Cannot find device|does not exist/.test((e as Error).message)) throw e;
  }
}

/** Delete a per-pseudowire bridge that has no pod ports left (only the l2tpeth). Caller holds the lock. */
async function removeBridgeIfUnused(bridge: string): Promise<void> {
  if (!(await node.isBridge(bridge))) return;
  const ports = await node.ports(bridge);
  if (ports.some((p) => p.startsWith('kl2h'))) return;
  await ipBatch([...ports.map((p) => `link set dev ${p} nomaster`), `link del dev ${bridge}`]);
}

/**
 * For the agent: remove a pseudowire's bridge when the pseudowire leaves this node (or its attachment
 * mode changes). Refuses while pods are still attached. Releases the l2tpeth device from it.
 */
export async function releasePseudowireBridge(ref: PseudowireRef): Promise<boolean> {
  const bridge = names.bridge(ref.namespace, ref.name);
  await removeBridgeIfUnused(bridge);
  return !(await node.hasLink(bridge));
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
    if (!(await node.hasLink(dev))) {
      throw new CniError(
        CniCode.TryAgainLater,
        `pseudowire: device ${dev} of ${pwText(conf.pseudowire)} is not present yet`,
      );
    }
    const master = await node.master(dev);
    if (master !== undefined) {
      const users = (await node.ports(master)).filter((p) => p.startsWith('kl2h'));
      if (users.length > 0) {
        throw new CniError(
          CniCode.DeviceBusy,
          `pseudowire: ${pwText(conf.pseudowire)} is in bridge mode use by ${users.length} pod(s); mode: exclusive needs it free`,
        );
      }
    }
    const origMac = await node.mac(dev);
    const cmds = [
      ...(master ? [`link set dev ${dev} nomaster`] : []),
      `link set dev ${dev} down`,
      `link set dev ${dev} netns ${cmd.netns}`,
    ];
    try {
      await ipBatch(cmds);
    } catch (e) {
      await ipBatch([`link set dev ${dev} up`]).catch(() => undefined);
      if (/File exists/.test((e as Error).message)) {
        throw new CniError(
          CniCode.InterfaceExists,
          `CNI_NETNS: a link named ${dev} already exists in ${cmd.netns}`,
        );
      }
      throw new CniError(CniCode.LinkSetupFailed, `moving ${dev} into ${cmd.netns}: ${(e as Error).message}`);
    }
    if (master) await removeBridgeIfUnused(master).catch(() => undefined);
    undo.push('move back', () => moveBack(c, cmd.netns, pod.name, dev, pw.mtu, origMac));
  });
}

/** Return an exclusive device from a pod to the node, under its original name, MTU and MAC. */
async function moveBack(c: Ctx, netns: string, current: string, orig: string, mtu: number, mac?: string) {
  const cmds = [`link set dev ${current} down`];
  if (current !== orig) cmds.push(`link set dev ${current} name ${orig}`);
  cmds.push(`link set dev ${orig} netns ${c.deps.nodePid}`);
  await ipBatch(cmds, netns);
  await ipBatch([`link set dev ${orig} mtu ${mtu}${mac ? ` address ${mac}` : ''} up`]);
}

/** Pod side: rename to CNI_IFNAME (fails if it exists), MAC, MTU, addresses, up, routes. */
async function ensurePodLink(
  c: Ctx,
  pod: { name: string },
  mac: string,
  mtu: number,
  ipam: CniResult | undefined,
): Promise<void> {
  const { cmd } = c;
  const ifn = cmd.ifname;
  const cmds = [`link set dev ${pod.name} name ${ifn}`, `link set dev ${ifn} address ${mac} mtu ${mtu}`];
  const gateways = { v4: undefined as string | undefined, v6: undefined as string | undefined };
  for (const ip of ipam?.ips ?? []) {
    const v6 = ip.address.includes(':');
    cmds.push(`addr add ${ip.address} dev ${ifn}${v6 ? ' nodad' : ''}`);
    if (ip.gateway) {
      if (v6) gateways.v6 ??= ip.gateway;
      else gateways.v4 ??= ip.gateway;
    }
  }
  cmds.push(`link set dev ${ifn} up`);
  for (const r of ipam?.routes ?? []) {
    const gw = r.gw ?? (r.dst.includes(':') ? gateways.v6 : gateways.v4);
    let line = `route add ${r.dst}${gw ? ` via ${gw}` : ''} dev ${ifn}`;
    if (r.priority) line += ` metric ${r.priority}`;
    if (r.table !== undefined) line += ` table ${r.table}`;
    if (r.scope !== undefined) line += ` scope ${r.scope}`;
    if (r.mtu) line += ` mtu ${r.mtu}`;
    if (r.advmss) line += ` advmss ${r.advmss}`;
    cmds.push(line);
  }
  try {
    await ipBatch(cmds, cmd.netns);
    pod.name = ifn;
  } catch (e) {
    if (e instanceof IpBatchError && e.index !== 0) pod.name = ifn; // renamed before the failure
    if (e instanceof IpBatchError && e.index === 0 && /File exists/.test(e.stderr)) {
      throw new CniError(
        CniCode.InterfaceExists,
        `CNI_IFNAME: interface ${ifn} already exists in ${cmd.netns}`,
      );
    }
    const line = e instanceof IpBatchError && e.index >= 0 ? ` (${cmds[e.index]})` : '';
    throw new CniError(
      CniCode.LinkSetupFailed,
      `configuring ${ifn} in ${cmd.netns}${line}: ${(e as Error).message}`,
    );
  }
}

// ---------------------------------------------------------------- DEL

async function cmdDel(c: Ctx): Promise<undefined> {
  const { cmd, conf, deps } = c;
  const rec = await deps.store.get(cmd.containerID, cmd.ifname);
  // links and the IPAM release are independent: both run, together
  const results = await Promise.allSettled([
    releaseAttachment(c, rec, {
      mode: rec?.mode ?? conf.mode,
      pseudowire: rec?.pseudowire ?? conf.pseudowire,
      containerID: cmd.containerID,
      ifname: cmd.ifname,
      netns: cmd.netns || rec?.netns || '',
    }),
    (async () => {
      if (!conf.ipam) return;
      const plugin = await findPlugin(conf.ipam.type, cmd.path);
      await execDelegate({ command: 'DEL', plugin, config: delegateConfig(c), env: c.env, logger: c.log });
    })(),
  ]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  await deps.store.remove(cmd.containerID, cmd.ifname);
  return undefined;
}

interface Release {
  mode: 'bridge' | 'exclusive';
  pseudowire: PseudowireRef;
  containerID: string;
  ifname: string;
  netns: string;
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
  if (rec === undefined || a.netns === '' || !(await exists(a.netns))) return;
  const pw = await c.deps.resolver.lookup(a.pseudowire).catch(() => undefined);
  await c.deps.locker.withLock(pwKey(a.pseudowire), async () => {
    try {
      await moveBack(c, a.netns, a.ifname, rec.device, pw?.mtu ?? 1500, rec.deviceMac);
    } catch (e) {
      if (e instanceof IpBatchError && e.index === 0 && /Cannot find device|does not exist/.test(e.stderr))
        return;
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
  if (!(await exists(cmd.netns)))
    throw new CniError(CniCode.CheckFailed, `CNI_NETNS: ${cmd.netns} does not exist`);
  const link = await podLinkInfo(cmd.netns, cmd.ifname);
  if (!link) throw new CniError(CniCode.CheckFailed, `CNI_IFNAME: ${cmd.ifname} is missing in ${cmd.netns}`);
  const mtu = want.mtu ?? conf.mtu ?? pw.mtu;
  if (link.mtu !== mtu)
    throw new CniError(CniCode.CheckFailed, `mtu: ${cmd.ifname} has MTU ${link.mtu}, expected ${mtu}`);
  if (want.mac && link.address.toLowerCase() !== want.mac.toLowerCase()) {
    throw new CniError(
      CniCode.CheckFailed,
      `mac: ${cmd.ifname} has ${link.address}, prevResult says ${want.mac}`,
    );
  }
  for (const ip of prev.ips.filter((i) => i.interface === idx)) {
    const [addr, plen] = ip.address.split('/');
    const ok = (link.addr_info ?? []).some((a) => a.local === addr && String(a.prefixlen) === plen);
    if (!ok) throw new CniError(CniCode.CheckFailed, `ips: ${ip.address} is not assigned to ${cmd.ifname}`);
  }
  if (conf.mode === 'bridge') {
    const bridge = names.bridge(conf.pseudowire.namespace, conf.pseudowire.name);
    const hv = names.hostVeth(cmd.containerID, cmd.ifname);
    if ((await node.master(hv)) !== bridge) {
      throw new CniError(CniCode.CheckFailed, `node veth ${hv} is not a port of bridge ${bridge}`);
    }
    if ((await node.master(pw.ifname)) !== bridge) {
      throw new CniError(
        CniCode.CheckFailed,
        `pseudowire device ${pw.ifname} is not a port of bridge ${bridge}`,
      );
    }
  }
  if (conf.ipam) {
    const plugin = await findPlugin(conf.ipam.type, cmd.path);
    await execDelegate({ command: 'CHECK', plugin, config: delegateConfig(c), env: c.env, logger: c.log });
  }
  return undefined;
}

// ---------------------------------------------------------------- STATUS, GC

async function cmdStatus(c: Ctx): Promise<undefined> {
  if (!c.deps.resolver.ready()) {
    throw new CniError(CniCode.NotAvailable, 'kube-l2tp node agent is not ready (node state not synced yet)');
  }
  if (c.conf.ipam && c.cmd.path.length > 0) {
    const plugin = await findPlugin(c.conf.ipam.type, c.cmd.path);
    await execDelegate({ command: 'STATUS', plugin, config: delegateConfig(c), env: c.env, logger: c.log });
  }
  return undefined;
}

async function cmdGc(c: Ctx): Promise<undefined> {
  const { conf, cmd, deps } = c;
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const stale = (await deps.store.list()).filter(
    (r) => r.network === conf.name && !valid.has(`${r.containerID}/${r.ifname}`),
  );
  const failures: string[] = [];
  const ipamPlugin = conf.ipam ? await findPlugin(conf.ipam.type, cmd.path) : undefined;
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
      await execDelegate({
        command: 'GC',
        plugin: ipamPlugin,
        config: delegateConfig(c),
        env: c.env,
        logger: c.log,
      });
    } catch (e) {
      failures.push(`ipam GC: ${(e as Error).message}`);
    }
  }
  if (failures.length > 0) {
    throw new CniError(CniCode.Internal, `GC: ${failures.length} cleanup(s) failed`, failures.join('; '));
  }
  return undefined;
}
