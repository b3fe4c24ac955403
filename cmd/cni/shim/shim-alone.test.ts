// The shim's own answers, with no agent anywhere: what the reference plugins' skel checks (required
// environment, decodable JSON, supported cniVersion) gets its spec code, not "try again later", and
// no network config can point the root-run shim at another socket.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCapture } from '../../../lib/exec.js';
import { SUPPORTED_VERSIONS } from '../../../lib/cni/versions.js';

const SHIM = join(import.meta.dirname, '../../../../cmd/cni/shim/build/kube-l2tp');
// No agent listens here in a unit run: every answer below is the shim's own.
const NO_AGENT = '/run/kube-l2tp/kc-shim-alone-none/cni.sock';

const ADD_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/none',
  CNI_IFNAME: 'net1',
};
const conf = (extra: object = {}) =>
  JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'kube-l2tp', agentSocket: NO_AGENT, ...extra });

async function shim(env: Record<string, string>, stdin: string) {
  const r = await runCapture(SHIM, [], { env, input: stdin });
  let out: { code?: number; msg?: string; cniVersion?: string; details?: string } = {};
  if (r.stdout.trim() !== '') out = JSON.parse(r.stdout) as typeof out;
  return { exit: r.code, ...out, stdout: r.stdout };
}

describe('CNI shim: its own checks, agent down', () => {
  it('is built', () => assert.ok(existsSync(SHIM), `${SHIM} missing: bash scripts/build-native.sh`));

  it('answers missing environment with 4, naming every missing variable', async () => {
    for (const [env, missing] of [
      [{ ...ADD_ENV, CNI_NETNS: '' }, 'CNI_NETNS'],
      [{ CNI_COMMAND: 'ADD', CNI_IFNAME: 'net1' }, 'CNI_CONTAINERID,CNI_NETNS'],
      [{ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c', CNI_NETNS: '/x' }, 'CNI_IFNAME'],
      [{ CNI_COMMAND: 'DEL', CNI_IFNAME: 'net1' }, 'CNI_CONTAINERID'],
      [{ CNI_COMMAND: 'GC' }, 'CNI_PATH'],
      [{}, 'CNI_COMMAND'],
    ] as const) {
      const r = await shim(env, conf());
      assert.equal(r.code, 4, r.stdout);
      assert.equal(r.msg, `required env variables [${missing}] missing`);
      assert.equal(r.exit, 1);
    }
    assert.equal((await shim({ CNI_COMMAND: 'FROB' }, conf())).code, 4);
  });

  it('answers undecodable JSON with 6 and says where', async () => {
    for (const bad of [
      '',
      'nope',
      '{"cniVersion":"1.1.0",}',
      '[1]',
      '{"a":1} {}',
      '{"a":"\u0001"}',
      '{"a":tru}',
    ]) {
      const r = await shim(ADD_ENV, bad);
      assert.equal(r.code, 6, `${JSON.stringify(bad)}: ${r.stdout}`);
      assert.match(r.msg!, /^failed to decode network config: .+ at byte \d+$/);
    }
    const deep = '{"a":' + '['.repeat(600) + ']'.repeat(600) + '}';
    assert.equal((await shim(ADD_ENV, deep)).code, 6);
  });

  it('answers an unsupported or missing cniVersion with 1, listing the supported ones', async () => {
    for (const [v, shown] of [
      ['9.9.9', '9.9.9'],
      ['0.3.1', '0.3.1'],
      [undefined, '0.1.0'],
      [7, '0.1.0'],
    ] as const) {
      const r = await shim(ADD_ENV, conf({ cniVersion: v }));
      assert.equal(r.code, 1, r.stdout);
      assert.equal(
        r.msg,
        `incompatible CNI versions: config is "${shown}", plugin supports [${SUPPORTED_VERSIONS.join(', ')}]`,
      );
    }
    // DEL goes on (ADD made nothing with such a config; a failed DEL would keep the pod for ever)
    for (const v of ['0.3.1', undefined]) {
      const del = await shim(
        { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'net1' },
        conf({ cniVersion: v }),
      );
      assert.equal(del.exit, 0, del.stdout);
      assert.equal(del.stdout, '');
    }
    const gc = await shim({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf({ cniVersion: '1.0.0' }));
    assert.equal(gc.code, 1);
    assert.equal(gc.msg, 'config version 1.0.0 does not allow GC (needs 1.1.0)');
  });

  it('connects only under the agent directory: other sockets are refused with 7', async () => {
    for (const sock of ['/tmp/evil.sock', '/run/kube-l2tp', '/run/kube-l2tp/', '/run/kube-l2tp/../x.sock']) {
      const r = await shim(ADD_ENV, conf({ agentSocket: sock }));
      assert.equal(r.code, 7, r.stdout);
      assert.match(r.msg!, /^invalid network config: agentSocket: .* is not a path under \/run\/kube-l2tp\//);
    }
    assert.equal((await shim(ADD_ENV, conf({ agentSocket: 42 }))).code, 7);
    // DEL of such a config succeeds at once: no ADD got past this check, so there is nothing to undo
    // (and a refused DEL would keep the pod from being torn down)
    const DEL_ENV = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'net1' };
    for (const agentSocket of ['/tmp/evil.sock', 42]) {
      const del = await shim(DEL_ENV, conf({ agentSocket }));
      assert.equal(del.exit, 0, del.stdout);
      assert.equal(del.stdout, '');
    }
  });

  it('reads top-level keys only: a nested agentSocket or cniVersion means nothing', async () => {
    const nested = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'n',
      agentSocket: NO_AGENT,
      ipam: { type: 'x', agentSocket: '/tmp/evil.sock', cniVersion: '9.9.9' },
      args: { agentSocket: '/tmp/evil.sock' },
    });
    const r = await shim(ADD_ENV, nested);
    assert.equal(r.code, 11, r.stdout); // checks passed; nobody listens there
    assert.equal(r.cniVersion, '1.0.0');
    assert.equal(r.details, `${NO_AGENT}: No such file or directory`);
    const escaped = await shim(ADD_ENV, '{"cniVersion":"1.1.0","agent\\u0053ocket":"/tmp/evil.sock"}');
    assert.equal(escaped.code, 7, 'an escaped key is the same key');
  });

  it('with checks passed and no agent: ADD 11, STATUS 50, DEL succeeds', async () => {
    const add = await shim(ADD_ENV, conf());
    assert.equal(add.code, 11);
    assert.equal(add.details, `${NO_AGENT}: No such file or directory`);
    assert.equal((await shim({ CNI_COMMAND: 'STATUS' }, conf())).code, 50);
    const del = await shim({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'net1' }, conf());
    assert.equal(del.exit, 0);
    assert.equal(del.stdout, '');
    const ver = await shim({ CNI_COMMAND: 'VERSION' }, '');
    assert.deepEqual(JSON.parse(ver.stdout), { cniVersion: '1.1.0', supportedVersions: SUPPORTED_VERSIONS });
  });
});
