// execDelegate against fake delegates (shell scripts): what they get (env, stdin) and how their
// results and failures come back. Runs with whichever runner is in use (posix_spawn addon when built).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { createLogger } from '../../lib/log.js';
import { execDelegate, VERSION_PROBE_TIMEOUT_MS, type DelegateCall } from './ipam.js';

describe('execDelegate', () => {
  let dir: string;
  const logged: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
  });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kc-ipam-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A delegate: answers VERSION with 1.0.0 and 1.1.0, runs body for everything else. */
  const delegate = async (name: string, body: string): Promise<string> => {
    const p = join(dir, name);
    await writeFile(
      p,
      `#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}'; exit 0; fi
${body}
`,
    );
    await chmod(p, 0o755);
    return p;
  };
  const call = (plugin: string, command: DelegateCall['command'] = 'ADD'): DelegateCall => ({
    command,
    plugin,
    config: { cniVersion: '1.1.0', name: 'net', type: 'kube-l2tp', ipam: { type: 'fake' } },
    env: { CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'net1', HOME: '/root' },
    logger,
  });

  it('passes the CNI_* environment and the config, parses the ADD result', async () => {
    const p = await delegate(
      'ok',
      `env | sort > ${dir}/env; cat > ${dir}/stdin
echo '{"cniVersion":"1.1.0","ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1"}]}'`,
    );
    const r = await execDelegate(call(p));
    assert.equal(r?.ips?.[0]?.address, '10.1.2.3/24');
    const env = (await readFile(join(dir, 'env'), 'utf8')).trim().split('\n');
    for (const kv of ['CNI_COMMAND=ADD', 'CNI_CONTAINERID=c1', 'CNI_IFNAME=net1', 'CNI_NETNS=/run/netns/x'])
      assert.ok(env.includes(kv), kv);
    assert.ok(!env.some((kv) => kv.startsWith('HOME=')), 'only CNI_* and PATH are passed');
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'stdin'), 'utf8')), call(p).config);
    const how = logged.filter((l) => String(l.msg).startsWith('IPAM delegates are started with'));
    assert.equal(how.length, 1, 'which runner is in use is logged once');
  });

  it("passes a delegate's CNI error through (code, msg, details) and logs its stderr", async () => {
    const p = await delegate(
      'err',
      `echo 'range exhausted' >&2
echo '{"cniVersion":"1.1.0","code":11,"msg":"no IP addresses available","details":"range 10.1.2.0/24"}'
exit 1`,
    );
    await assert.rejects(execDelegate(call(p)), (e: unknown) => {
      assert.ok(e instanceof CniError);
      assert.equal(e.code, 11);
      assert.equal(e.message, 'ipam ADD: no IP addresses available');
      assert.equal(e.details, 'range 10.1.2.0/24');
      return true;
    });
    assert.ok(
      logged.some((l) => l.msg === 'delegate stderr' && l.stderr === 'range exhausted' && l.code === 1),
    );
  });

  it('a delegate that hangs on VERSION is given up on after the probe timeout; ADD still runs', async () => {
    const p = join(dir, 'hangs-on-version');
    await writeFile(
      p,
      `#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then exec sleep 60; fi
echo '{"cniVersion":"1.1.0","ips":[{"address":"10.9.9.9/24"}]}'
`,
    );
    await chmod(p, 0o755);
    const t0 = Date.now();
    const r = await execDelegate(call(p));
    assert.equal(r?.ips?.[0]?.address, '10.9.9.9/24');
    const ms = Date.now() - t0;
    assert.ok(ms >= VERSION_PROBE_TIMEOUT_MS - 100 && ms < VERSION_PROBE_TIMEOUT_MS + 5000, `${ms} ms`);
    assert.ok(logged.some((l) => l.msg === 'delegate VERSION failed' && l.plugin === p));
  });

  it('a failure without JSON is DelegateFailed with the exit code and stderr', async () => {
    const p = await delegate('crash', `echo 'panic: boom' >&2; exit 3`);
    await assert.rejects(execDelegate(call(p, 'DEL')), {
      code: CniCode.DelegateFailed,
      message: `delegate ${p} DEL failed (exit 3)`,
      details: 'panic: boom',
    });
  });

  it('an ADD that prints no JSON is a DecodingFailure', async () => {
    const p = await delegate('garbage', `echo 'not json'`);
    await assert.rejects(execDelegate(call(p)), {
      code: CniCode.DecodingFailure,
      message: `ipam ADD: delegate ${p} printed no JSON result`,
    });
  });
});
