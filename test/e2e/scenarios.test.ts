// The in-cluster e2e scenarios (test/e2e/scenarios.ts) on one real cluster, in order: several pods on
// one bridge with the UDP checksums on the wire, IP encapsulation with cookies from a Secret checked
// by tshark on the underlay, a pod re-created at once, a pseudowire deleted under its pods and
// re-created. Pods are attached by the runtime (containerd -> Multus -> kube-l2tp), traffic goes
// through kubectl exec.
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../lib/log.js';
import { RealLab, startTestLab, stopTestLab } from './real-lab.js';
import { apply, namespaceObj, scenarioSteps, type ScenarioTarget } from './scenarios.js';

const logger = createLogger({ name: 'e2e-scenarios', level: 'warn', destination: 'stderr' });
const progress = (m: string) => console.log(`  · ${m}`);
const PREFIX = 'qa';
const NS = 'qa-e2e';

describe('e2e scenarios on a real cluster', () => {
  let lab: RealLab;
  let t: ScenarioTarget;
  const started = Date.now();

  before(async () => {
    lab = await startTestLab({ prefix: PREFIX, underlay: '10.243.0', podNet: '10.244', logger, progress });
    t = lab.target();
    await apply(t, [namespaceObj(NS)]);
  });

  after(async () => {
    await stopTestLab(lab, PREFIX);
    progress(`scenarios.test: ${((Date.now() - started) / 1000).toFixed(0)} s wall time`);
  });

  for (const [name, run] of scenarioSteps()) it(name, () => run(t, NS));
});
