// The limits a user can reach, on a real kube-apiserver: a tunnel's session limit and a node state's
// item limit refuse the newest pseudowires with a status that names the limit, never displace a
// running session, and take the next in line when room is made; the CRD itself refuses node-state
// lists beyond its maxItems. The operator runs with small limits so that reaching them is cheap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SESSIONS_PER_TUNNEL } from '../../lib/api/limits.js';
import { API_VERSION, type L2TPNodeState, type Pseudowire } from '../../lib/api/schemas.js';
import { ApiError, isNotFound } from '../../lib/kube/client.js';
import type { RunningOperator } from '../../operator/operator.js';
import {
  createNode,
  type Env,
  eventually,
  nodeStatePath,
  operator,
  pseudowirePath,
  tunnelPath,
  setupEnv,
} from './operator-env.js';

const pwPath = (n?: string) => pseudowirePath('default', n);
const ready = (p: Pseudowire) => p.status?.conditions?.find((c) => c.type === 'Ready');
const sessionsOn = (ns: L2TPNodeState, tunnel: string) =>
  ns.spec?.tunnels.find((t) => t.name === tunnel)?.sessions.map((s) => s.pseudowire.name) ?? [];

describe('operator limits on a real apiserver', () => {
  let env: Env;
  let op: RunningOperator | undefined;
  before(async () => {
    env = await setupEnv();
    for (const [i, n] of ['n1', 'n2', 'n3'].entries()) await createNode(env.admin, n, `10.0.0.${i + 1}`);
    op = await operator(env, {
      controller: {
        limits: {
          sessionsPerTunnel: 2,
          nodeStateItems: 4,
          nodeStateSpecBytes: 900 * 1024,
          nodeStateShards: 2,
        },
      },
    });
  });
  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  const tunnel = (name: string, peer: string) =>
    env.admin.create(tunnelPath(), {
      apiVersion: API_VERSION,
      kind: 'L2TPTunnel',
      metadata: { name },
      spec: { local: { node: 'n1' }, peer: { node: peer }, allowedNamespaces: ['default'] },
    });
  const pw = (name: string, t: string) =>
    env.admin.create(pwPath(), {
      apiVersion: API_VERSION,
      kind: 'Pseudowire',
      metadata: { name },
      spec: { tunnelRef: { name: t } },
    });
  const reason = (name: string, want: string) =>
    eventually(`${name} ${want}`, async () => {
      const p = await env.admin.get<Pseudowire>(pwPath(name));
      return ready(p)?.reason === want ? p : undefined;
    });

  it('refuses the newest session beyond a tunnel limit with TunnelFull, spreads a node over its node states, then refuses with NodeStateFull', async () => {
    await tunnel('ta', 'n2');
    await tunnel('tb', 'n3');
    for (const n of ['a1', 'a2', 'a3']) await pw(n, 'ta');
    const a3 = await reason('a3', 'TunnelFull');
    assert.equal(ready(a3)?.status, 'False');
    assert.match(ready(a3)!.message!, /L2TPTunnel ta already carries 2 sessions/);
    const n1 = await eventually('n1 with a1 and a2', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return sessionsOn(x, 'ta').length === 2 ? x : undefined;
    });
    assert.deepEqual(sessionsOn(n1, 'ta').sort(), ['a1', 'a2']);
    // the peer node applies the same tunnel limit
    const n2 = await env.admin.get<L2TPNodeState>(nodeStatePath('n2'));
    assert.deepEqual(sessionsOn(n2, 'ta').sort(), ['a1', 'a2']);
    // n1's first node state holds ta, a1, a2 and tb: its four items. b1 and b2 go to a second one,
    // which carries tb's parameters
    await pw('b1', 'tb');
    await pw('b2', 'tb');
    const second = await eventually('n1.shard-1 with b1 and b2', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1.shard-1')).catch(() => undefined);
      return x && sessionsOn(x, 'tb').length === 2 ? x : undefined;
    });
    assert.deepEqual(sessionsOn(second, 'tb').sort(), ['b1', 'b2']);
    assert.equal(second.spec?.nodeName, 'n1');
    assert.equal(second.metadata.labels?.['l2tp.kube-l2tp.io/node'], 'n1');
    assert.deepEqual(
      second.spec?.tunnels.map((t) => t.name),
      ['tb'],
    );
    // a third tunnel takes the last free item; its pseudowire finds no room on n1
    await tunnel('tc', 'n3');
    await pw('c1', 'tc');
    const c1 = await reason('c1', 'NodeStateFull');
    assert.match(
      ready(c1)!.message!,
      /the state of node n1 already holds \d tunnels and sessions in its node states, the most a node holds \(2 node states of at most 4 items/,
    );
    const events = await env.admin.get<{ items: { reason: string; involvedObject: { name: string } }[] }>(
      '/api/v1/namespaces/default/events',
    );
    assert.ok(events.items.some((e) => e.reason === 'TunnelFull' && e.involvedObject.name === 'a3'));
  });

  it('takes the oldest refused pseudowire when a session goes, without displacing any', async () => {
    await env.admin.delete(pwPath('a1'));
    await eventually('a1 gone', () =>
      env.admin.get(pwPath('a1')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    // a3 is older than c1: it gets the room; c1 stays refused, b1 and b2 stay where they are
    const n1 = await eventually('n1 with a2 and a3', async () => {
      const x = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
      return sessionsOn(x, 'ta').includes('a3') ? x : undefined;
    });
    assert.deepEqual(sessionsOn(n1, 'ta').sort(), ['a2', 'a3']);
    assert.deepEqual(sessionsOn(n1, 'tb'), []);
    const second = await env.admin.get<L2TPNodeState>(nodeStatePath('n1.shard-1'));
    assert.deepEqual(sessionsOn(second, 'tb').sort(), ['b1', 'b2']);
    await reason('a3', 'Pending');
    assert.equal(ready(await env.admin.get<Pseudowire>(pwPath('c1')))?.reason, 'NodeStateFull');
  });

  it('deletes a node state left holding nothing', async () => {
    for (const n of ['c1', 'b1', 'b2']) await env.admin.delete(pwPath(n));
    await env.admin.delete(tunnelPath('tc'));
    await eventually('n1.shard-1 deleted', () =>
      env.admin.get(nodeStatePath('n1.shard-1')).then(
        () => false,
        (e: unknown) => isNotFound(e),
      ),
    );
    const n1 = await env.admin.get<L2TPNodeState>(nodeStatePath('n1'));
    assert.deepEqual(
      n1.spec?.tunnels.map((t) => t.name),
      ['ta', 'tb'],
    );
  });

  it('the CRD refuses a node state with more sessions in a tunnel than its maxItems', async () => {
    const session = (i: number) => ({
      pseudowire: { namespace: 'default', name: `x${i}` },
      sessionId: i + 1,
      peerSessionId: i + 1,
      ifname: `l2tpeth${i + 1}`,
      l2specType: 'default',
      sendSequence: false,
      requireSequence: false,
      reorderTimeoutMs: 0,
      mode: 'bridge',
    });
    const err = await env.admin
      .create(nodeStatePath(), {
        apiVersion: API_VERSION,
        kind: 'L2TPNodeState',
        metadata: { name: 'too-big' },
        spec: {
          nodeName: 'too-big',
          tunnels: [
            {
              name: 't',
              tunnelId: 1,
              peerTunnelId: 1,
              encap: 'ip',
              local: '10.0.0.1',
              remote: '10.0.0.2',
              udpChecksum: false,
              sessions: Array.from({ length: MAX_SESSIONS_PER_TUNNEL + 1 }, (_, i) => session(i)),
            },
          ],
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof ApiError, 'rejected');
    assert.equal(err.status, 422);
    assert.match(err.message, new RegExp(`must have at most ${MAX_SESSIONS_PER_TUNNEL} items`));
  });
});
