// For the agent: brings the links of attached pods to their session's MTU when it changed (the plan
// is datapath/agent/pod-mtu-plan.ts). Works on the CNI's attachment records, under each
// attachment's lock, so it never runs beside an ADD, CHECK or DEL of the same attachment.
import { dirname } from 'node:path';
import {
  planPodMtu,
  podTarget,
  pwRefKey,
  type PodMtuPhase,
  type PodMtuProblem,
  type PodMtuTarget,
  type SyncPodMtu,
} from '../agent/pod-mtu-plan.js';
import type { Logger } from '../../lib/log.js';
import { attachmentKey } from './context.js';
import { netnsHint } from './netns-hint.js';
import { errnoOf, exists, inNetns, names, node, nodeRtnl } from './netops.js';
import type { AttachmentRecord, AttachmentStore, Locker } from './state.js';

export interface PodMtuOptions {
  store: AttachmentStore;
  /** The CNI server's locker: the same per-attachment keys as its commands. */
  locker: Locker;
  logger: Logger;
  /**
   * Where the datapath pod mounts the runtime's network namespaces (the chart's cni.netnsDir), for
   * the message when a pod's namespace cannot be opened; unknown when the agent runs on a host.
   */
  netnsDir?: string;
}

/** Why a pod's links were not changed; the message goes to the session's status. */
class PodMtuError extends Error {
  constructor(
    message: string,
    /** For the log: what the status leaves out (the pod's namespace path, the errno). */
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

type Outcome = 'changed' | 'unchanged' | 'gone';

/** The node end of a Bridge-mode pod's veth (named as DEL names it when a record lacks it). */
const hostVethOf = (rec: AttachmentRecord): string | undefined =>
  rec.mode === 'bridge' ? (rec.hostVeth ?? names.hostVeth(rec.containerID, rec.ifname)) : undefined;
const mtuOf = (dev: string | undefined): number | undefined =>
  dev !== undefined ? node.mtu(dev) : undefined;

export function podMtuSync(o: PodMtuOptions): SyncPodMtu {
  const log = o.logger;
  /** The last problem logged per attachment: a pod that stays unreachable is logged once, not every pass. */
  const logged = new Map<string, string>();

  const unreachable = (rec: AttachmentRecord, err: string): PodMtuError => {
    const dir = dirname(rec.netns);
    return new PodMtuError(
      `the datapath pod cannot open network namespaces in ${dir} (${err}): ${netnsHint(rec.netns, o.netnsDir)}`,
      {
        netns: rec.netns,
      },
    );
  };

  /** One attachment, under its lock, from its record as it is now. */
  const apply = async (
    containerID: string,
    ifname: string,
    session: PodMtuTarget,
    phase: PodMtuPhase,
  ): Promise<Outcome> => {
    const rec = await o.store.get(containerID, ifname);
    if (!rec || rec.ipamReleasePending || pwRefKey(rec.pseudowire) !== pwRefKey(session.pseudowire))
      return 'gone';
    const hostVeth = hostVethOf(rec);
    const step = planPodMtu(rec, session, mtuOf(hostVeth), phase);
    if (!step) return 'unchanged';
    if (!exists(rec.netns)) {
      // the namespace file went from a directory this pod sees: the pod went, its DEL is to come
      if (exists(dirname(rec.netns))) return 'gone';
      throw unreachable(rec, 'the directory is not there');
    }
    let found = true;
    const setHost = async () => {
      const index = hostVeth !== undefined ? node.ifindex(hostVeth) : undefined;
      if (index === undefined || mtuOf(hostVeth) === step.mtu) return;
      await nodeRtnl().links.set(index, { mtu: step.mtu }, hostVeth);
    };
    const setPod = () =>
      inNetns(rec.netns, async (r) => {
        const link = await r.links.byName(rec.ifname);
        if (!link) found = false;
        else if (link.mtu !== step.mtu) await r.links.set(link.index, { mtu: step.mtu }, rec.ifname);
      }).catch((e: unknown) => {
        // a socket that could not enter the namespace has no netlink errno
        if (errnoOf(e) !== undefined) throw e;
        throw unreachable(rec, e instanceof Error ? e.message : String(e));
      });
    for (const link of step.order) {
      if (link === 'host') await setHost();
      else await setPod();
      if (!found) return 'gone'; // its interface left the pod: its DEL is to come
    }
    await o.store.put(step.record);
    log.info(
      { containerID, ifname, netns: rec.netns, mode: rec.mode, from: rec.mtu, mtu: step.mtu },
      "pod's interface brought to the session's MTU",
    );
    return 'changed';
  };

  return async (targets, phase) => {
    const problems = new Map<string, PodMtuProblem[]>();
    const bySession = new Map(targets.map((t) => [pwRefKey(t.pseudowire), t]));
    const seen = new Set<string>();
    for (const rec of await o.store.current()) {
      const session = bySession.get(pwRefKey(rec.pseudowire));
      if (!session) continue;
      const { containerID, ifname } = rec;
      const lock = attachmentKey(containerID, ifname);
      seen.add(lock);
      // a first look without the lock or the pod's namespace: most pods need nothing
      const hostMtu = mtuOf(hostVethOf(rec));
      if (!planPodMtu(rec, session, hostMtu, phase)) continue;
      // an ADD, CHECK or DEL of this attachment in flight: the pass after it (every ADD and DEL
      // starts one) finds the attachment as that command left it
      if (o.locker.held(lock)) continue;
      try {
        await o.locker.withLock(lock, () => apply(containerID, ifname, session, phase));
        if (logged.delete(lock)) log.info({ containerID, ifname }, "the pod's MTU problem is resolved");
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        const key = pwRefKey(rec.pseudowire);
        const has = rec.mtu ?? hostMtu;
        problems.set(key, [
          ...(problems.get(key) ?? []),
          { ...(has !== undefined ? { has } : {}), wants: podTarget(rec, session.mtu), why },
        ]);
        if (logged.get(lock) === why) continue;
        logged.set(lock, why);
        log.warn(
          {
            containerID,
            ifname,
            pseudowire: key,
            ...(e instanceof PodMtuError ? e.detail : {}),
            err: why,
          },
          "could not bring the pod's interface to the session's MTU: it keeps its MTU, tried again every pass",
        );
      }
    }
    if (phase === 'all') for (const k of logged.keys()) if (!seen.has(k)) logged.delete(k);
    return problems;
  };
}
