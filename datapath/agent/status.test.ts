import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_NODE_STATE_SPEC_BYTES,
  MAX_SESSIONS_LISTED_IN_STATUS,
  MAX_SESSIONS_WITH_STATUS_COUNTERS,
  MAX_UP_GROUPS_PER_TUNNEL,
} from '../../lib/api/limits.js';
import { parseIdRanges, reportedSessions } from '../../lib/api/node-status.js';
import type { NodeStateSpec } from '../../lib/api/schemas.js';
import { fullShardFailing, nodeSession, nodeTunnel } from '../../test/fakes/objects.js';
import type { SessionCounters } from '../backend/types.js';
import type { ItemState } from './reconcile.js';
import { buildStatus, hasCounters, splitReport, type StatusInput } from './status.js';

function input(n: number) {
  const sessions = Array.from({ length: n }, (_, i) => ({
    tunnelId: 1,
    sessionId: 1000 + i,
    ifname: `l2tpeth${1000 + i}`,
    mtu: 1446,
    state: 'Up' as ItemState,
    pseudowire: { namespace: 'team-a', name: `pw-${i}` },
  }));
  const counters = new Map<string, SessionCounters>(
    sessions.map((s) => [
      `1/${s.sessionId}`,
      {
        txPackets: 123456,
        txBytes: 98765432,
        txErrors: 0,
        rxPackets: 123450,
        rxBytes: 98760000,
        rxErrors: 0,
        drops: { badCookie: 3, unknownSession: 1 },
      },
    ]),
  );
  return {
    generation: 3 as number | undefined,
    backend: 'userspace' as const,
    backendReason: 'kernel l2tp family not available',
    agentVersion: '0.1.0',
    report: {
      tunnels: [{ name: 't', tunnelId: 1, state: 'Up' as const }],
      sessions,
      removed: [],
      conflicts: [],
    },
    counters,
    now: '2026-01-01T00:00:00Z',
  };
}

describe('agent status size', () => {
  it('carries per-session counters on a small node', () => {
    const st = buildStatus(input(2));
    assert.equal(st.sessions?.[0]?.counters?.rxPackets, 123450);
    assert.deepEqual(st.sessions?.[1]?.counters?.drops, { badCookie: 3, unknownSession: 1 });
  });

  it('leaves counters to the metrics on a large node, keeping each listed session under 200 bytes', () => {
    const n = MAX_SESSIONS_WITH_STATUS_COUNTERS + 1;
    const i = input(n);
    // not Up, so listed one by one (up to the list's limit)
    for (const s of i.report.sessions) Object.assign(s, { state: 'Down', error: 'underlay down' });
    const st = buildStatus(i);
    assert.equal(st.sessions?.length, Math.min(n, MAX_SESSIONS_LISTED_IN_STATUS));
    assert.ok(st.sessions?.every((s) => s.counters === undefined));
    const perSession = JSON.stringify(st.sessions).length / st.sessions!.length;
    assert.ok(perSession < 200, `${perSession} bytes per session`);
  });
});

