// Dispatcher and server, without root: inputs that fail before any link work, STATUS, VERSION, and
// the shim protocol over a real unix socket.
import assert from 'node:assert/strict';
import { IPAM_TYPES } from '../../lib/api/schemas.js';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeResponse, type PseudowireDevice } from '../../lib/agent-protocol.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { dispatch, type PluginDeps } from './dispatch.js';
import { startCniServer, type CniServer } from './server.js';
import { StaticResolver } from '../../test/tools/static-resolver.js';
import { AttachmentStore, ProcessLocker, type AttachmentRecord } from './state.js';

const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    cniVersion: '1.1.0',
    name: 'n',
    type: 'kube-l2tp',
    pseudowire: { namespace: 'a', name: 'b' },
    ...extra,
  });
const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/kc-none',
  CNI_IFNAME: 'net1',
  CNI_ARGS: 'K8S_POD_NAMESPACE=a',
};

describe('dispatch', () => {
  let dir: string;
  let deps: PluginDeps;
  const resolver = new StaticResolver();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kc-cni-unit-'));
    resolver.set(
      { namespace: 'a', name: 'b' },
      { ifname: 'kcnone0', mtu: 1400, tunnelId: 1, sessionId: 2, up: true, mode: 'bridge' },
    );
    deps = {
      resolver,
      logger: silentLogger(),
      store: new AttachmentStore(dir),
      locker: new ProcessLocker(),
      nodePid: process.pid,
    };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const code = async (e: Record<string, string>, stdin: string) => {
    const o = await dispatch({ env: e, stdin }, deps);
    return o.exitCode === 0 ? 0 : (JSON.parse(o.stdout) as { code: number; msg: string }).code;
  };

  it('VERSION echoes the requested version', async () => {
    const o = await dispatch({ env: { CNI_COMMAND: 'VERSION' }, stdin: '{"cniVersion":"0.4.0"}' }, deps);
    assert.deepEqual(JSON.parse(o.stdout), {
      cniVersion: '0.4.0',
      supportedVersions: ['0.4.0', '1.0.0', '1.1.0'],
    });
  });
  it('maps bad input to spec codes', async () => {
    assert.equal(await code({}, conf()), 4);
    assert.equal(await code({ ...env, CNI_IFNAME: 'a/b' }, conf()), 4);
    assert.equal(await code(env, 'nope'), 6);
    assert.equal(await code(env, '[]'), 6);
    assert.equal(await code(env, conf({ cniVersion: '0.3.1' })), 1);
    assert.equal(await code(env, conf({ mode: 'x' })), 7);
    assert.equal(await code({ ...env, CNI_ARGS: '' }, conf({ pseudowire: 'b' })), 4, 'pod namespace unknown');
    assert.equal(await code({ ...env, CNI_ARGS: '' }, conf()), 4, 'fails closed even with a full reference');
    assert.equal(await code({ ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=zz' }, conf({ pseudowire: 'b' })), 100);
    assert.equal(
      await code({ ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=a' }, conf({ pseudowire: 'b' })),
      3,
      'found; netns missing',
    );
    assert.equal(await code(env, conf({ mtu: 1500 })), 103);
  });
  it("tenancy: another namespace's pseudowire only when shared; the mode is the pseudowire's", async () => {
    const msg = async (e: Record<string, string>, stdin: string) => {
      const o = await dispatch({ env: e, stdin }, deps);
      return JSON.parse(o.stdout) as { code: number; msg: string };
    };
    const b = { ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=other' };
    const refused = await msg(b, conf());
    assert.equal(refused.code, 109);
    assert.equal(
      refused.msg,
      'pseudowire a/b is not shared with namespace other: a pod attaches only to pseudowires of its own namespace, or to one whose spec.allowedNamespaces lists "other"',
    );
    const missing = await msg(b, conf({ pseudowire: 'a/nope' }));
    assert.deepEqual(
      missing,
      { ...refused, msg: refused.msg.replace('a/b', 'a/nope') },
      'no existence oracle',
    );
    resolver.set(
      { namespace: 'a', name: 'shared' },
      {
        ifname: 'kcnone1',
        mtu: 1400,
        tunnelId: 1,
        sessionId: 3,
        up: true,
        mode: 'exclusive',
        allowedNamespaces: ['other'],
      },
    );
    assert.equal(await code(b, conf({ pseudowire: 'a/shared' })), 3, 'shared: passes, netns missing');
    assert.equal(
      await code({ ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=third' }, conf({ pseudowire: 'a/shared' })),
      109,
    );
    const mode = await msg(env, conf({ mode: 'exclusive' }));
    assert.equal(mode.code, 7);
    assert.match(
      mode.msg,
      /^invalid network config: mode: "exclusive", but pseudowire a\/b has spec\.attachment\.mode Bridge/,
    );
    assert.equal(await code(env, conf({ mode: 'bridge' })), 3, 'asking for the same mode is fine');
    const ipam = await msg(env, conf({ ipam: { type: 'bridge' } }));
    assert.equal(ipam.code, 7);
    assert.match(
      ipam.msg,
      /ipam\.type: "bridge" is not allowed: IPAM delegates run inside the kube-l2tp node agent/,
    );
  });
  it('error output carries the config version and the field', async () => {
    const o = await dispatch({ env, stdin: conf({ cniVersion: '1.0.0', mac: 'zz' }) }, deps);
    const e = JSON.parse(o.stdout) as { cniVersion: string; code: number; msg: string };
    assert.equal(e.cniVersion, '1.0.0');
    assert.match(e.msg, /mac/);
  });
  it('STATUS: 0 when ready, 50 when not; ADD: 11 when not ready', async () => {
    assert.equal(await code({ CNI_COMMAND: 'STATUS' }, conf()), 0);
    resolver.isReady = false;
    assert.equal(await code({ CNI_COMMAND: 'STATUS' }, conf()), 50);
    assert.equal(await code(env, conf()), 11);
    resolver.isReady = true;
  });
  it('DEL of something never added succeeds', async () => {
    assert.equal(await code({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, conf()), 0);
  });
});

describe('CNI server protocol', () => {
  let dir: string;
  let server: CniServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kc-cni-srv-'));
    server = await startCniServer({
      socketPath: join(dir, 'cni.sock'),
      resolver: new StaticResolver(),
      logger: silentLogger(),
      store: new AttachmentStore(join(dir, 'state')),
      requestTimeoutMs: 300,
    });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const call = (line: string): Promise<Buffer> =>
    new Promise((res, rej) => {
      const s = connect(join(dir, 'cni.sock'));
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => res(Buffer.concat(chunks)));
      s.on('error', rej);
      s.end(line);
    });

  it('answers a request with header + stdout', async () => {
    const r = decodeResponse(
      await call(JSON.stringify({ v: 1, env: { CNI_COMMAND: 'STATUS' }, stdin: conf() }) + '\n'),
    );
    assert.equal(r.header.exitCode, 0);
    assert.equal(r.stdout, '');
  });
  it('rejects another protocol version with 108 and garbage with 5', async () => {
    const r = decodeResponse(await call(JSON.stringify({ v: 2, env: {}, stdin: '' }) + '\n'));
    assert.equal(r.header.exitCode, 1);
    assert.equal(JSON.parse(r.stdout).code, 108);
    const g = decodeResponse(await call('garbage\n'));
    assert.equal(JSON.parse(g.stdout).code, 5);
  });
  it('closes a connection that never finishes its request, and serves others meanwhile', async () => {
    const t0 = Date.now();
    const stalled = new Promise<Buffer>((res, rej) => {
      const s = connect(join(dir, 'cni.sock'));
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('close', () => res(Buffer.concat(chunks)));
      s.on('error', rej);
      s.write('{"v":1,'); // and nothing more, never ended
    });
    const other = decodeResponse(
      await call(JSON.stringify({ v: 1, env: { CNI_COMMAND: 'STATUS' }, stdin: conf() }) + '\n'),
    );
    assert.equal(other.header.exitCode, 0);
    const r = decodeResponse(await stalled);
    assert.equal(JSON.parse(r.stdout).code, 5);
    assert.match(JSON.parse(r.stdout).msg, /no complete request in time/);
    assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
  });
});

describe('pod netns from the shim, IPAM delegates on the node, DEL that always finishes', () => {
  let dir: string;
  let deps: PluginDeps;
  let store: AttachmentStore;
  const resolver = new StaticResolver();
  const logged: Record<string, unknown>[] = [];
  const out = (o: { stdout: string }) => JSON.parse(o.stdout) as { code: number; msg: string };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cf-cni-unit-'));
    resolver.set(
      { namespace: 'a', name: 'b' },
      { ifname: 'cfnone0', mtu: 1400, tunnelId: 1, sessionId: 2, up: true, mode: 'bridge' },
    );
    store = new AttachmentStore(join(dir, 'state'));
    await mkdir(join(dir, 'node-bin'));
    deps = {
      resolver,
      logger: createLogger({
        name: 'test',
        level: 'debug',
        destination: { write: (l: string) => void logged.push(JSON.parse(l) as Record<string, unknown>) },
      }),
      store,
      locker: new ProcessLocker(),
      nodePid: process.pid,
      delegateDirs: [join(dir, 'node-bin')],
      // the stand-in delegates of these tests, beside the real allow-list
      ipamTypes: [...IPAM_TYPES, 'cf-ipam-ok', 'cf-ipam-ro', 'cf-no-such-ipam', 'cf-ipam-half'],
    };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A fake IPAM plugin in the node's bin dir (as the agent sees it). */
  const delegate = async (name: string, body: string): Promise<void> => {
    const p = join(dir, 'node-bin', name);
    await writeFile(
      p,
      `#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}'; exit 0; fi
${body}
`,
    );
    await chmod(p, 0o755);
  };
  const record = (containerID: string): AttachmentRecord => ({
    v: 1,
    network: 'n',
    containerID,
    ifname: 'net1',
    netns: '/run/netns/cf-gone',
    mode: 'bridge',
    pseudowire: { namespace: 'a', name: 'b' },
    device: 'cfnone0',
    createdAt: new Date().toISOString(),
    ipamConfig: JSON.parse(conf({ ipam: { type: 'cf-ipam-ro' } })) as Record<string, unknown>,
  });

  it('ADD: the shim could not open CNI_NETNS: 3 when it does not exist, 4 otherwise, naming it', async () => {
    const gone = await dispatch(
      { env, stdin: conf(), netnsOpenError: { errno: 2, message: 'No such file or directory' } },
      deps,
    );
    assert.equal(gone.exitCode, 1);
    assert.equal(out(gone).code, 3);
    assert.match(out(gone).msg, /CNI_NETNS: network namespace \/run\/netns\/kc-none does not exist/);
    const denied = await dispatch(
      { env, stdin: conf(), netnsOpenError: { errno: 13, message: 'Permission denied' } },
      deps,
    );
    assert.equal(out(denied).code, 4);
    assert.match(out(denied).msg, /CNI_NETNS: cannot open network namespace .*Permission denied/);
  });

  it('ADD: a descriptor that is not a namespace is refused with 4', async () => {
    const fd = openSync(join(dir, 'node-bin'), 'r');
    try {
      const o = await dispatch({ env, stdin: conf(), netnsFd: fd }, deps);
      assert.equal(out(o).code, 4);
      assert.match(out(o).msg, /CNI_NETNS: .* is not a network namespace/);
    } finally {
      closeSync(fd);
    }
  });

  it('ADD: an IPAM delegate whose ADD failed gets its DEL before the ADD fails (spec)', async () => {
    // it may have allocated before failing (or before being killed at its timeout)
    await delegate(
      'cf-ipam-half',
      `echo "$CNI_COMMAND $CNI_CONTAINERID" >> ${dir}/half-calls
[ "$CNI_COMMAND" = ADD ] && { echo '{"cniVersion":"1.1.0","code":11,"msg":"lease store timed out"}'; exit 1; }
exit 0`,
    );
    // a namespace the ADD can enter; its link work stops at once (this pseudowire has no device here)
    const fd = openSync('/proc/self/ns/net', 'r');
    try {
      const o = await dispatch(
        {
          env: { ...env, CNI_CONTAINERID: 'cfhalf' },
          stdin: conf({ ipam: { type: 'cf-ipam-half' } }),
          netnsFd: fd,
        },
        deps,
      );
      assert.equal(o.exitCode, 1);
    } finally {
      closeSync(fd);
    }
    assert.deepEqual((await readFile(join(dir, 'half-calls'), 'utf8')).trim().split('\n'), [
      'ADD cfhalf',
      'DEL cfhalf',
    ]);
    assert.equal(await store.get('cfhalf', 'net1'), undefined, 'no record left');
  });

  it("IPAM plugins are looked up in the node's bin dir as the agent sees it, before CNI_PATH", async () => {
    await delegate('cf-ipam-ok', `echo "$CNI_COMMAND" >> ${dir}/calls`);
    const del = await dispatch(
      {
        env: { ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '', CNI_PATH: '/cf/host/only/path' },
        stdin: conf({ ipam: { type: 'cf-ipam-ok' } }),
      },
      deps,
    );
    assert.equal(del.exitCode, 0, del.stdout);
    assert.equal((await readFile(join(dir, 'calls'), 'utf8')).trim(), 'DEL');
  });

  it('a refused ipam (type, dataDir) fails the ADD with 7 before anything is made; DEL runs none of it', async () => {
    // both executables are in the node's bin dir: only the config's ipam rules keep them from running
    await delegate('cf-not-allowed', `echo "$CNI_COMMAND" >> ${dir}/refused-calls`);
    await delegate('cf-ipam-ok', `echo "$CNI_COMMAND" >> ${dir}/refused-calls`);
    logged.length = 0;
    for (const [ipam, want] of [
      [{ type: 'cf-not-allowed' }, /^invalid network config: ipam\.type: "cf-not-allowed" is not allowed: /],
      [
        { type: 'cf-ipam-ok', dataDir: '/etc' },
        /^invalid network config: ipam: dataDir and resolvConf name files/,
      ],
      [
        { type: 'cf-ipam-ok', resolvConf: '/etc/shadow' },
        /^invalid network config: ipam: dataDir and resolvConf/,
      ],
    ] as const) {
      const o = await dispatch(
        { env: { ...env, CNI_CONTAINERID: 'cfrefused' }, stdin: conf({ ipam }) },
        deps,
      );
      const e = JSON.parse(o.stdout) as { code: number; msg: string };
      assert.equal(e.code, 7, o.stdout);
      assert.match(e.msg, want);
      assert.equal(await store.get('cfrefused', 'net1'), undefined, 'no attachment record');
    }
    const del = await dispatch(
      {
        env: { ...env, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'cfrefused', CNI_NETNS: '' },
        stdin: conf({ ipam: { type: 'cf-not-allowed' } }),
      },
      deps,
    );
    assert.equal(del.exitCode, 0, del.stdout);
    assert.ok(logged.some((l) => /IPAM not released/.test(String(l.msg))));
    // GC of the same network: the stale attachment still goes, no delegate runs
    await store.put(record('cfrefgc'));
    const gc = await dispatch(
      {
        env: { CNI_COMMAND: 'GC', CNI_PATH: '/cf/host/only/path' },
        stdin: conf({ ipam: { type: 'cf-not-allowed' }, 'cni.dev/valid-attachments': [] }),
      },
      deps,
    );
    assert.equal(gc.exitCode, 0, gc.stdout);
    assert.equal(await store.get('cfrefgc', 'net1'), undefined, 'the stale record is gone');
    assert.ok(logged.some((l) => /IPAM not garbage-collected/.test(String(l.msg))));
    await assert.rejects(readFile(join(dir, 'refused-calls'), 'utf8'), { code: 'ENOENT' }, 'no delegate ran');
  });

  it('DEL of a config whose MAC, MTU, mode, pseudowire or version ADD refused succeeds, by the record, and releases the IPAM', async () => {
    await delegate('cf-ipam-ok', `echo "$CNI_COMMAND $CNI_CONTAINERID" >> ${dir}/bad-calls`);
    const ipam = { type: 'cf-ipam-ok' };
    const multicast = '01:23:45:67:89:ab'; // a MAC people type, with the group bit set
    // what, environment, config, ADD's code
    const cases: [string, Record<string, string>, Record<string, unknown>, number][] = [
      ['runtimeConfig mac', {}, { runtimeConfig: { mac: multicast } }, 7],
      ['CNI_ARGS MAC', { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=a;MAC=${multicast}` }, {}, 7],
      ['mac', {}, { mac: 'zz' }, 7],
      ['mtu', {}, { mtu: 20 }, 7],
      ['mode', {}, { mode: 'trunk' }, 7],
      ['pseudowire', {}, { pseudowire: 'Red-Wire' }, 7],
      ['no pseudowire', {}, { pseudowire: undefined }, 7],
      ['cniVersion 0.3.1', {}, { cniVersion: '0.3.1' }, 1], // what most NAD examples still say
      ['no cniVersion', {}, { cniVersion: undefined }, 1],
    ];
    for (const [what, e, extra, addCode] of cases) {
      const id = `cfbad${cases.findIndex((x) => x[0] === what)}`;
      const stdin = conf({ ipam, ...extra });
      const add = await dispatch({ env: { ...env, ...e, CNI_CONTAINERID: id }, stdin }, deps);
      assert.equal(out(add).code, addCode, `${what}: ADD ${add.stdout}`);
      await store.put({ ...record(id), ipamConfig: JSON.parse(stdin) as Record<string, unknown> });
      for (let i = 0; i < 2; i++) {
        const del = await dispatch(
          { env: { ...env, ...e, CNI_COMMAND: 'DEL', CNI_CONTAINERID: id, CNI_NETNS: '' }, stdin },
          deps,
        );
        assert.equal(del.exitCode, 0, `${what}: DEL #${i + 1} ${del.stdout}`);
      }
      assert.equal(await store.get(id, 'net1'), undefined, `${what}: the record is gone`);
    }
    const calls = (await readFile(join(dir, 'bad-calls'), 'utf8')).trim().split('\n');
    assert.deepEqual(
      calls,
      cases.flatMap((_, i) => [`DEL cfbad${i}`, `DEL cfbad${i}`]),
      'every DEL released the IPAM, no ADD reached it',
    );
  });

  it('DEL: an IPAM plugin that is missing or fails does not fail the DEL; GC retries the release', async () => {
    logged.length = 0;
    const missing = await dispatch(
      {
        env: { ...env, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'cfmissing', CNI_NETNS: '' },
        stdin: conf({ ipam: { type: 'cf-no-such-ipam' } }),
      },
      deps,
    );
    assert.equal(missing.exitCode, 0, missing.stdout);
    assert.ok(
      logged.some((l) => /IPAM release failed/.test(String(l.msg)) && /not found/.test(String(l.err))),
    );

    // host-local on a read-only state dir: the failure the real run saw, on every DEL
    await delegate(
      'cf-ipam-ro',
      `[ -f ${dir}/ro-fixed ] && { echo "$CNI_COMMAND $CNI_CONTAINERID" >> ${dir}/ro-calls; exit 0; }
echo '{"cniVersion":"1.1.0","code":999,"msg":"failed to create dir /var/lib/cni/networks: read-only file system"}'; exit 1`,
    );
    await store.put(record('cfro1'));
    const ro = await dispatch(
      {
        env: { ...env, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'cfro1', CNI_NETNS: '' },
        stdin: conf({ ipam: { type: 'cf-ipam-ro' } }),
      },
      deps,
    );
    assert.equal(ro.exitCode, 0, ro.stdout);
    assert.equal((await store.get('cfro1', 'net1'))?.ipamReleasePending, true, 'kept for GC');
    const again = await dispatch(
      {
        env: { ...env, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'cfro1', CNI_NETNS: '' },
        stdin: conf({ ipam: { type: 'cf-ipam-ro' } }),
      },
      deps,
    );
    assert.equal(again.exitCode, 0, 'and again: DEL is idempotent');

    // the state dir is writable again: GC (the attachment is not valid any more) releases it
    await writeFile(join(dir, 'ro-fixed'), '');
    const gc = await dispatch(
      {
        env: { CNI_COMMAND: 'GC', CNI_PATH: '/cf/host/only/path' },
        stdin: conf({ ipam: { type: 'cf-ipam-ro' }, 'cni.dev/valid-attachments': [] }),
      },
      deps,
    );
    assert.equal(gc.exitCode, 0, gc.stdout);
    assert.match(await readFile(join(dir, 'ro-calls'), 'utf8'), /DEL cfro1/);
    assert.equal(await store.get('cfro1', 'net1'), undefined, 'released, record gone');
  });
});

describe('a pseudowire that does not exist or is not Ready', () => {
  let dir: string;
  let deps: PluginDeps;
  const resolver = new StaticResolver();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cf-cni-pw-'));
    resolver.set({ namespace: 'a', name: 'broken' }, {
      ifname: 'cfnone1', mtu: 1400, tunnelId: 7, sessionId: 9, up: false, mode: 'bridge',
      state: 'Error', error: 'l2tp: session 9 exists',
    } as PseudowireDevice); // prettier-ignore
    deps = {
      resolver,
      logger: silentLogger(),
      store: new AttachmentStore(join(dir, 'state')),
      locker: new ProcessLocker(),
      nodePid: process.pid,
    };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const add = async (pw: string) => {
    const o = await dispatch({ env, stdin: conf({ pseudowire: pw }) }, deps);
    assert.equal(o.exitCode, 1);
    return JSON.parse(o.stdout) as { code: number; msg: string };
  };

  it('names the pseudowire, with 100 when this node has no endpoint of it', async () => {
    const e = await add('a/cf-nosuch');
    assert.equal(e.code, 100);
    assert.match(e.msg, /^pseudowire a\/cf-nosuch has no endpoint on this node: it does not exist/);
  });
  it('11 (try again later) when its session failed here, with the reason', async () => {
    const e = await add('a/broken');
    assert.equal(e.code, 11);
    assert.match(
      e.msg,
      /^pseudowire a\/broken is not Ready on this node: session 9 of tunnel 7 failed: l2tp: session 9 exists/,
    );
  });
  it('11 naming it while the agent has not synced', async () => {
    resolver.isReady = false;
    try {
      const e = await add('a/broken');
      assert.equal(e.code, 11);
      assert.match(e.msg, /^pseudowire a\/broken: the kube-l2tp node agent has not synced/);
    } finally {
      resolver.isReady = true;
    }
  });
  it('leaves nothing behind', async () => {
    assert.deepEqual(await deps.store.list(), []);
  });
});
