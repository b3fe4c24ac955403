// The network config's "ipam" is held to a Pseudowire's spec.ipam rules (one zod schema): what is
// allowed, what is refused with code 7, and the odd shapes a hand-written config can take.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IPAM_FILE_KEYS_MESSAGE,
  IPAM_TYPES,
  ipamSchema,
  WHEREABOUTS_FILE_KEYS_MESSAGE,
} from '../../lib/api/schemas.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { ipamProblem } from '../../lib/api/ipam.js';
import { parseNetConf } from './config.js';

const ARGS = { K8S_POD_NAMESPACE: 'a' };
const conf = (ipam: unknown): string =>
  JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'kube-l2tp', pseudowire: 'a/b', ipam });
/** The CniError parseNetConf throws for this ipam (fails the test when it throws none). */
const refusal = (ipam: unknown): CniError => {
  try {
    parseNetConf(conf(ipam), ARGS);
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    return e;
  }
  assert.fail(`ipam ${JSON.stringify(ipam)} was accepted`);
};
const FILES = 'ipam: ' + IPAM_FILE_KEYS_MESSAGE;

describe('network config ipam', () => {
  it('accepts every allowed type, with the plugin keys passed on as they are', () => {
    for (const type of IPAM_TYPES) {
      const ipam = { type, ranges: [[{ subnet: '10.199.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] };
      const c = parseNetConf(conf(ipam), ARGS);
      assert.deepEqual(c.ipam, ipam);
      assert.deepEqual(c.raw.ipam, ipam, 'the delegate gets the config unchanged');
    }
    assert.equal(parseNetConf(conf(undefined), ARGS).ipam, undefined, 'no ipam: none');
  });

  it('refuses a type outside the allow-list with code 7, naming it and the allowed ones', () => {
    for (const type of [
      'bridge',
      'evil',
      'host-local/../bridge',
      '../../bin/sh',
      'Host-Local',
      '',
      'dhcp ',
    ]) {
      const e = refusal({ type });
      assert.equal(e.code, CniCode.InvalidConfig);
      assert.equal(
        e.message,
        `invalid network config: ipam.type: ${JSON.stringify(type)} is not allowed: IPAM delegates run inside ` +
          `the kube-l2tp node agent, which runs only ${IPAM_TYPES.join(', ')}: name one of them`,
      );
    }
  });

  it("refuses dataDir and resolvConf with the CRD rule's message, whatever their value", () => {
    for (const ipam of [
      { type: 'host-local', dataDir: '/etc' },
      { type: 'host-local', resolvConf: '/etc/shadow' },
      { type: 'static', dataDir: '', resolvConf: '' },
      { type: 'host-local', dataDir: 5 },
      { type: 'host-local', dataDir: null },
      { type: 'host-local', dataDir: { path: '/etc' } },
    ]) {
      const e = refusal(ipam);
      assert.equal(e.code, CniCode.InvalidConfig, JSON.stringify(ipam));
      assert.ok(e.message.startsWith(`invalid network config: ${FILES}`), e.message);
    }
  });

  it("refuses the spellings Go's JSON decoder maps to dataDir and resolvConf", () => {
    // encoding/json matches keys case-insensitively, and takes "ſ" for "s"
    for (const key of ['DataDir', 'DATADIR', 'datadir', 'resolvconf', 'ResolvConf', 'reſolvConf']) {
      const e = refusal({ type: 'host-local', [key]: '/etc' });
      assert.ok(e.message.startsWith(`invalid network config: ${FILES}`), `${key}: ${e.message}`);
    }
    // a key that only looks alike is the plugin's business, and Go ignores it
    assert.equal(ipamProblem({ type: 'host-local', data_dir: '/etc', dataDirectory: '/x' }), undefined);
  });

  it("refuses whereabouts' file keys (kubeconfig, configuration, log, etcd files) in any spelling, for whereabouts", () => {
    const base = { type: 'whereabouts', range: '10.199.3.0/24' };
    for (const extra of [
      { kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' } },
      { kubernetes: { k8s_api_root: 'https://attacker.example' } },
      { kubernetes: {} },
      { configuration_path: '/etc/cni/net.d/other.conf' },
      { log_file: '/etc/passwd' },
      { etcd_key_file: '/etc/kubernetes/pki/etcd/server.key' },
      { etcd_cert_file: '/x' },
      { etcd_ca_cert_file: '/x' },
      // encoding/json matches keys case-insensitively
      { Kubernetes: { kubeconfig: '/etc/kubernetes/admin.conf' } },
      { LOG_FILE: '/etc/passwd' },
      { Configuration_Path: '/x' },
    ]) {
      const e = refusal({ ...base, ...extra });
      assert.equal(e.code, CniCode.InvalidConfig, JSON.stringify(extra));
      assert.equal(e.message, `invalid network config: ipam: ${WHEREABOUTS_FILE_KEYS_MESSAGE}`);
    }
    // what whereabouts reads from the network config and may stay there
    const ok = { ...base, exclude: ['10.199.3.1/32'], range_start: '10.199.3.10', gateway: '10.199.3.1',
      log_level: 'debug', enable_overlapping_ranges: false, network_name: 'n', leader_lease_duration: 1500 }; // prettier-ignore
    assert.deepEqual(parseNetConf(conf(ok), ARGS).ipam, ok);
    // the same keys mean nothing to the other plugins: theirs to ignore
    assert.equal(ipamProblem({ type: 'host-local', log_file: '/x', kubernetes: {} }), undefined);
  });

  it('both problems at once: the node-files one first, then the type', () => {
    const e = refusal({ type: 'evil', dataDir: '/etc' });
    assert.match(
      e.message,
      /^invalid network config: ipam: dataDir and resolvConf .*; ipam\.type: "evil" is not allowed/,
    );
  });

  it('refuses ipam values that are not an object, or a type that is not a string', () => {
    for (const [ipam, want] of [
      ['host-local', /^invalid network config: ipam: .*expected object, received string/],
      [null, /^invalid network config: ipam: .*expected object, received null/],
      [[{ type: 'host-local' }], /^invalid network config: ipam: .*expected object, received array/],
      [{}, /^invalid network config: ipam\.type: undefined is not allowed/],
      [{ type: ['host-local'] }, /^invalid network config: ipam\.type: \["host-local"\] is not allowed/],
      [{ type: { name: 'host-local' } }, /ipam\.type: \{"name":"host-local"\} is not allowed/],
    ] as const) {
      const e = refusal(ipam);
      assert.equal(e.code, CniCode.InvalidConfig);
      assert.match(e.message, want);
    }
  });

  it('nested dataDir (inside ranges) and a JSON "__proto__" key: not what host-local reads, passed on', () => {
    const nested = { type: 'host-local', ranges: [[{ subnet: '10.199.2.0/24', dataDir: '/etc' }]] };
    assert.equal(ipamProblem(nested), undefined);
    const proto = JSON.parse(
      '{"type":"host-local","__proto__":{"dataDir":"/etc","type":"bridge"}}',
    ) as unknown;
    const c = parseNetConf(conf(proto), ARGS);
    assert.equal(c.ipam?.type, 'host-local');
    assert.equal((c.ipam as Record<string, unknown>).dataDir, undefined);
  });

  it('DEL and GC keep a refused ipam out of the request instead of failing (nothing of it was allocated)', () => {
    for (const command of ['DEL', 'GC'] as const) {
      const c = parseNetConf(conf({ type: 'evil' }), ARGS, { command });
      assert.equal(c.ipam, undefined);
      assert.match(c.ipamRefused ?? '', /ipam\.type: "evil" is not allowed/);
    }
    for (const command of ['ADD', 'CHECK', 'STATUS'] as const) {
      assert.throws(
        () => parseNetConf(conf({ type: 'host-local', dataDir: '/x' }), ARGS, { command }),
        (e: unknown) => e instanceof CniError && e.code === CniCode.InvalidConfig,
        command,
      );
    }
  });

  it('is the schema of spec.ipam: the same verdicts on the same objects', () => {
    for (const ipam of [
      { type: 'static' },
      { type: 'evil' },
      { type: 'host-local', dataDir: '/etc' },
      { type: 'host-local', ResolvConf: '/etc' },
      { type: 'whereabouts', kubernetes: { kubeconfig: '/x' } },
      { type: 'whereabouts', Log_File: '/x' },
      { type: 'whereabouts', log_level: 'debug' },
      'static',
    ]) {
      assert.equal(ipamSchema.safeParse(ipam).success, ipamProblem(ipam) === undefined, JSON.stringify(ipam));
    }
  });
});