describe('compact status of a large node', () => {
  /** 10,000 sessions over 10 tunnels, in two MTUs; one failed, one Down. */
  function large() {
    const i = input(0);
    const tunnels: NodeStateSpec['tunnels'] = [];
    i.report.tunnels = [];
    for (let t = 1; t <= 10; t++) {
      i.report.tunnels.push({ name: `t${t}`, tunnelId: t, state: 'Up' });
      const sessions = Array.from({ length: 1000 }, (_, k) => ({
        tunnelId: t,
        sessionId: t * 10_000 + k + 1,
        ifname: `l2tpeth${t * 10_000 + k + 1}`,
        mtu: k < 500 ? 1400 : 1446,
        state: 'Up' as ItemState,
        pseudowire: { namespace: 'team-a', name: `pw-${t}-${k}` },
      }));
      i.report.sessions.push(...sessions);
      tunnels.push({
        name: `t${t}`,
        tunnelId: t,
        peerTunnelId: t,
        encap: 'udp',
        local: '10.0.0.1',
        remote: '10.0.0.2',
        udpChecksum: false,
        sessions: sessions.map((s) => ({
          pseudowire: s.pseudowire,
          sessionId: s.sessionId,
          peerSessionId: s.sessionId,
          ifname: s.ifname,
          l2specType: 'default',
          sendSequence: false,
          requireSequence: false,
          reorderTimeoutMs: 0,
          mode: 'bridge',
        })),
      });
    }
    Object.assign(i.report.sessions[17]!, { state: 'Error', error: 'EEXIST' });
    Object.assign(i.report.sessions[4321]!, { state: 'Down', error: 'underlay down' });
    return { i, spec: { nodeName: 'n', tunnels } };
  }

  it('10,000 sessions fit in a few KiB, and read back as every session with its state', () => {
    const { i, spec } = large();
    const status = buildStatus(i);
    const bytes = JSON.stringify(status).length;
    assert.ok(bytes < 8 * 1024, `${bytes} bytes`);
    assert.deepEqual(
      status.sessions?.map((s) => [s.sessionId, s.state]),
      [
        [10_018, 'Failed'],
        [50_322, 'Down'],
      ],
    );
    const ns = { apiVersion: 'v', kind: 'L2TPNodeState', metadata: { name: 'n' }, spec, status };
    const key = (s: { sessionId: number }) => s.sessionId;
    const got = reportedSessions(ns).sort((a, b) => key(a) - key(b));
    const want = i.report.sessions
      .map((s) => ({
        tunnelId: s.tunnelId,
        sessionId: s.sessionId,
        state: s.state === 'Error' ? 'Failed' : s.state,
        mtu: s.mtu,
        ifname: s.ifname,
        pseudowire: s.pseudowire,
      }))
      .sort((a, b) => key(a) - key(b));
    assert.equal(got.length, 10_000);
    assert.deepEqual(
      got.map(({ message: _m, ...rest }) => rest),
      want,
    );
    assert.equal(status.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
  });

  it("a full node state whose every session fails at once stays within etcd's request limit, and reads back as every session Failed", () => {
    const { spec, report } = fullShardFailing('n');
    const status = buildStatus({ ...input(0), report });
    const specBytes = JSON.stringify(spec).length;
    assert.ok(
      specBytes > 0.9 * MAX_NODE_STATE_SPEC_BYTES && specBytes <= MAX_NODE_STATE_SPEC_BYTES,
      `${specBytes}`,
    );
    const bytes = JSON.stringify({ spec, status }).length;
    // etcd refuses requests over 1.5 MiB; metadata and managed fields need room too
    assert.ok(bytes < 1.5 * 1024 * 1024 - 256 * 1024, `${bytes} bytes`);
    // the first ones listed with their own messages, the rest in one group with the first's
    assert.equal(status.sessions?.length, MAX_SESSIONS_LISTED_IN_STATUS);
    assert.equal(status.sessions?.[0]?.message, report.sessions[0]!.error);
    const first = report.sessions[MAX_SESSIONS_LISTED_IN_STATUS]!;
    assert.deepEqual(status.tunnels?.[0]?.unlisted, [
      {
        sessionIds: `${first.sessionId}-${report.sessions.at(-1)!.sessionId}`,
        state: 'Failed',
        message: first.error,
      },
    ]);
    const ns = { apiVersion: 'v', kind: 'L2TPNodeState', metadata: { name: 'n' }, spec, status };
    const got = reportedSessions(ns);
    assert.equal(got.length, report.sessions.length);
    assert.ok(got.every((s) => s.state === 'Failed' && s.pseudowire && s.ifname && s.message));
    assert.deepEqual(
      got.map((s) => s.sessionId).sort((a, b) => a - b),
      report.sessions.map((s) => s.sessionId),
    );
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.message, `${report.sessions.length} of ${report.sessions.length + 1} items failed`);
  });

  it('beyond the list, the sessions not Up are listed first, and the rest grouped by state', () => {
    const i = input(MAX_SESSIONS_LISTED_IN_STATUS + 40);
    const ids = (f: (k: number) => boolean) =>
      i.report.sessions.filter((_, k) => f(k)).map((s) => s.sessionId);
    // every session on its own MTU: more than an Up group per tunnel can take
    i.report.sessions.forEach((s, k) => (s.mtu = 1000 + k));
    i.report.sessions.forEach((s, k) => {
      if (k % 2) Object.assign(s, { state: 'Down', error: `underlay down (${k})` });
    });
    const st = buildStatus(i);
    const listed = st.sessions!.map((s) => s.sessionId);
    const down = ids((k) => k % 2 === 1);
    assert.deepEqual(listed.slice(0, down.length), down, 'every session not Up is listed, before any Up');
    assert.equal(listed.length, MAX_SESSIONS_LISTED_IN_STATUS);
    const upByMtu = ids((k) => k % 2 === 0 && k < 2 * MAX_UP_GROUPS_PER_TUNNEL);
    const g = st.tunnels![0]!;
    assert.deepEqual(
      g.up?.flatMap((x) => parseIdRanges(x.sessionIds)),
      upByMtu,
    );
    const rest = g.unlisted ?? [];
    assert.deepEqual(
      rest.map((x) => x.state),
      ['Up'],
    );
    assert.equal(
      parseIdRanges(rest[0]!.sessionIds).length + listed.length + upByMtu.length,
      i.report.sessions.length,
    );
  });

  it('a small node keeps the full list', () => {
    const st = buildStatus(input(MAX_SESSIONS_LISTED_IN_STATUS));
    assert.equal(st.sessions?.length, MAX_SESSIONS_LISTED_IN_STATUS);
    assert.equal(st.tunnels?.[0]?.up, undefined);
  });
});

