// Pure reconcile logic against an in-memory backend; the real backends have their own tests and
// the agent's integration test runs this against the userspace backend in a namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../lib/log.js';
import { MemoryBackend } from '../../test/fakes/memory-backend.js';
import type { SessionSpec, TunnelSpec } from '../backend/types.js';
import { reconcile, type DesiredState } from './reconcile.js';

const tunnel = (id: number): TunnelSpec => ({
  tunnelId: id,
  peerTunnelId: id + 1000,
  encap: 'udp',
  local: '10.0.0.1',
  remote: '10.0.0.2',
  udpSourcePort: 5000 + id,
  udpDestinationPort: 6000 + id,
  udpChecksum: false,
});
const session = (t: number, s: number, ifname = `l2tpeth${s}`): SessionSpec => ({
  tunnelId: t,
  sessionId: s,
  peerSessionId: s + 100,
  ifname,
  mtu: 1446,
  l2specType: 'default',
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
});
const desired = (...ts: [number, number[]][]): DesiredState => ({
  tunnels: ts.map(([t, ss]) => ({ spec: tunnel(t), sessions: ss.map((s) => session(t, s)) })),
});

test('creates what is desired, and a second pass changes nothing', async () => {
  const b = new MemoryBackend();
  const r = await reconcile(b, desired([1, [10, 11]]), silentLogger());
  assert.deepEqual(b.calls, ['create tunnel 1', 'create session 1/10', 'create session 1/11']);
  assert.deepEqual(
    r.sessions.map((s) => s.state),
    ['Up', 'Up'],
  );
  b.calls = [];
  await reconcile(b, desired([1, [10, 11]]), silentLogger());
  assert.deepEqual(b.calls, []);
});

test('removes only owned objects that are no longer desired, sessions before tunnels', async () => {
  const b = new MemoryBackend();
  await reconcile(b, desired([1, [10]], [2, [20]]), silentLogger());
  b.sessions.set('9/90', { tunnelId: 9, sessionId: 90, ifname: 'theirs0', up: true, owned: false });
  b.tunnels.set(9, { tunnelId: 9, owned: false });
  b.calls = [];
  const r = await reconcile(b, desired([1, [10]]), silentLogger());
  assert.deepEqual(b.calls, ['delete session 2/20', 'delete tunnel 2']);
  assert.ok(b.sessions.has('9/90') && b.tunnels.has(9), 'foreign objects left alone');
  assert.equal(r.removed.length, 2);
});

test('a device deleted by hand comes back on the next pass', async () => {
  const b = new MemoryBackend();
  await reconcile(b, desired([1, [10]]), silentLogger());
  b.sessions.delete('1/10');
  b.calls = [];
  await reconcile(b, desired([1, [10]]), silentLogger());
  assert.deepEqual(b.calls, ['create session 1/10']);
});

test('a foreign device with our name is reported, not destroyed', async () => {
  const b = new MemoryBackend();
  b.sessions.set('0/0', { tunnelId: 0, sessionId: 0, ifname: 'l2tpeth10', up: true, owned: false });
  const r = await reconcile(b, desired([1, [10]]), silentLogger());
  assert.equal(r.sessions[0]?.state, 'Error');
  assert.match(r.sessions[0]?.error ?? '', /not created by kube-l2tp/);
  assert.ok(b.sessions.has('0/0'));
  assert.equal(r.conflicts.length, 1);
});

test('one failing session does not stop the others', async () => {
  const b = new MemoryBackend();
  b.failSession.add(10);
  const r = await reconcile(b, desired([1, [10, 11]]), silentLogger());
  assert.deepEqual(
    r.sessions.map((s) => [s.sessionId, s.state]),
    [
      [10, 'Error'],
      [11, 'Up'],
    ],
  );
  assert.match(r.sessions[0]?.error ?? '', /EEXIST/);
});

