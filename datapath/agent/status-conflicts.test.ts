// Many devices in the way (hundreds of sessions whose names another tool's devices hold) must still
// give a status the API server takes: a status write it refuses leaves every part of the status,
// counters and states included, as it was. The Degraded condition's message names the first
// conflict and how many more there are, within the condition's limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeStateStatusSchema } from '../../lib/api/schemas.js';
import type { ItemState } from './reconcile.js';
import { buildStatus } from './status.js';

describe('status with many conflicts', () => {
  it('stays within the schema and says how many there are', () => {
    const n = 2000;
    const conflicts = Array.from(
      { length: n },
      (_, i) => `interface l2tpeth${i + 1} exists and was not created by kube-l2tp; left alone`,
    );
    const st = buildStatus({
      generation: 2,
      backend: 'kernel',
      backendReason: 'test',
      agentVersion: 'test',
      report: {
        tunnels: [{ name: 't', tunnelId: 1, state: 'Up' }],
        sessions: Array.from({ length: n }, (_, i) => ({
          tunnelId: 1,
          sessionId: i + 1,
          ifname: `l2tpeth${i + 1}`,
          mtu: 1446,
          state: 'Error' as ItemState,
          error: conflicts[i]!,
        })),
        removed: [],
        conflicts,
      },
      counters: new Map(),
      now: '2026-01-01T00:00:00Z',
    });
    const parsed = nodeStateStatusSchema.safeParse(st);
    assert.ok(parsed.success, parsed.success ? '' : parsed.error.message.slice(0, 300));
    const degraded = st.conditions?.find((c) => c.type === 'Degraded');
    assert.equal(degraded?.reason, 'ForeignDevice');
    assert.match(degraded?.message ?? '', /^interface l2tpeth1 exists .*1999 more/);
  });
});
