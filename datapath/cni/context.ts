// What every CNI command handler gets (the parsed request, the agent's dependencies, the pod's
// netns) and the checks several of them share. Handlers throw CniError; the dispatcher turns it
// into the spec's error JSON.
import type { PseudowireDevice, PseudowireRef, PseudowireResolver } from '../../lib/agent-protocol.js';
import { namespaceAllowed } from '../../lib/api/schemas.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import type { Logger } from '../../lib/log.js';
import type { CmdArgs, Env, NetConf } from './config.js';
import { delegateSearchPath, findPlugin, type DelegateCall } from './ipam.js';
import { exists, isNamespaceFd, type Netns } from './netops.js';
import type { AttachmentStore, Locker } from './state.js';

export interface PluginDeps {
  resolver: PseudowireResolver;
  logger: Logger;
  store: AttachmentStore;
  locker: Locker;
  /** A PID in the node's network namespace (exclusive-mode devices return there on DEL). */
  nodePid: number;
  /** Directories of the node's CNI plugins as this process sees them, searched before CNI_PATH. */
  delegateDirs?: readonly string[];
  /** IPAM delegates a config may name (they run in this privileged process); default IPAM_TYPES. */
  ipamTypes?: readonly string[];
}

export interface Ctx {
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

/** One command: its stdout on success (ADD's result), nothing for the others. */
export type Handler = (c: Ctx) => Promise<string | undefined>;

/**
 * The lock of one attachment: its ADD, CHECK, DEL and GC run one after the other. A runtime sends
 * a DEL as soon as it gives up on an ADD, while the agent may still be making it; run beside it,
 * the DEL finds nothing yet and the ADD then leaves links, a lease and a record nobody removes.
 * Taken before a pseudowire's lock, never inside one.
 */
export const attachmentKey = (containerID: string, ifname: string): string => `att_${containerID}_${ifname}`;

/** The lock of one pseudowire's node-side links (its bridge, its device). */
export const pwKey = (r: PseudowireRef): string => `pw_${r.namespace}_${r.name}`;
export const pwText = (r: PseudowireRef): string => `${r.namespace}/${r.name}`;

/** The agent's resolver may say more than the protocol's fields: the session's state and error. */
type PseudowireReport = PseudowireDevice & { state?: string; error?: string };

/**
 * The pseudowire's device on this node, for a pod that may use it. Every refusal names the
 * pseudowire (the runtime shows the message in the pod's events) and comes before anything is made.
 * Tenancy: the pod's namespace comes from the runtime (K8S_POD_NAMESPACE), never from the config,
 * and a pod attaches only to a pseudowire of its own namespace or to one that lists its namespace
 * in spec.allowedNamespaces. Another namespace's pseudowire that does not exist and one that is not
 * shared get the same answer, so the refusal tells nothing about other namespaces.
 */
export async function lookupPseudowire(c: Ctx): Promise<PseudowireDevice> {
  const name = pwText(c.conf.pseudowire);
  const podNamespace = c.cmd.args.K8S_POD_NAMESPACE;
  if (podNamespace === undefined || podNamespace === '') {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `CNI_ARGS: K8S_POD_NAMESPACE is missing: kube-l2tp attaches a pod only to pseudowires its namespace may use, ` +
        `so the runtime must name the pod's namespace (kubelet and Multus do; by hand: CNI_ARGS=K8S_POD_NAMESPACE=<namespace>)`,
    );
  }
  const foreign = c.conf.pseudowire.namespace !== podNamespace;
  const notShared = new CniError(
    CniCode.NamespaceNotAllowed,
    `pseudowire ${name} is not shared with namespace ${podNamespace}: a pod attaches only to pseudowires of its ` +
      `own namespace, or to one whose spec.allowedNamespaces lists "${podNamespace}"`,
  );
  if (!c.deps.resolver.ready()) {
    throw new CniError(
      CniCode.TryAgainLater,
      `pseudowire ${name}: the kube-l2tp node agent has not synced this node's state yet; try again later`,
    );
  }
  const pw = (await c.deps.resolver.lookup(c.conf.pseudowire)) as PseudowireReport | undefined;
  if (foreign && !namespaceAllowed(pw?.allowedNamespaces, podNamespace)) throw notShared;
  if (pw === undefined) {
    throw new CniError(
      CniCode.PseudowireUnknown,
      `pseudowire ${name} has no endpoint on this node: it does not exist, is not allocated yet, or its tunnel does not end on this node`,
    );
  }
  if (c.conf.mode !== undefined && c.conf.mode !== pw.mode) {
    const spec = pw.mode === 'exclusive' ? 'Exclusive' : 'Bridge';
    throw new CniError(
      CniCode.InvalidConfig,
      `invalid network config: mode: "${c.conf.mode}", but pseudowire ${name} has spec.attachment.mode ${spec}: ` +
        `the Pseudowire decides how pods attach; remove "mode" from the network config`,
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
export function requireNetns(c: Ctx, code: number = CniCode.UnknownContainer): void {
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
export function netnsReachable(ns: Netns, nsError?: unknown): boolean {
  if (typeof ns === 'number') return true;
  return nsError === undefined && ns !== '' && exists(ns);
}

/**
 * The IPAM delegate's executable, found where this process sees the node's plugins. Its type passed
 * parseNetConf's check (spec.ipam's rules): a network config is a tenant's, the delegate runs with the
 * agent's privileges.
 */
export function findIpam(c: Ctx, type: string): Promise<string> {
  return findPlugin(type, delegateSearchPath(c.deps.delegateDirs, c.cmd.path));
}

/** The IPAM delegate invocation for this request: the same full config, as libcni delegates. */
export function delegateCall(c: Ctx, command: DelegateCall['command'], plugin: string): DelegateCall {
  return { command, plugin, config: c.conf.raw, env: c.env, logger: c.log };
}

/** Steps of a failing ADD, undone newest first; an undo that fails is logged and the rest still run. */
export class UndoStack {
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