test('an underlay outage shows the sessions Down but keeps them configured', async () => {
  const b = new MemoryBackend();
  const r = await reconcile(b, desired([1, [10]]), silentLogger(), {
    probeUnderlay: async () => 'underlay interface eth0 is down',
  });
  assert.equal(r.tunnels[0]?.state, 'Down');
  assert.equal(r.sessions[0]?.state, 'Down');
  assert.match(r.sessions[0]?.error ?? '', /eth0 is down/);
  assert.ok(b.sessions.has('1/10'), 'session still configured for when the underlay returns');
});

test('a refused session is reported failed with its reason and never reaches the backend', async () => {
  const b = new MemoryBackend();
  const d = desired([1, [10, 11]]);
  d.tunnels[0]!.sessions[1]!.refused = 'spec.mtu 9000 is more than the underlay carries';
  const r = await reconcile(b, d, silentLogger());
  assert.deepEqual(b.calls, ['create tunnel 1', 'create session 1/10']);
  assert.deepEqual(
    r.sessions.map((s) => [s.sessionId, s.state, s.error]),
    [
      [10, 'Up', undefined],
      [11, 'Error', 'spec.mtu 9000 is more than the underlay carries'],
    ],
  );
});

test('sessions no longer desired go in one deleteSessions call where the backend has one', async () => {
  class Batching extends MemoryBackend {
    async deleteSessions(refs: readonly { tunnelId: number; sessionId: number }[]) {
      this.calls.push(`delete sessions ${refs.map((r) => `${r.tunnelId}/${r.sessionId}`).join(' ')}`);
      for (const r of refs) this.sessions.delete(`${r.tunnelId}/${r.sessionId}`);
    }
  }
  const b = new Batching();
  await reconcile(b, desired([1, [10, 11, 12]], [2, [20]]), silentLogger());
  b.sessions.set('9/90', { tunnelId: 9, sessionId: 90, ifname: 'theirs0', up: true, owned: false });
  b.calls = [];
  const r = await reconcile(b, desired([1, [10]]), silentLogger());
  assert.deepEqual(b.calls, ['delete sessions 1/11 1/12 2/20', 'delete tunnel 2']);
  assert.ok(b.sessions.has('9/90'), 'foreign session left alone');
  assert.equal(r.removed.length, 4);
});

test('when deleteSessions fails, each session is tried on its own', async () => {
  class Failing extends MemoryBackend {
    async deleteSessions(): Promise<void> {
      throw new Error('EPERM');
    }
  }
  const b = new Failing();
  await reconcile(b, desired([1, [10, 11, 12]]), silentLogger());
  b.calls = [];
  await reconcile(b, desired([1, [10]]), silentLogger());
  assert.deepEqual(b.calls, ['delete session 1/11', 'delete session 1/12']);
});

test('a refusal of new sessions leaves the existing ones made and stops only the new, until it lifts', async () => {
  const b = new MemoryBackend();
  await reconcile(b, desired([1, [10, 11]]), silentLogger());
  b.sessions.delete('1/11'); // gone since: made anew like any new session
  b.calls = [];
  let refusal: string | undefined = 'not made: memory';
  const asked: string[] = [];
  const opts = { refuseNewSession: () => (asked.push('?'), refusal) };
  const r = await reconcile(b, desired([1, [10, 11, 12]]), silentLogger(), opts);
  assert.deepEqual(b.calls, [], 'nothing made');
  assert.deepEqual(
    r.sessions.map((s) => [s.sessionId, s.state, s.error]),
    [
      [10, 'Up', undefined],
      [11, 'Error', 'not made: memory'],
      [12, 'Error', 'not made: memory'],
    ],
  );
  assert.equal(asked.length, 1, 'asked for new sessions only, once: the refusal stands for the pass');
  refusal = undefined;
  const again = await reconcile(b, desired([1, [10, 11, 12]]), silentLogger(), opts);
  assert.deepEqual(b.calls, ['create session 1/11', 'create session 1/12']);
  assert.ok(again.sessions.every((s) => s.state === 'Up'));
});
