import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCniArgs } from './args.js';
import { CniError } from './errors.js';
import { formatResult, parseResult } from './result.js';
import { compareVersions } from './versions.js';

const v040 = {
  cniVersion: '0.4.0',
  interfaces: [{ name: 'net1', mac: '02:00:00:00:00:01', sandbox: '/run/netns/x' }],
  ips: [{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: {},
};

describe('CNI results', () => {
  it('reads 0.4.0 and writes 1.0.0 without the version field', () => {
    const out = formatResult(parseResult(v040, 'prevResult'), '1.0.0');
    assert.deepEqual(out, {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', mac: '02:00:00:00:00:01', sandbox: '/run/netns/x' }],
      ips: [{ interface: 0, address: '10.0.0.2/24', gateway: '10.0.0.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
    });
  });
  it('writes 0.4.0 with ip versions and without 1.x-only fields', () => {
    const r = parseResult(
      {
        cniVersion: '1.1.0',
        interfaces: [{ name: 'e', mtu: 1400, socketPath: '/s' }],
        ips: [{ address: 'fd00::2/64', interface: 0 }],
        routes: [{ dst: '::/0', table: 0, scope: 0, mtu: 1300 }],
      },
      'x',
    );
    const o = formatResult(r, '0.4.0');
    assert.deepEqual(o.interfaces, [{ name: 'e' }]);
    assert.deepEqual(o.ips, [{ version: '6', interface: 0, address: 'fd00::2/64' }]);
    assert.deepEqual(o.routes, [{ dst: '::/0' }]);
    const o11 = formatResult(r, '1.1.0');
    assert.deepEqual(
      o11.routes,
      [{ dst: '::/0', mtu: 1300, table: 0, scope: 0 }],
      'table/scope 0 are values',
    );
    assert.deepEqual(o11.interfaces, [{ name: 'e', mtu: 1400, socketPath: '/s' }]);
  });
  it('rejects malformed results with a decode error naming the field', () => {
    assert.throws(
      () => parseResult({ cniVersion: '1.0.0', ips: [{ address: 5 }] }, 'prevResult'),
      (e: unknown) => e instanceof CniError && e.code === 6 && /ips/.test(e.message),
    );
    assert.throws(
      () => parseResult({ cniVersion: '0.2.0' }, 'prevResult'),
      (e: unknown) => (e as CniError).code === 1,
    );
  });
  it('compares versions numerically', () => {
    assert.ok(compareVersions('1.10.0', '1.9.0') > 0);
    assert.equal(compareVersions('1.0', '1.0.0'), 0);
  });
});

describe('CNI_ARGS', () => {
  it('parses the Kubernetes keys', () => {
    assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;X=y'), {
      K8S_POD_NAMESPACE: 'ns',
      K8S_POD_NAME: 'p',
      K8S_POD_UID: 'u',
    });
  });
  it('refuses unknown keys without IgnoreUnknown, and malformed pairs (code 4)', () => {
    for (const bad of ['X=y', 'K8S_POD_NAME', 'IgnoreUnknown=0;X=1']) {
      assert.throws(
        () => parseCniArgs(bad),
        (e: unknown) => (e as CniError).code === 4 && /CNI_ARGS/.test((e as Error).message),
      );
    }
  });
});
