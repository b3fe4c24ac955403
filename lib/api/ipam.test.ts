import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipamProblem } from './ipam.js';
import { WHEREABOUTS_FILE_KEYS, WHEREABOUTS_FILE_KEYS_MESSAGE } from './schemas.js';

describe('ipamProblem: whereabouts keys that name files on the node', () => {
  it("names spec.ipam and says where whereabouts' settings belong", () => {
    const p = ipamProblem(
      { type: 'whereabouts', range: '10.1.0.0/24', kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' } },
      { at: 'spec.ipam' },
    );
    assert.equal(p, `spec.ipam: ${WHEREABOUTS_FILE_KEYS_MESSAGE}`);
    assert.match(p!, /its own configuration file on the node .*kept by the cluster admin/);
  });

  it('refuses every file key alone, whatever its value (a value of the wrong type is named too)', () => {
    for (const key of WHEREABOUTS_FILE_KEYS)
      for (const value of key === 'kubernetes' ? [{}, { kubeconfig: '' }, '/x'] : ['/x', '', 5, null]) {
        const p = ipamProblem({ type: 'whereabouts', range: '10.1.0.0/24', [key]: value });
        assert.ok(
          p?.startsWith(`ipam: ${WHEREABOUTS_FILE_KEYS_MESSAGE}`),
          `${key}: ${JSON.stringify(value)}: ${p}`,
        );
      }
  });

  it('with a dataDir too: both reasons', () => {
    const p = ipamProblem({ type: 'whereabouts', dataDir: '/etc', log_file: '/x' });
    assert.match(p!, /^ipam: dataDir and resolvConf name files on the node.*; ipam: whereabouts: kubernetes/);
  });

  it('lets whereabouts run with its settings from the node', () => {
    assert.equal(ipamProblem({ type: 'whereabouts', range: '10.1.0.0/24', log_level: 'error' }), undefined);
    assert.equal(ipamProblem({ type: 'whereabouts', ipRanges: [{ range: '10.1.0.0/24' }] }), undefined);
  });
});
