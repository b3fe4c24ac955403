// Tenant isolation on a real cluster (kubelet, containerd, Multus, helm-installed chart): the README
// example's wire lives in l2tp-demo; a pod of another namespace whose NetworkAttachmentDefinition names
// that wire gets no interface, the pod's events say why, and the node keeps nothing of the attempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { until } from '../harness/wait.js';
import { RealLab } from './real-lab.js';

const OWNER = 'l2tp-demo';
const INTRUDER = 'tn-intruder';
const PREFIX = 'tn';

describe('real cluster: a pod of another namespace does not get onto a wire', () => {
  const lab = RealLab.forDescribe('tenancy', { prefix: PREFIX, underlay: '10.251.200', podNet: '10.251' });

  it("refuses a NAD of another namespace naming the wire, with the reason in the pod's events", async () => {
    await lab.apply(lab.example());
    await lab.waitPseudowireReady(OWNER, 'red-wire');
    const nad = await until('the NAD of red-wire', () =>
      lab.cluster
        .getJson<{ spec: { config: string } }>(['network-attachment-definitions', '-n', OWNER, 'red-wire'])
        .catch(() => undefined),
    );
    const before = await lab.nodeFootprint(lab.nodeA);
    await lab.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: INTRUDER } },
      {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: 'borrowed', namespace: INTRUDER },
        spec: { config: nad.spec.config }, // names l2tp-demo/red-wire
      },
    ]);
    const msgs = await lab.failingPod({ namespace: INTRUDER, name: 'spy' }, lab.nodeA, 'borrowed');
    console.log(
      `  attempt [${INTRUDER}] pod spy with a NAD naming ${OWNER}/red-wire\n    -> event: ${msgs[0]}`,
    );
    assert.ok(
      msgs.some((m) => m.includes(`pseudowire ${OWNER}/red-wire is not shared with namespace ${INTRUDER}`)),
      msgs.join(' | '),
    );
    const phase = await lab.kubectl(['get', 'pod', '-n', INTRUDER, 'spy', '-o', 'jsonpath={.status.phase}']);
    assert.equal(phase, 'Pending', 'the pod never ran');
    await lab.kubectl(['delete', 'pod', '-n', INTRUDER, 'spy', '--wait=true', '--timeout=60s']);
    assert.deepEqual(
      await lab.footprintBackTo(lab.nodeA, before),
      before,
      'the node keeps nothing of the attempt',
    );
  });
});
