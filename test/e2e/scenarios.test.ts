// The in-cluster e2e scenarios (test/e2e/scenarios.ts) on one real cluster, in order: several pods on
// one bridge with the UDP checksums on the wire, IP encapsulation with cookies from a Secret checked
// by tshark on the underlay, a pod re-created at once, a pseudowire's MTU edited under its pods (they
// follow it), a pseudowire deleted under its pods and re-created. Pods are attached by the runtime (containerd -> Multus -> kube-l2tp), traffic goes
// through kubectl exec.
import { after, before, describe, it } from 'node:test';
import { progress, RealLab } from './real-lab.js';
import { apply, namespaceObj, scenarioSteps } from './scenarios.js';

const PREFIX = 'qa';
const NS = 'qa-e2e';

describe('e2e scenarios on a real cluster', () => {
  const lab = RealLab.forDescribe('scenarios', { prefix: PREFIX, underlay: '10.243.0', podNet: '10.244' });
  const started = Date.now();

  before(() => apply(lab.target(), [namespaceObj(NS)]));

  after(() => progress(`scenarios.test: ${((Date.now() - started) / 1000).toFixed(0)} s wall time`));

  for (const [name, run] of scenarioSteps()) it(name, () => run(lab.target(), NS));
});
