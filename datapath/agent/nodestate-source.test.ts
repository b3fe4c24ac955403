// The agent's node-state source against a scripted API: it selects its node's shards by label and
// spec.nodeName, and wakes the agent for a change of spec or a shard coming or going, not for a
// status write (the agent's own), which on a large node would hold the next real change back by a pass.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeSelector } from '../../lib/api/node-shards.js';
import type { L2TPNodeState } from '../../lib/api/schemas.js';
import type { KubeClient, WatchEvent } from '../../lib/kube/client.js';
import { silentLogger } from '../../lib/log.js';
import { kubeNodeStateSource } from './nodestate-source.js';

const state = (
  name: string,
  node: string,
  generation: number,
  rv: string,
  observed?: number,
): L2TPNodeState => ({
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name, generation, resourceVersion: rv },
  spec: { nodeName: node, tunnels: [] },
  ...(observed !== undefined ? { status: { observedGeneration: observed } } : {}),
});

function scriptedApi(items: L2TPNodeState[], events: WatchEvent<L2TPNodeState>[]) {
  const paths: string[] = [];
  let push: ((e: WatchEvent<L2TPNodeState>) => void) | undefined;
  const api: Pick<KubeClient, 'get' | 'watch' | 'patch'> = {
    async get<T>(path: string): Promise<T> {
      paths.push(path);
      return { metadata: { resourceVersion: '1' }, items: structuredClone(items) } as T;
    },
    async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal) {
      paths.push(path);
      push = onEvent as (e: WatchEvent<L2TPNodeState>) => void;
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
    },
    async patch<T>(): Promise<T> {
      return {} as T;
    },
  };
  return { api, paths, send: () => events.splice(0).forEach((e) => push?.(structuredClone(e))) };
}

const until = async (ok: () => boolean) => {
  for (const end = Date.now() + 3000; !ok() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), 'condition not reached');
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('node state source', () => {
  it("reads its node's shards, shard 0 first, and wakes only for a spec change or a shard added or gone", async () => {
    const s0 = state('n1', 'n1', 1, '2');
    const s1 = state('n1.shard-1', 'n1', 1, '3');
    // a label value may hash-collide: another node's object is left out by spec.nodeName
    const other = state('x', 'n9', 1, '4');
    const events: WatchEvent<L2TPNodeState>[] = [];
    const { api, paths, send } = scriptedApi([s1, other, s0], events);
    const src = kubeNodeStateSource(api, 'n1', silentLogger());
    let wakes = 0;
    src.watch(() => wakes++);
    await until(() => paths.some((p) => p.includes('watch=')));
    assert.ok(paths[0]!.includes(`labelSelector=${encodeURIComponent(nodeSelector('n1'))}`), paths[0]);
    assert.deepEqual(
      (await src.get()).map((s) => s.metadata.name),
      ['n1', 'n1.shard-1'],
    );
    await until(() => wakes > 0);
    await sleep(200);
    const listed = wakes;
    events.push({ type: 'MODIFIED', object: state('n1', 'n1', 1, '5', 1) }); // the agent's own status write
    send();
    await sleep(200);
    assert.equal(wakes, listed, 'a status write wakes nothing');
    // one change written over the shards: a new spec, a shard added, another gone
    events.push(
      { type: 'MODIFIED', object: state('n1.shard-1', 'n1', 2, '6') },
      { type: 'ADDED', object: state('n1.shard-2', 'n1', 1, '7') },
      { type: 'DELETED', object: state('n1.shard-2', 'n1', 1, '8') },
    );
    send();
    await until(() => wakes > listed);
    await sleep(200);
    assert.equal(wakes, listed + 1, "the shards' events of one change wake one pass");
    src.stop();
  });

  it('wakes at once for each change on a node with one node state', async () => {
    const events: WatchEvent<L2TPNodeState>[] = [];
    const { api, paths, send } = scriptedApi([state('n1', 'n1', 1, '2')], events);
    const src = kubeNodeStateSource(api, 'n1', silentLogger());
    let wakes = 0;
    src.watch(() => wakes++);
    await until(() => paths.some((p) => p.includes('watch=')) && wakes === 1);
    events.push(
      { type: 'MODIFIED', object: state('n1', 'n1', 2, '3') },
      { type: 'MODIFIED', object: state('n1', 'n1', 3, '4') },
    );
    send();
    assert.equal(wakes, 3, 'no timer between a change and its wake');
    src.stop();
  });
});
