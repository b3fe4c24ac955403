// The agent's view of its own L2TPNodeState: an informer (lib/kube, the client the operator uses too)
// listing and watching that single name. While the informer follows the server, reads are served from
// its store, so the periodic resync (which repairs the datapath every few seconds) costs the API
// nothing; a GET still happens while it does not (after a watch error, until the next event or
// bookmark) and at least every maxAgeMs, so a watch that stalls without an error costs latency, never
// state. The object grows with the node's sessions, so a GET per node per resync would be the agent's
// largest API load.
import { GROUP, VERSION, type L2TPNodeState, type NodeStateStatus } from '../../lib/api/schemas.js';
import { isNotFound, resourcePath, type KubeClient } from '../../lib/kube/client.js';
import { Informer } from '../../lib/kube/informer.js';
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
  client: Pick<KubeClient, 'get' | 'watch' | 'patch'>,
  nodeName: string,
  log: Logger,
  o: NodeStateSourceOptions = {},
): NodeStateSource {
  const collection = resourcePath({ group: GROUP, version: VERSION, plural: PLURAL });
  const path = resourcePath({ group: GROUP, version: VERSION, plural: PLURAL, name: nodeName });
  const now = o.now ?? Date.now;
  const maxAgeMs = o.maxAgeMs ?? 300_000;
  const informer = new Informer<L2TPNodeState>(
    client,
    {
      path: collection,
      fieldSelector: `metadata.name=${nodeName}`,
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'L2TPNodeState',
    },
    log,
  );
  let confirmedAt = 0;
  let started = false;

  return {
    async get(opts) {
      if (!opts?.fresh && started && informer.isLive() && now() - confirmedAt < maxAgeMs) {
        o.onRead?.('watch');
        return informer.get(nodeName);
      }
      let obj: L2TPNodeState | undefined;
      try {
        obj = await client.get<L2TPNodeState>(path);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      o.onRead?.('api');
      confirmedAt = now();
      log.debug({ found: obj !== undefined }, 'node state read from the API');
      return obj;
    },
    watch(onChange) {
      informer.on(() => onChange());
      started = true;
      confirmedAt = now();
      informer.start();
    },
    async writeStatus(status) {
      // merge patch: an absent key would keep the old value, so a cleared lastError is sent as null
      await client.patch(`${path}/status`, { status: { ...status, lastError: status.lastError ?? null } });
    },
    stop() {
      void informer.stop();
    },
  };
}