const conditionsInput = (o: Partial<StatusInput> = {}): StatusInput => ({
  generation: 3,
  backend: 'userspace',
  backendReason: 'requested',
  agentVersion: 'test',
  report: {
    tunnels: [{ name: 't', tunnelId: 1, state: 'Up' }],
    sessions: [{ tunnelId: 1, sessionId: 10, ifname: 'l2tpeth0', mtu: 1446, state: 'Up' }],
    removed: [],
    conflicts: [],
  },
  counters: new Map(),
  now: '2026-01-01T00:00:00Z',
  ...o,
});

describe('node-state conditions', () => {
  it('all up: Ready and not Degraded, stamped with the generation', () => {
    assert.deepEqual(buildStatus(conditionsInput()).conditions, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: '1 sessions up on the userspace backend',
        observedGeneration: 3,
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
      {
        type: 'Degraded',
        status: 'False',
        reason: 'AsExpected',
        message: 'no problems',
        observedGeneration: 3,
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
  });

  it('a transition time moves only with its status; a conflict degrades', () => {
    const first = buildStatus(conditionsInput()).conditions;
    const later = buildStatus(
      conditionsInput({
        previous: first,
        now: '2026-01-01T00:05:00Z',
        generation: undefined,
        report: {
          ...conditionsInput().report,
          conflicts: ['interface l2tpeth9 exists and was not created by kube-l2tp; left alone'],
        },
      }),
    ).conditions;
    assert.deepEqual(later, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: '1 sessions up on the userspace backend',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
      {
        type: 'Degraded',
        status: 'True',
        reason: 'ForeignDevice',
        message: 'interface l2tpeth9 exists and was not created by kube-l2tp; left alone',
        lastTransitionTime: '2026-01-01T00:05:00Z',
      },
    ]);
  });
});

describe('status of a node state split over shards', () => {
  const tunnel = (tunnelId: number, ids: number[]) =>
    nodeTunnel(
      `t${tunnelId}`,
      ids.map((id) => nodeSession(`pw-${id}`, id, 'team-a')),
      tunnelId,
    );
  const outcome = (tunnelId: number, sessionId: number) => ({
    tunnelId,
    sessionId,
    ifname: `l2tpeth${sessionId}`,
    mtu: 1446,
    state: 'Up' as ItemState,
  });

  it('gives each shard the tunnels and sessions its spec names; shard 0 what none names', () => {
    const report = {
      tunnels: [
        { name: 't1', tunnelId: 1, state: 'Up' as const },
        { name: 't2', tunnelId: 2, state: 'Up' as const },
      ],
      sessions: [outcome(1, 10), outcome(1, 11), outcome(2, 20), outcome(1, 99)],
      removed: ['x'],
      conflicts: ['a foreign device'],
    };
    const specs: NodeStateSpec[] = [
      { nodeName: 'n', tunnels: [tunnel(1, [10])] },
      { nodeName: 'n', tunnels: [tunnel(1, [11]), tunnel(2, [20])] },
    ];
    const [a, b] = splitReport(report, specs);
    assert.deepEqual(
      a!.sessions.map((s) => s.sessionId),
      [10, 99],
    );
    assert.deepEqual(
      b!.sessions.map((s) => s.sessionId),
      [11, 20],
    );
    // a tunnel in both shards is reported in both; one in neither would go to shard 0
    assert.deepEqual(
      a!.tunnels.map((t) => t.tunnelId),
      [1],
    );
    assert.deepEqual(
      b!.tunnels.map((t) => t.tunnelId),
      [1, 2],
    );
    assert.deepEqual([a!.conflicts, b!.conflicts], [['a foreign device'], []]);
    assert.equal(splitReport(report, [specs[0]])[0], report, 'one shard: the report as it is');
  });

  it('only a status with counters falls due with time alone', () => {
    assert.equal(hasCounters(buildStatus(input(2))), true);
    assert.equal(hasCounters(buildStatus(input(MAX_SESSIONS_WITH_STATUS_COUNTERS + 1))), false);
  });
});
