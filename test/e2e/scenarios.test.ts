// The in-cluster e2e scenarios (test/e2e/scenarios.ts) on one real cluster, in order: several pods on
// one bridge with the UDP checksums on the wire, IP encapsulation with cookies from a Secret checked
// by tshark on the underlay, a pod re-created at once, a pseudowire deleted under its pods and
// re-created. Pods are attached by the runtime (containerd -> Multus -> kube-l2tp), traffic goes
// through kubectl exec.
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../lib/log.js';
import { RealLab, startTestLab, stopTestLab } from './real-lab.js';
import {
  apply,
  ipEncapCookiesFromSecret,
  namespaceObj,
  nodeFootprint,
  podRecreatedAtOnce,
  pseudowireDeletedAndRecreated,
  severalPodsOnOneBridge,
  type ScenarioTarget,
} from './scenarios.js';

const logger = createLogger({ name: 'e2e-scenarios', level: 'warn', destination: 'stderr' });
const progress = (m: string) => console.log(`  · ${m}`);
const PREFIX = 'qa';
const NS = 'qa-e2e';

describe('e2e scenarios on a real cluster', () => {
  let lab: RealLab;
  let t: ScenarioTarget;
  const started = Date.now();
  const beforeBlue = new Map<string, { links: string[]; records: string[] }>();

  before(async () => {
    lab = await startTestLab({ prefix: PREFIX, underlay: '10.243.0', podNet: '10.244', logger, progress });
    t = lab.target();
    await apply(t, [namespaceObj(NS)]);
  });

  after(async () => {
    await stopTestLab(lab, PREFIX);
    progress(`scenarios.test: ${((Date.now() - started) / 1000).toFixed(0)} s wall time`);
  });

  it('several pods on one bridge talk; UDP checksums on the wire, whatever the backend', async () => {
    await severalPodsOnOneBridge(t, NS);
  });

  it('IP encapsulation with 8-byte cookies from a Secret, confirmed on the underlay by tshark', async () => {
    for (const n of t.nodes) beforeBlue.set(n, await nodeFootprint(t, n));
    await ipEncapCookiesFromSecret(t, NS);
  });

  it('a pod deleted and re-created at once gets the same network; nothing of the old one stays', async () => {
    await podRecreatedAtOnce(t, NS);
  });

  it('a pseudowire deleted under its pods: an error naming it, nothing leaks; re-created, pods attach again', async () => {
    await pseudowireDeletedAndRecreated(t, NS, beforeBlue);
  });
});
