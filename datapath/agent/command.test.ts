// The datapath Pod passes the chart's settings as environment variables (operator/render.ts); these
// are the last hop into AgentOptions, so a setting that stops flowing fails here.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentMtuOptions, parseAgentArgs } from './command.js';

describe('agent command settings', () => {
  it('MTU policy "fixed": KUBE_L2TP_FIXED_MTU becomes AgentOptions.fixedMtu', () => {
    const v = parseAgentArgs([], { NODE_NAME: 'n1', KUBE_L2TP_FIXED_MTU: '1400' });
    assert.deepEqual(agentMtuOptions(v), { underlayMtu: 1500, fixedMtu: 1400 });
  });

  it('MTU policy "derived": the underlay MTU, and no fixed one', () => {
    const v = parseAgentArgs([], { NODE_NAME: 'n1', KUBE_L2TP_UNDERLAY_MTU: '9000' });
    assert.deepEqual(agentMtuOptions(v), { underlayMtu: 9000 });
  });

  it('flags win over the environment', () => {
    const v = parseAgentArgs(['--fixed-mtu', '1380', '--node-name', 'n2', '--backend', 'ebpf'], {
      NODE_NAME: 'n1',
      KUBE_L2TP_FIXED_MTU: '1400',
      KUBE_L2TP_BACKEND: 'userspace',
    });
    assert.equal(v['node-name'], 'n2');
    assert.equal(v.backend, 'ebpf');
    assert.equal(agentMtuOptions(v).fixedMtu, 1380);
  });
});
