// The agent's view of its own node's L2TPNodeStates (one, or several shards on a large node:
// lib/api/node-shards.ts): an informer (lib/kube, the client the operator uses too) listing and
// watching the node's label. While the informer follows the server, reads are served from
// its store, so the periodic resync (which repairs the datapath every few seconds) costs the API
// nothing; a GET still happens while it does not (after a watch error, until the next event or
// bookmark) and at least every maxAgeMs, so a watch that stalls without an error costs latency, never
// state. The object grows with the node's sessions, so a GET per node per resync would be the agent's
// largest API load.
import { GROUP, VERSION, type L2TPNodeState, type NodeStateStatus } from '../../lib/api/schemas.js';
import { nodeOfState, nodeSelector, shardsOf } from '../../lib/api/node-shards.js';
import { resourcePath, type KubeClient } from '../../lib/kube/client.js';
import { Informer } from '../../lib/kube/informer.js';
import type { Logger } from '../../lib/log.js';

const PLURAL = 'l2tpnodestates';

export interface NodeStateSource {
  /**
   * The node's shards, shard 0 first; none when the node has no endpoints. `fresh` skips the watch's
   * copy: a decision that must see a change made just before (the uninstall mark) reads the API.
   */
  get(o?: { fresh?: boolean }): Promise<L2TPNodeState[]>;
  /** Calls onChange on every watch event until stop(). */
  watch(onChange: () => void): void;
  /** Writes the status of one shard (by object name). */
  writeStatus(name: string, status: NodeStateStatus): Promise<void>;
  stop(): void;
}

export interface NodeStateSourceOptions {
  /** Longest time a read is served from the watch without a GET (default 5 minutes). */
  maxAgeMs?: number;
  /** Told where each read came from (metrics). */
  onRead?: (from: 'api' | 'watch') => void;
  now?: () => number;
}

/** Quiet time after a shard's event before the wake, on a node with several shards. */
const SHARD_QUIET_MS = 100;
/** The longest a wake waits for the shards' events to stop. */
const SHARD_SETTLE_MAX_MS = 500;

export function kubeNodeStateSource(
  client: Pick<KubeClient, 'get' | 'watch' | 'patch'>,
  nodeName: string,
  log: Logger,
  o: NodeStateSourceOptions = {},
): NodeStateSource {
  const collection = resourcePath({ group: GROUP, version: VERSION, plural: PLURAL });
  const selector = nodeSelector(nodeName);
  const now = o.now ?? Date.now;
  const maxAgeMs = o.maxAgeMs ?? 300_000;
  const informer = new Informer<L2TPNodeState>(
    client,
    {
      path: collection,
      labelSelector: selector,
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'L2TPNodeState',
    },
    log,
  );
  let confirmedAt = 0;
  let started = false;
  let settle: { timer: NodeJS.Timeout; since: number } | undefined;

  return {
    async get(opts) {
      if (!opts?.fresh && started && informer.isLive() && now() - confirmedAt < maxAgeMs) {
        o.onRead?.('watch');
        return shardsOf(nodeName, informer.list());
      }
      const list = await client.get<{ items: L2TPNodeState[] }>(
        `${collection}?labelSelector=${encodeURIComponent(selector)}`,
      );
      o.onRead?.('api');
      confirmedAt = now();
      const shards = shardsOf(nodeName, list.items ?? []);
      log.debug({ shards: shards.length }, 'node state read from the API');
      return shards;
    },
    watch(onChange) {
      // a change of status alone (the agent's own writes) or of metadata leaves the spec as it was:
      // no pass for it, which on a large node would delay the next real change by a whole pass
      // the operator writes the shards a change touches together, and their events still arrive
      // apart: on a node with several, the wake waits until they have stopped for a moment, so one
      // pass sees the whole change
      const wake = () => {
        settle = undefined;
        onChange();
      };
      informer.on((type, obj, old) => {
        if (nodeOfState(obj) !== nodeName) return;
        if (type === 'MODIFIED' && old && old.metadata.generation === obj.metadata.generation) return;
        if (shardsOf(nodeName, informer.list()).length <= 1 && !settle) return onChange();
        const since = settle?.since ?? now();
        if (settle) clearTimeout(settle.timer);
        const ms = Math.max(0, Math.min(SHARD_QUIET_MS, since + SHARD_SETTLE_MAX_MS - now()));
        settle = { timer: setTimeout(wake, ms), since };
      });
      started = true;
      confirmedAt = now();
      informer.start();
    },
    async writeStatus(name, status) {
      // merge patch: an absent key would keep the old value, so a cleared lastError is sent as null
      const path = resourcePath({ group: GROUP, version: VERSION, plural: PLURAL, name });
      await client.patch(`${path}/status`, { status: { ...status, lastError: status.lastError ?? null } });
    },
    stop() {
      if (settle) clearTimeout(settle.timer);
      void informer.stop();
    },
  };
}
