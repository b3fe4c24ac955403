// Leader election against an in-memory Lease API with the API server's optimistic concurrency
// (a replace with a stale resourceVersion is a 409): one leader at a time, renewals keep it,
// expiry as seen by the candidate's own clock hands it over, release hands it over at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../lib/log.js';
import { ApiError } from '../lib/kube/client.js';
import { LeaderElector, type LeaderElectionConfig } from './leader.js';

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseTransitions?: number; leaseDurationSeconds?: number };
}

function leaseApi() {
  const store = new Map<string, Lease>();
  let rv = 0;
  const api = {
    store,
    async get<T>(path: string): Promise<T> {
      const l = store.get(path);
      if (!l) throw new ApiError(404, 'NotFound', `${path} not found`);
      return structuredClone(l) as T;
    },
    async create<T>(path: string, obj: unknown): Promise<T> {
      const l = structuredClone(obj) as Lease;
      const key = `${path}/${l.metadata.name}`;
      if (store.has(key)) throw new ApiError(409, 'AlreadyExists', 'exists');
      l.metadata.resourceVersion = String(++rv);
      store.set(key, l);
      return structuredClone(l) as T;
    },
    async replace<T>(path: string, obj: unknown): Promise<T> {
      const l = structuredClone(obj) as Lease;
      if (store.get(path)?.metadata.resourceVersion !== l.metadata.resourceVersion)
        throw new ApiError(409, 'Conflict', 'the object has been modified');
      l.metadata.resourceVersion = String(++rv);
      store.set(path, l);
      return structuredClone(l) as T;
    },
  };
  return api;
}

const cfg = (identity: string): LeaderElectionConfig => ({
  namespace: 'kube-l2tp',
  name: 'kube-l2tp-operator',
  identity,
  leaseDurationMs: 1000,
  renewDeadlineMs: 800,
  retryPeriodMs: 50,
});
const KEY = '/apis/coordination.k8s.io/v1/namespaces/kube-l2tp/leases/kube-l2tp-operator';

describe('LeaderElector', () => {
  it('one leader at a time; renewals keep the lease without a transition', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const b = new LeaderElector(api, cfg('b'), silentLogger());
    assert.equal(await a.tryAcquireOrRenew(), true);
    assert.equal(await b.tryAcquireOrRenew(), false);
    assert.equal(await a.tryAcquireOrRenew(), true);
    const l = api.store.get(KEY)!;
    assert.equal(l.spec.holderIdentity, 'a');
    assert.equal(l.spec.leaseTransitions, 0);
    assert.equal(l.spec.leaseDurationSeconds, 1);
  });

  it('a lease not renewed for its duration goes to the other candidate, counting a transition', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const b = new LeaderElector(api, cfg('b'), silentLogger());
    await a.tryAcquireOrRenew();
    assert.equal(await b.tryAcquireOrRenew(), false, 'b starts its clock on the record it saw');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await b.tryAcquireOrRenew(), true);
    assert.equal(api.store.get(KEY)!.spec.holderIdentity, 'b');
    assert.equal(api.store.get(KEY)!.spec.leaseTransitions, 1);
    assert.equal(await a.tryAcquireOrRenew(), false, 'the old leader sees a fresh record by b');
  });

  it('release hands the lease over without waiting for expiry', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const b = new LeaderElector(api, cfg('b'), silentLogger());
    await a.tryAcquireOrRenew();
    assert.equal(await b.tryAcquireOrRenew(), false);
    await a.release();
    assert.equal(await b.tryAcquireOrRenew(), true);
  });

  it('a concurrent write (409) loses the round instead of failing', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    await a.tryAcquireOrRenew();
    const racing = { ...api, replace: () => Promise.reject(new ApiError(409, 'Conflict', 'modified')) };
    assert.equal(await new LeaderElector(racing, cfg('a'), silentLogger()).tryAcquireOrRenew(), false);
  });

  it('run calls onStarted when leading and onStopped on stop', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const events: string[] = [];
    // the elector's sleeps are unref'd: something must hold the test's event loop open
    const hold = setInterval(() => {}, 1000);
    const run = a.run(
      () => {
        events.push('started');
        setTimeout(() => a.stop(), 120);
      },
      () => void events.push('stopped'),
    );
    await run.finally(() => clearInterval(hold));
    assert.deepEqual(events, ['started', 'stopped']);
    assert.equal(a.leader, false);
  });

  it('keeps the lease while a slow start runs: no second leader meanwhile', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const b = new LeaderElector(api, cfg('b'), silentLogger());
    const hold = setInterval(() => {}, 1000);
    let bLed = false;
    // a's controller takes longer than the lease to start (caches of a large cluster to list)
    const runA = a.run(
      () => new Promise<void>((r) => setTimeout(r, 1500)),
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, 100));
    const runB = b.run(
      () => void (bLed = true),
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, 2000));
    a.stop();
    b.stop();
    await Promise.all([runA, runB]).finally(() => clearInterval(hold));
    assert.equal(bLed, false, 'b took the lease while a was starting: two leaders');
  });

  it('a start that fails gives the lease up and reports the failure', async () => {
    const api = leaseApi();
    const a = new LeaderElector(api, cfg('a'), silentLogger());
    const events: string[] = [];
    const hold = setInterval(() => {}, 1000);
    const run = a.run(
      () => Promise.reject(new Error('no caches')),
      () => void events.push('stopped'),
    );
    await assert.rejects(
      run.finally(() => clearInterval(hold)),
      /no caches/,
    );
    assert.deepEqual(events, ['stopped']);
    assert.equal(a.leader, false);
  });
});
