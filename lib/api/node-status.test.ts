import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIdRanges, parseIdRanges, reportedSessions } from './node-status.js';
import type { L2TPNodeState } from './schemas.js';

describe('session ID ranges', () => {
  it('formats runs as ranges and reads them back', () => {
    assert.equal(formatIdRanges([7, 1, 2, 3, 10, 9, 3]), '1-3,7,9-10');
    assert.deepEqual(parseIdRanges('1-3,7,9-10'), [1, 2, 3, 7, 9, 10]);
    assert.equal(formatIdRanges([]), '');
    assert.deepEqual(parseIdRanges(''), []);
  });

  it('round-trips any set of 32-bit IDs', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 0xffffffff }), { maxLength: 200 }), (ids) => {
        assert.deepEqual(
          parseIdRanges(formatIdRanges(ids)),
          [...ids].sort((a, b) => a - b),
        );
      }),
    );
  });

  it('rejects what it does not write, and ranges too large to expand', () => {
    for (const bad of ['0', '01', '3-1', '1,', 'a', '1-2-3', '4294967296', ' 1'])
      assert.throws(() => parseIdRanges(bad), /not a session ID range/, bad);
    assert.throws(() => parseIdRanges('1-4294967295'), /more than/);
  });
});

describe('reportedSessions', () => {
  it('lists the listed ones and expands the ranges with the spec; IDs the spec lost have no pseudowire; an unlisted group names whose message it carries', () => {
    const ns: L2TPNodeState = {
      apiVersion: 'v',
      kind: 'L2TPNodeState',
      metadata: { name: 'n' },
      spec: {
        nodeName: 'n',
        tunnels: [
          {
            name: 't',
            tunnelId: 1,
            peerTunnelId: 2,
            encap: 'udp',
            local: 'a',
            remote: 'b',
            udpChecksum: false,
            sessions: [5, 6, 8, 9].map((id) => ({
              pseudowire: { namespace: 'x', name: `pw${id}` },
              sessionId: id,
              peerSessionId: id,
              ifname: `l2tpeth${id}`,
              l2specType: 'none' as const,
              sendSequence: false,
              requireSequence: false,
              reorderTimeoutMs: 0,
              mode: 'bridge' as const,
            })),
          },
        ],
      },
      status: {
        tunnels: [
          {
            name: 't',
            tunnelId: 1,
            state: 'Ready',
            up: [{ sessionIds: '5,7', mtu: 1446 }],
            unlisted: [{ sessionIds: '8-9', state: 'Down', message: 'underlay down' }],
          },
        ],
        sessions: [
          {
            pseudowire: { namespace: 'x', name: 'pw6' },
            tunnelId: 1,
            sessionId: 6,
            ifname: 'l2tpeth6',
            state: 'Failed',
            message: 'EEXIST',
          },
        ],
      },
    };
    assert.deepEqual(reportedSessions(ns), [
      ns.status!.sessions![0],
      {
        tunnelId: 1,
        sessionId: 5,
        state: 'Up',
        mtu: 1446,
        pseudowire: { namespace: 'x', name: 'pw5' },
        ifname: 'l2tpeth5',
      },
      { tunnelId: 1, sessionId: 7, state: 'Up', mtu: 1446 },
      {
        tunnelId: 1,
        sessionId: 8,
        state: 'Down',
        message: 'underlay down',
        pseudowire: { namespace: 'x', name: 'pw8' },
        ifname: 'l2tpeth8',
      },
      {
        tunnelId: 1,
        sessionId: 9,
        state: 'Down',
        message:
          'one of 2 sessions in this state that the node state does not list one by one; session 8 says: underlay down',
        pseudowire: { namespace: 'x', name: 'pw9' },
        ifname: 'l2tpeth9',
      },
    ]);
    assert.deepEqual(reportedSessions(undefined), []);
  });
});
