// Dispatcher and server, without root: inputs that fail before any link work, STATUS, VERSION, and
// the shim protocol over a real unix socket.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeResponse } from '../../lib/agent-protocol.js';
import { silentLogger } from '../../lib/log.js';
import { dispatch, type PluginDeps } from './plugin.js';
import { startCniServer, type CniServer } from './server.js';
import { StaticResolver } from './static-resolver.js';
import { AttachmentStore, ProcessLocker } from './state.js';

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
};

describe('dispatch', () => {
  let dir: string;
  let deps: PluginDeps;
  const resolver = new StaticResolver();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kc-cni-unit-'));
    resolver.set(
      { namespace: 'a', name: 'b' },
      { ifname: 'kcnone0', mtu: 1400, tunnelId: 1, sessionId: 2, up: true },
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
    assert.equal(await code(env, conf({ pseudowire: 'b' })), 7, 'a bare name needs K8S_POD_NAMESPACE');
    assert.equal(await code({ ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=zz' }, conf({ pseudowire: 'b' })), 100);
    assert.equal(
      await code({ ...env, CNI_ARGS: 'K8S_POD_NAMESPACE=a' }, conf({ pseudowire: 'b' })),
      3,
      'found; netns missing',
    );
    assert.equal(await code(env, conf({ mtu: 1500 })), 103);
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
      stateDir: join(dir, 'state'),
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
