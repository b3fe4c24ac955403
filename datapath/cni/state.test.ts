import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AttachmentStore, FileLocker, ProcessLocker, type AttachmentRecord, type Locker } from './state.js';

const record = (containerID: string, over: Partial<AttachmentRecord> = {}): AttachmentRecord => ({
  v: 1,
  network: 'n',
  containerID,
  ifname: 'net1',
  netns: `/run/netns/${containerID}`,
  mode: 'exclusive',
  pseudowire: { namespace: 'a', name: 'w' },
  device: `l2tpeth-${containerID}`,
  createdAt: '2026-01-01T00:00:00Z',
  ...over,
});

describe('AttachmentStore.podDevice', () => {
  const base = mkdtempSync(join(tmpdir(), 'kl2tp-state-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  // a directory quiet for longer than the index waits before trusting it
  const settle = (dir: string) => utimesSync(dir, new Date(Date.now() - 5000), new Date(Date.now() - 5000));

  it('names the pod an exclusive attachment moved a device into, and nothing else', async () => {
    const store = new AttachmentStore(join(base, 'a'));
    assert.equal(await store.podDevice('l2tpeth-c1'), undefined, 'no directory yet');
    await store.put(record('c1'));
    await store.put(record('c2', { mode: 'bridge' }));
    await store.put(record('c3', { ipamReleasePending: true }));
    assert.deepEqual(await store.podDevice('l2tpeth-c1'), { netns: '/run/netns/c1', ifname: 'net1' });
    assert.equal(await store.podDevice('l2tpeth-c2'), undefined, 'bridge mode moves no device');
    assert.equal(await store.podDevice('l2tpeth-c3'), undefined, 'an attachment already taken apart');
  });

  it('follows records written after an index was made, in the same clock tick or later', async () => {
    const dir = join(base, 'b');
    const store = new AttachmentStore(dir);
    await store.put(record('c1'));
    settle(dir);
    assert.ok(await store.podDevice('l2tpeth-c1'));
    // a record written and one removed since: the directory's time changed
    await store.put(record('c4'));
    await store.remove('c1', 'net1');
    assert.ok(await store.podDevice('l2tpeth-c4'));
    assert.equal(await store.podDevice('l2tpeth-c1'), undefined);
    // the same directory time as the index's (a write in the tick it was read): not trusted yet
    await store.put(record('c5'));
    const t = new Date();
    utimesSync(dir, t, t);
    assert.equal(await store.podDevice('l2tpeth-c9'), undefined); // index made now
    await store.put(record('c6'));
    utimesSync(dir, t, t);
    assert.ok(
      await store.podDevice('l2tpeth-c6'),
      'read again: the index was made within a second of the change',
    );
  });
});

describe('Locker', () => {
  const base = mkdtempSync(join(tmpdir(), 'kl2tp-lock-'));
  after(() => rmSync(base, { recursive: true, force: true }));

  for (const [kind, make] of [
    ['ProcessLocker', () => new ProcessLocker()],
    ['FileLocker', () => new FileLocker(join(base, 'locks'))],
  ] as const) {
    it(`${kind}: runs the holders of one key one after the other, and says when the key is held`, async () => {
      const locker: Locker = make();
      const order: string[] = [];
      let letFirstGo!: () => void;
      const firstMayEnd = new Promise<void>((r) => (letFirstGo = r));
      let firstIn!: () => void;
      const firstEntered = new Promise<void>((r) => (firstIn = r));
      assert.equal(locker.held('k'), false);
      const first = locker.withLock('k', async () => {
        order.push('first in');
        firstIn();
        await firstMayEnd;
        order.push('first out');
      });
      await firstEntered;
      assert.equal(locker.held('k'), true, 'held while the first runs');
      assert.equal(locker.held('other'), false, 'another key is free');
      const second = locker.withLock('k', async () => {
        order.push('second in');
      });
      letFirstGo();
      await Promise.all([first, second]);
      assert.deepEqual(order, ['first in', 'first out', 'second in']);
      assert.equal(locker.held('k'), false, 'free once both are done');
    });
  }
});
