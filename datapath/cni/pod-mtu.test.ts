// The agent's pod MTU step around what it cannot or must not touch (no root needed): an attachment
// whose CNI command is in flight waits for a later pass, a pod whose namespace went is skipped, one
// whose namespace directory the datapath pod does not mount is reported with the setting to change.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { attachmentKey } from './context.js';
import { podMtuSync } from './pod-mtu.js';
import { AttachmentStore, ProcessLocker, type AttachmentRecord } from './state.js';

const pseudowire = { namespace: 'demo', name: 'red' };
const session = { pseudowire, ifname: 'l2tpeth7', mtu: 1400 };

const record = (containerID: string, netns: string): AttachmentRecord => ({
  v: 1,
  network: 'red-net',
  containerID,
  ifname: 'net1',
  netns,
  mode: 'exclusive',
  pseudowire,
  device: 'l2tpeth7',
  createdAt: '2026-01-01T00:00:00Z',
  mtu: 1446,
  deviceMtu: 1446,
});

describe('podMtuSync', () => {
  const base = mkdtempSync(join(tmpdir(), 'kl2tp-podmtu-'));
  after(() => rmSync(base, { recursive: true, force: true }));

  it('a pod whose namespace file went (the directory is there): skipped, no problem', async () => {
    const store = new AttachmentStore(join(base, 'gone'));
    await store.put(record('c1', join(base, 'c1-netns')));
    const sync = podMtuSync({ store, locker: new ProcessLocker(), logger: silentLogger() });
    assert.deepEqual([...(await sync([session], 'all'))], []);
    assert.equal((await store.get('c1', 'net1'))?.mtu, 1446, 'record as it was');
  });

  it('a namespace directory the datapath pod does not mount: reported, naming the value to set', async () => {
    const store = new AttachmentStore(join(base, 'unmounted'));
    await store.put(record('c2', '/run/kl2tp-not-mounted/netns/cni-1'));
    const sync = podMtuSync({
      store,
      locker: new ProcessLocker(),
      logger: silentLogger(),
      netnsDir: '/var/run/netns',
    });
    const problems = await sync([session], 'all');
    const p = problems.get('demo/red');
    assert.equal(p?.length, 1);
    assert.equal(p[0]!.has, 1446);
    assert.equal(p[0]!.wants, 1400);
    assert.match(p[0]!.why, /set the Helm value cni\.netnsDir to \/run\/kl2tp-not-mounted\/netns/);
    assert.match(p[0]!.why, /the datapath pod mounts \/var\/run\/netns/);
    assert.doesNotMatch(p[0]!.why, /cni-1/, "the status names no pod's namespace");
  });

  it('an attachment whose ADD, CHECK or DEL is in flight: left for a later pass, not waited for', async () => {
    const store = new AttachmentStore(join(base, 'busy'));
    await store.put(record('c3', '/run/kl2tp-not-mounted/netns/cni-3'));
    const locker = new ProcessLocker();
    let release!: () => void;
    const inFlight = locker.withLock(
      attachmentKey('c3', 'net1'),
      () => new Promise<void>((r) => (release = r)),
    );
    const sync = podMtuSync({ store, locker, logger: silentLogger() });
    assert.deepEqual([...(await sync([session], 'all'))], [], 'not touched, so nothing failed');
    release();
    await inFlight;
    assert.equal((await sync([session], 'all')).get('demo/red')?.length, 1, 'tried once free');
  });

  it('pseudowires not carried here, and raises before the backend, are left alone', async () => {
    const store = new AttachmentStore(join(base, 'other'));
    await store.put(record('c4', '/run/kl2tp-not-mounted/netns/cni-4'));
    const sync = podMtuSync({ store, locker: new ProcessLocker(), logger: silentLogger() });
    assert.equal(
      (await sync([{ ...session, pseudowire: { namespace: 'demo', name: 'blue' } }], 'all')).size,
      0,
    );
    assert.equal((await sync([{ ...session, mtu: 1500 }], 'lower')).size, 0);
  });
});
