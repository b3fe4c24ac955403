import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SESSIONS_WITH_STATUS_COUNTERS } from '../../lib/api/limits.js';
import type { SessionCounters } from '../backend/types.js';
import { buildStatus, type StatusInput } from './status.js';

function input(n: number) {
  const sessions = Array.from({ length: n }, (_, i) => ({
    tunnelId: 1,
    sessionId: 1000 + i,
    ifname: `l2tpeth${1000 + i}`,
    mtu: 1446,
    state: 'Up' as const,
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
    generation: 3,
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

  it('leaves counters to the metrics on a large node, keeping each session under 200 bytes', () => {
    const n = MAX_SESSIONS_WITH_STATUS_COUNTERS + 1;
    const st = buildStatus(input(n));
    assert.equal(st.sessions?.length, n);
    assert.ok(st.sessions?.every((s) => s.counters === undefined));
    const perSession = JSON.stringify(st.sessions).length / n;
    assert.ok(perSession < 200, `${perSession} bytes per session`);
    assert.equal(st.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
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
