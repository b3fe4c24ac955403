import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionMtu, sessionParamsSchema, tunnelParamsSchema } from './session.js';

test('MTU matches the kernel l2tp_eth derivation', () => {
  const base = { ipv6: false, cookieLength: 0, l2specType: 'default' } as const;
  assert.equal(sessionMtu({ ...base, encap: 'udp' }), 1446);
  assert.equal(sessionMtu({ ...base, encap: 'udp', cookieLength: 8 }), 1438);
  assert.equal(sessionMtu({ ...base, encap: 'ip' }), 1458);
  assert.equal(sessionMtu({ ...base, encap: 'udp', l2specType: 'none' }), 1450);
  assert.equal(sessionMtu({ ...base, encap: 'udp', ipv6: true }), 1426);
  assert.equal(sessionMtu({ ...base, encap: 'ip', ipv6: true }), 1438);
  assert.equal(sessionMtu({ ...base, encap: 'udp' }, 9000), 8946);
});

const errorsOf = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
  (r.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

test('session parameters are validated as a set, naming the field', () => {
  const ok = sessionParamsSchema.safeParse({ sessionId: 128, peerSessionId: 5196755, cookie: '01:02:03:04' });
  assert.ok(ok.success);
  assert.equal(ok.data.cookie, '01020304');
  assert.equal(ok.data.l2specType, 'default');
  const cases: [unknown, RegExp][] = [
    [{ sessionId: 0, peerSessionId: 1 }, /^sessionId: must be non-zero/],
    [{ sessionId: 1, peerSessionId: 2 ** 32 }, /^peerSessionId: must fit in 32 bits/],
    [{ sessionId: 1, peerSessionId: 2, cookie: '010203' }, /^cookie: must be 4 or 8 bytes/],
    [{ sessionId: 1, peerSessionId: 2, peerCookie: 'zz000000' }, /^peerCookie: must be hexadecimal/],
    [
      { sessionId: 1, peerSessionId: 2, l2specType: 'none', sendSequence: true },
      /^sendSequence: sequence numbers need/,
    ],
    [
      { sessionId: 1, peerSessionId: 2, name: 'a-very-long-interface' },
      /^name: interface names are at most 15/,
    ],
    [{ sessionId: 1, peerSessionId: 2, bogus: 1 }, /bogus/],
  ];
  for (const [input, re] of cases) {
    const r = sessionParamsSchema.safeParse(input);
    assert.ok(!r.success, `accepted ${JSON.stringify(input)}`);
    assert.ok(
      errorsOf(r).some((m) => re.test(m)),
      `${JSON.stringify(input)}: ${errorsOf(r).join('; ')}`,
    );
  }
});

test('tunnel parameters: UDP ports only with UDP, same address family', () => {
  const base = { tunnelId: 42, peerTunnelId: 45, local: '10.0.0.1', remote: '10.0.0.2' };
  assert.ok(tunnelParamsSchema.safeParse({ ...base, udpSourcePort: 5000, udpDestinationPort: 5001 }).success);
  assert.ok(tunnelParamsSchema.safeParse({ ...base, encap: 'ip' }).success);
  const cases: [unknown, RegExp][] = [
    [{ ...base }, /^udpSourcePort: required with encap udp/],
    [{ ...base, encap: 'ip', udpSourcePort: 1 }, /^udpSourcePort: only valid with encap udp/],
    [{ ...base, encap: 'ip', remote: 'fd00::2' }, /^remote: local and remote must be the same IP family/],
    [{ ...base, encap: 'ip', local: 'not-an-ip' }, /^local: must be an IPv4 or IPv6 address/],
    [{ ...base, encap: 'ip', tunnelId: -1 }, /^tunnelId: must be non-zero/],
  ];
  for (const [input, re] of cases) {
    const r = tunnelParamsSchema.safeParse(input);
    assert.ok(!r.success, `accepted ${JSON.stringify(input)}`);
    assert.ok(
      errorsOf(r).some((m) => re.test(m)),
      errorsOf(r).join('; '),
    );
  }
});
