import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergeShards, nodeLabelValue, shardIndex, shardName, shardsOf } from './node-shards.js';
import { reportedSessions } from './node-status.js';
import type { L2TPNodeState } from './schemas.js';
import { nodeSession, nodeTunnel } from '../../test/fakes/objects.js';

const tunnel = (ids: number[]) =>
  nodeTunnel(
    't',
    ids.map((id) => nodeSession(`pw-${id}`, id)),
    7,
  );

const shard = (
  k: number,
  ids: number[],
  generation: number,
  observed?: number,
  up?: string,
): L2TPNodeState => ({
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'L2TPNodeState',
  metadata: { name: shardName('n1', k), generation },
  spec: { nodeName: 'n1', tunnels: [tunnel(ids)] },
  ...(observed !== undefined
    ? {
        status: {
          observedGeneration: observed,
          backend: 'ebpf' as const,
          tunnels: [
            { name: 't', tunnelId: 7, state: 'Ready' as const, ...(up ? { up: [{ sessionIds: up }] } : {}) },
          ],
          sessions: [],
        },
      }
    : {}),
});

describe('node state shards', () => {
  it('names shards after the node and finds them back, whatever order they come in', () => {
    assert.equal(shardName('n1', 0), 'n1');
    assert.equal(shardName('n1', 2), 'n1.shard-2');
    const other = {
      ...shard(0, [], 1),
      metadata: { name: 'n1.shard-1' },
      spec: { nodeName: 'n9', tunnels: [] },
    };
    const stray = { ...shard(0, [], 1), metadata: { name: 'n1.shard-x' } };
    const found = shardsOf('n1', [shard(2, [3], 1), other, stray, shard(0, [1], 1)]);
    assert.deepEqual(
      found.map((s) => s.metadata.name),
      ['n1', 'n1.shard-2'],
    );
    assert.equal(shardIndex(stray), -1);
  });

  it('labels a node by its name, or by a hash when the name is too long for a label', () => {
    assert.equal(nodeLabelValue('worker-1.example.com'), 'worker-1.example.com');
    const long = 'a'.repeat(70);
    const v = nodeLabelValue(long);
    assert.ok(v.length <= 63 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v), v);
    assert.notEqual(v, nodeLabelValue(`${'a'.repeat(69)}b`));
  });

  it('reads several shards as one: sessions joined, caught up only when every shard is', () => {
    const one = shard(0, [1, 2], 3, 3, '1-2');
    assert.equal(mergeShards([one]), one);
    assert.equal(mergeShards([]), undefined);
    const merged = mergeShards([one, shard(1, [5], 2, 2, '5')])!;
    assert.equal(merged.metadata.name, 'n1');
    assert.deepEqual(
      merged.spec!.tunnels.map((t) => t.sessions.map((s) => s.sessionId)),
      [[1, 2, 5]],
    );
    assert.ok(merged.status!.observedGeneration! >= merged.metadata.generation!);
    assert.deepEqual(
      reportedSessions(merged).map((s) => [s.sessionId, s.pseudowire?.name, s.state]),
      [
        [1, 'pw-1', 'Up'],
        [2, 'pw-2', 'Up'],
        [5, 'pw-5', 'Up'],
      ],
    );
    const behind = mergeShards([one, shard(1, [5], 3, 2, '5')])!;
    assert.ok(behind.status!.observedGeneration! < behind.metadata.generation!, 'shard 1 not caught up');
    const unseen = mergeShards([one, shard(1, [5], 1)])!;
    assert.ok(unseen.status!.observedGeneration! < unseen.metadata.generation!, 'shard 1 has no status');
  });

  it('a tunnel failed in any shard reads as failed', () => {
    const bad = shard(1, [5], 1, 1);
    bad.status!.tunnels![0] = { name: 't', tunnelId: 7, state: 'Failed', message: 'no route' };
    const merged = mergeShards([shard(0, [1], 1, 1, '1'), bad])!;
    assert.equal(merged.status!.tunnels![0]!.state, 'Failed');
    assert.equal(merged.status!.tunnels![0]!.message, 'no route');
    assert.deepEqual(merged.status!.tunnels![0]!.up, [{ sessionIds: '1' }]);
  });
});
