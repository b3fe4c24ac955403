// The agent's view of its own L2TPNodeState: one GET, then a watch filtered to that single name.
// The watch only wakes the agent early; correctness comes from the periodic resync re-reading the
// object, so a dropped watch or a missed event costs latency, never state.
import * as k8s from '@kubernetes/client-node';
import { GROUP, VERSION, type L2TPNodeState, type NodeStateStatus } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';

const PLURAL = 'l2tpnodestates';

export interface NodeStateSource {
  /** Current object; undefined when it does not exist (the node has no endpoints). */
  get(): Promise<L2TPNodeState | undefined>;
  /** Calls onChange on every watch event until stop(). */
  watch(onChange: () => void): void;
  writeStatus(status: NodeStateStatus): Promise<void>;
  stop(): void;
}

export function kubeNodeStateSource(kc: k8s.KubeConfig, nodeName: string, log: Logger): NodeStateSource {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const watcher = new k8s.Watch(kc);
  let abort: AbortController | undefined;
  let stopped = false;
  let backoffMs = 500;

  const startWatch = async (onChange: () => void) => {
    if (stopped) return;
    try {
      abort = await watcher.watch(
        `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        { fieldSelector: `metadata.name=${nodeName}`, allowWatchBookmarks: true },
        (phase) => {
          backoffMs = 500;
          if (phase !== 'BOOKMARK') onChange();
        },
        (err: unknown) => {
          if (stopped) return;
          if (err) log.warn({ err: String(err) }, 'node state watch ended; restarting');
          // the GET in the next reconcile re-lists, so a restart never needs a resourceVersion
          setTimeout(() => void startWatch(onChange), backoffMs);
          backoffMs = Math.min(backoffMs * 2, 30_000);
          onChange();
        },
      );
    } catch (err) {
      log.warn({ err: String(err) }, 'node state watch failed to start; retrying');
      setTimeout(() => void startWatch(onChange), backoffMs);
      backoffMs = Math.min(backoffMs * 2, 30_000);
    }
  };

  return {
    async get() {
      try {
        return (await api.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name: nodeName,
        })) as L2TPNodeState;
      } catch (e) {
        if (e instanceof k8s.ApiException && e.code === 404) return undefined;
        throw e;
      }
    },
    watch(onChange) {
      void startWatch(onChange);
    },
    async writeStatus(status) {
      // merge patch: an absent key would keep the old value, so a cleared lastError is sent as null
      await api.patchClusterCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name: nodeName,
          body: { status: { ...status, lastError: status.lastError ?? null } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    },
    stop() {
      stopped = true;
      abort?.abort();
    },
  };
}
