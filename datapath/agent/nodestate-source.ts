// The agent's view of its own L2TPNodeState: a GET, then a watch filtered to that single name whose
// events carry the object. While the watch is up, reads are served from its last event, so the
// periodic resync (which repairs the datapath every few seconds) costs the API nothing; a full GET
// still happens when the watch is down and at least every maxAgeMs, so a watch that stalls without
// an error costs latency, never state. The object grows with the node's sessions, so a GET per node
// per resync would be the agent's largest API load.
import * as k8s from '@kubernetes/client-node';
import { GROUP, VERSION, type L2TPNodeState, type NodeStateStatus } from '../../lib/api/schemas.js';
import type { Logger } from '../../lib/log.js';

const PLURAL = 'l2tpnodestates';

export interface NodeStateSource {
  /**
   * Current object; undefined when it does not exist (the node has no endpoints). `fresh` skips the
   * watch's copy: a decision that must see a change made just before (the uninstall mark) reads the API.
   */
  get(o?: { fresh?: boolean }): Promise<L2TPNodeState | undefined>;
  /** Calls onChange on every watch event until stop(). */
  watch(onChange: () => void): void;
  writeStatus(status: NodeStateStatus): Promise<void>;
  stop(): void;
}

export interface NodeStateSourceOptions {
  /** Longest time a read is served from the watch without a GET (default 5 minutes). */
  maxAgeMs?: number;
  /** Told where each read came from (metrics). */
  onRead?: (from: 'api' | 'watch') => void;
  now?: () => number;
}

export function kubeNodeStateSource(
  kc: k8s.KubeConfig,
  nodeName: string,
  log: Logger,
  o: NodeStateSourceOptions = {},
): NodeStateSource {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const watcher = new k8s.Watch(kc);
  const now = o.now ?? Date.now;
  const maxAgeMs = o.maxAgeMs ?? 300_000;
  let abort: AbortController | undefined;
  let stopped = false;
  let backoffMs = 500;
  // The object as the watch last told it (undefined obj: deleted), and when the API last confirmed
  // it; only set while the watch is up. `epoch` moves on every event so that a GET answered after an
  // event does not overwrite newer news with its older copy.
  let cache: { obj: L2TPNodeState | undefined; confirmedAt: number } | undefined;
  let epoch = 0;
  let watching = false;

  const startWatch = async (onChange: () => void) => {
    if (stopped) return;
    try {
      abort = await watcher.watch(
        `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        { fieldSelector: `metadata.name=${nodeName}`, allowWatchBookmarks: true },
        (phase: string, obj: unknown) => {
          backoffMs = 500;
          if (phase === 'BOOKMARK') return;
          epoch++;
          const confirmedAt = cache?.confirmedAt ?? now();
          if (phase === 'ADDED' || phase === 'MODIFIED') cache = { obj: obj as L2TPNodeState, confirmedAt };
          else if (phase === 'DELETED') cache = { obj: undefined, confirmedAt };
          else cache = undefined; // ERROR: read from the API next time
          onChange();
        },
        (err: unknown) => {
          watching = false;
          cache = undefined;
          epoch++;
          if (stopped) return;
          if (err) log.warn({ err: String(err) }, 'node state watch ended; restarting');
          // the GET in the next reconcile re-lists, so a restart never needs a resourceVersion
          setTimeout(() => void startWatch(onChange), backoffMs);
          backoffMs = Math.min(backoffMs * 2, 30_000);
          onChange();
        },
      );
      watching = true;
    } catch (err) {
      log.warn({ err: String(err) }, 'node state watch failed to start; retrying');
      setTimeout(() => void startWatch(onChange), backoffMs);
      backoffMs = Math.min(backoffMs * 2, 30_000);
    }
  };

  return {
    async get(opts) {
      if (!opts?.fresh && watching && cache && now() - cache.confirmedAt < maxAgeMs) {
        o.onRead?.('watch');
        return cache.obj;
      }
      const seen = epoch;
      let obj: L2TPNodeState | undefined;
      try {
        obj = (await api.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          name: nodeName,
        })) as L2TPNodeState;
      } catch (e) {
        if (!(e instanceof k8s.ApiException && e.code === 404)) throw e;
      }
      o.onRead?.('api');
      log.debug({ found: obj !== undefined }, 'node state read from the API');
      if (watching && epoch === seen) cache = { obj, confirmedAt: now() };
      else if (cache) cache.confirmedAt = now(); // newer than this GET already: keep it, confirmed
      return obj;
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
