// Which attached pods follow a changed session MTU, when (before or after the backend changes the
// session), in what order their links change, and what the session's status says when they cannot.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttachmentRecord } from '../cni/state.js';
import {
  desiredTargets,
  planPodMtu,
  podMtuMessage,
  reportTargets,
  type PodMtuTarget,
} from './pod-mtu-plan.js';
import type { DesiredState, ReconcileReport } from './reconcile.js';

const pseudowire = { namespace: 'demo', name: 'red' };
const session = (mtu: number, ifname = 'l2tpeth7'): PodMtuTarget => ({ pseudowire, ifname, mtu });

const bridge = (over: Partial<AttachmentRecord> = {}): AttachmentRecord => ({
  v: 1,
  network: 'red-net',
  containerID: 'c1',
  ifname: 'net1',
  netns: '/run/netns/pod1',
  mode: 'bridge',
  pseudowire,
  device: 'l2tpeth7',
  bridge: 'kl2b7',
  hostVeth: 'kl2h0123456789',
  createdAt: '2026-01-01T00:00:00Z',
  mtu: 1446,
  ...over,
});
const exclusive = (over: Partial<AttachmentRecord> = {}): AttachmentRecord =>
  bridge({ mode: 'exclusive', bridge: undefined, hostVeth: undefined, deviceMtu: 1446, ...over });

describe('planPodMtu', () => {
  it('nothing while the pod has the session MTU, in either phase', () => {
    for (const phase of ['lower', 'all'] as const) {
      assert.equal(planPodMtu(bridge(), session(1446), 1446, phase), undefined);
      assert.equal(planPodMtu(exclusive(), session(1446), undefined, phase), undefined);
    }
  });

  it('Bridge mode, lowered: before the backend, the pod end first, then the host end', () => {
    const step = planPodMtu(bridge(), session(1400), 1446, 'lower');
    assert.deepEqual(step?.order, ['pod', 'host']);
    assert.equal(step?.mtu, 1400);
    assert.equal(step?.record.mtu, 1400, 'the record follows');
    assert.deepEqual(planPodMtu(bridge(), session(1400), 1446, 'all')?.order, ['pod', 'host']);
  });

  it('Bridge mode, raised: only after the backend, the host end first, then the pod end', () => {
    assert.equal(planPodMtu(bridge(), session(1500), 1446, 'lower'), undefined);
    const step = planPodMtu(bridge(), session(1500), 1446, 'all');
    assert.deepEqual(step?.order, ['host', 'pod']);
    assert.equal(step?.mtu, 1500);
  });

  it('Bridge mode: a host end that differs from the record (a step cut short) is finished', () => {
    // raised: host end done, pod end not yet (the record still says 1446)
    assert.deepEqual(planPodMtu(bridge(), session(1500), 1500, 'all')?.order, ['host', 'pod']);
    // the record says done, the host end does not: set again
    assert.deepEqual(planPodMtu(bridge({ mtu: 1500 }), session(1500), 1446, 'all')?.order, ['host', 'pod']);
  });

  it('Bridge mode without its host end: the pod went (its DEL is to come), nothing to do', () => {
    assert.equal(planPodMtu(bridge(), session(1400), undefined, 'all'), undefined);
  });

  it("a record without the pod's MTU (an earlier release's): read from the host end, or after the backend", () => {
    assert.deepEqual(planPodMtu(bridge({ mtu: undefined }), session(1400), 1446, 'lower')?.order, [
      'pod',
      'host',
    ]);
    assert.equal(planPodMtu(exclusive({ mtu: undefined }), session(1400), undefined, 'lower'), undefined);
    assert.deepEqual(planPodMtu(exclusive({ mtu: undefined }), session(1400), undefined, 'all')?.order, [
      'pod',
    ]);
  });

  it("Exclusive mode: the pod's device, lowered before the backend, raised after; the record keeps the session's MTU", () => {
    const lower = planPodMtu(exclusive(), session(1400), undefined, 'lower');
    assert.deepEqual(lower?.order, ['pod']);
    assert.equal(lower?.record.deviceMtu, 1400, 'a DEL before the next sync restores this one');
    assert.equal(planPodMtu(exclusive(), session(1500), undefined, 'lower'), undefined);
    assert.deepEqual(planPodMtu(exclusive(), session(1500), undefined, 'all')?.order, ['pod']);
  });

  it("Exclusive mode: a pod holding another session's device is left to that session", () => {
    assert.equal(planPodMtu(exclusive(), session(1400, 'l2tpeth9'), undefined, 'all'), undefined);
  });

  it("a network config's own MTU stays while the session carries it, and follows below it", () => {
    const rec = bridge({ mtu: 1300, configMtu: 1300 });
    assert.equal(planPodMtu(rec, session(1500), 1300, 'all'), undefined, 'raised session: pod keeps 1300');
    const step = planPodMtu(rec, session(1200), 1300, 'lower');
    assert.equal(step?.mtu, 1200);
    const back = planPodMtu({ ...rec, mtu: 1200 }, session(1446), 1200, 'all');
    assert.equal(back?.mtu, 1300, 'back up to its own, not beyond');
  });

  it('Exclusive mode with its own MTU: the record still learns the session MTU', () => {
    const rec = exclusive({ mtu: 1300, configMtu: 1300, deviceMtu: 1446 });
    const step = planPodMtu(rec, session(1500), undefined, 'all');
    assert.equal(step?.mtu, 1300);
    assert.equal(step?.record.deviceMtu, 1500);
  });
});

describe('targets', () => {
  it('before the backend: the desired sessions, not those refused', () => {
    const desired = {
      tunnels: [
        {
          spec: { tunnelId: 1 },
          sessions: [
            { pseudowire, ifname: 'l2tpeth7', mtu: 1400 },
            {
              pseudowire: { namespace: 'demo', name: 'blue' },
              ifname: 'l2tpeth8',
              mtu: 9000,
              refused: 'too big',
            },
          ],
        },
      ],
    } as unknown as DesiredState;
    assert.deepEqual(desiredTargets(desired), [session(1400)]);
  });

  it('after it: the sessions it holds, not those that failed', () => {
    const report = {
      sessions: [
        { pseudowire, ifname: 'l2tpeth7', mtu: 1400, state: 'Up' },
        { pseudowire, ifname: 'l2tpeth8', mtu: 1400, state: 'Down' },
        { pseudowire: { namespace: 'demo', name: 'blue' }, ifname: 'l2tpeth9', mtu: 1400, state: 'Error' },
      ],
    } as unknown as ReconcileReport;
    assert.deepEqual(reportTargets(report), [session(1400), session(1400, 'l2tpeth8')]);
  });
});

describe('podMtuMessage', () => {
  it('how many pods, which MTU, and the first reason', () => {
    assert.equal(podMtuMessage([]), undefined);
    assert.equal(
      podMtuMessage([{ has: 1446, wants: 1400, why: 'set cni.netnsDir' }]),
      '1 attached pod keeps MTU 1446 instead of 1400: set cni.netnsDir',
    );
    assert.equal(
      podMtuMessage([
        { wants: 1400, why: 'first' },
        { has: 1446, wants: 1400, why: 'second' },
      ]),
      '2 attached pods keep its MTU instead of 1400: first',
    );
  });
});
