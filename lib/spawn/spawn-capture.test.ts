// The posix_spawn runner against real programs (sh, cat, env, sleep and node itself).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, open, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadNative } from '../netlink/native.js';
import { spawnCapture } from './spawn-capture.js';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const sh = (script: string, opts: { input?: string | Buffer; timeoutMs?: number } = {}) =>
  spawnCapture('/bin/sh', ['-c', script], { env: ENV, ...opts });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('spawnCapture (posix_spawn addon)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kc-spawn-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports exit codes', async () => {
    for (const code of [0, 1, 42, 255]) assert.equal((await sh(`exit ${code}`)).code, code);
  });

  it('captures stdout and stderr apart, passes stdin', async () => {
    const r = await sh('echo out; echo err >&2; tr a-z A-Z', { input: 'config json' });
    assert.deepEqual(r, { stdout: 'out\nCONFIG JSON', stderr: 'err\n', code: 0 });
  });

  it('gives the program exactly the environment asked for, and argv', async () => {
    const r = await spawnCapture('/usr/bin/env', [], {
      env: { CNI_COMMAND: 'ADD', PATH: '/bin', EMPTY: '' },
    });
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['CNI_COMMAND=ADD', 'EMPTY=', 'PATH=/bin']);
    const a = await spawnCapture('/bin/sh', ['-c', 'echo "$0|$1|$2"', 'zero', 'one two', ''], { env: ENV });
    assert.equal(a.stdout, 'zero|one two|\n');
  });

  it('moves 1 MB in and 1 MB out on both pipes without deadlock, whatever the order', async () => {
    const input = randomBytes(1 << 20).toString('base64'); // ~1.4 MB of text
    const md5 = createHash('md5').update(input).digest('hex');
    // writes 1 MB to stdout and 1 MB to stderr BEFORE reading any stdin: every pipe fills up
    const r = await spawnCapture(
      process.execPath,
      [
        '-e',
        `const fs = require('fs');
         fs.writeSync(1, 'o'.repeat(1 << 20)); fs.writeSync(2, 'e'.repeat(1 << 20));
         const h = require('crypto').createHash('md5').update(fs.readFileSync(0)).digest('hex');
         fs.writeSync(1, '|' + h);`,
      ],
      { env: ENV, input, timeoutMs: 20_000 },
    );
    assert.equal(r.code, 0, r.stderr.slice(-500));
    assert.equal(r.stdout, 'o'.repeat(1 << 20) + '|' + md5);
    assert.equal(r.stderr, 'e'.repeat(1 << 20));
    // and a plain echo through cat
    const c = await spawnCapture('/bin/cat', [], { env: ENV, input });
    assert.equal(c.stdout.length, input.length);
    assert.equal(c.stdout, input);
  });

  it('a program that never reads its stdin does not hang the writer', async () => {
    const r = await sh('exit 7', { input: Buffer.alloc(4 << 20, 1) });
    assert.equal(r.code, 7);
  });

  it('rejects like child_process when the program cannot be started', async () => {
    const missing = join(dir, 'no-such-plugin');
    await assert.rejects(spawnCapture(missing, [], { env: ENV }), (e: NodeJS.ErrnoException) => {
      assert.equal(e.message, `spawn ${missing} ENOENT`);
      assert.equal(e.code, 'ENOENT');
      assert.equal(e.errno, -2);
      assert.equal(e.syscall, `spawn ${missing}`);
      assert.equal(e.path, missing);
      return true;
    });
    const notExec = join(dir, 'not-executable');
    await writeFile(notExec, '#!/bin/sh\n');
    await chmod(notExec, 0o644);
    await assert.rejects(spawnCapture(notExec, [], { env: ENV }), { code: 'EACCES' });
  });

  it('kills a program that outlives its timeout (SIGKILL, reaped), keeping what it printed', async () => {
    const pidFile = join(dir, 'hang.pid');
    const t0 = performance.now();
    const r = await sh(`echo started; echo $$ > ${pidFile}; exec sleep 30`, { timeoutMs: 300 });
    const ms = performance.now() - t0;
    assert.equal(r.code, 128);
    assert.equal(r.stdout, 'started\n');
    assert.equal(r.stderr, '\nkilled by SIGKILL');
    assert.ok(ms >= 290 && ms < 3000, `took ${ms} ms`);
    const pid = (await readFile(pidFile, 'utf8')).trim();
    assert.equal(existsSync(`/proc/${pid}`), false, 'killed and reaped (no zombie left)');
  });

  it('reports a death by signal as code 128 with the signal named', async () => {
    const r = await sh('echo partial; kill -TERM $$');
    assert.deepEqual(r, { stdout: 'partial\n', stderr: '\nkilled by SIGTERM', code: 128 });
  });

  it('starts the program with no blocked and no ignored signals (Node ignores SIGPIPE)', async () => {
    const r = await spawnCapture('/bin/cat', ['/proc/self/status'], { env: ENV });
    const mask = (name: string) =>
      BigInt('0x' + (new RegExp(`^${name}:\\s+([0-9a-f]+)$`, 'm').exec(r.stdout)?.[1] ?? 'x'));
    // glibc keeps its two internal real-time signals (32, 33) out of reach of sigaction
    const glibcInternal = (1n << 31n) | (1n << 32n);
    assert.equal(mask('SigBlk') & ~glibcInternal, 0n);
    assert.equal(mask('SigIgn') & ~glibcInternal, 0n);
  });

  it('does not block the event loop while programs run, and runs many at once', async () => {
    // every program ends only once this event loop, still turning while they all run, has seen each
    // of them start and made the file they wait for
    const go = join(dir, 'go');
    const started = (i: number) => join(dir, `started.${i}`);
    const runs = Array.from({ length: 16 }, (_, i) =>
      sh(`touch ${started(i)}; while [ ! -e ${go} ]; do sleep 0.01; done; echo ${i}`, { timeoutMs: 30_000 }),
    );
    while (!Array.from({ length: 16 }, (_, i) => existsSync(started(i))).every(Boolean)) await sleep(10);
    await writeFile(go, '');
    const rs = await Promise.all(runs);
    rs.forEach((r, i) => assert.deepEqual(r, { stdout: `${i}\n`, stderr: '', code: 0 }));
  });

  it('leaks no descriptor into the program: /proc/<pid>/fd holds only 0, 1, 2', async () => {
    // descriptors of the kinds the agent holds: a listening unix socket (the CNI socket), an open
    // file, a netlink socket (the netlink addon, when built and allowed), plus Node's own (epoll,
    // eventfds, the pipes of the runs before)
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(dir, 'agent.sock'), r));
    const file = await open(join(dir, 'held'), 'w');
    let netlinkFd: number | undefined;
    try {
      netlinkFd = loadNative().open(0 /* NETLINK_ROUTE */);
    } catch {
      // addon not built or not permitted here: the other descriptors still count
    }
    const pidFile = join(dir, 'fd.pid');
    try {
      const run = sh(`echo $$ > ${pidFile}; exec sleep 5`, { timeoutMs: 2000 });
      let fds: string[] | undefined;
      for (let i = 0; i < 150 && fds === undefined; i++) {
        await sleep(10);
        const pid = await readFile(pidFile, 'utf8').catch(() => '');
        if (!pid.endsWith('\n')) continue;
        const exe = await readlink(`/proc/${pid.trim()}/exe`).catch(() => '');
        if (exe.endsWith('/sleep')) fds = await readdir(`/proc/${pid.trim()}/fd`); // after the exec
      }
      const ours = (await readdir('/proc/self/fd')).length;
      assert.ok(ours > 6, `the test process holds ${ours} descriptors`);
      assert.deepEqual(fds?.sort(), ['0', '1', '2']);
      assert.equal((await run).code, 128);
    } finally {
      server.close();
      await file.close();
      if (netlinkFd !== undefined) loadNative().close(netlinkFd);
    }
  });
});
