import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseStaticConfig } from './config.js';
import { makePlan, type Plan, type PlanEnv } from './plan.js';
import { EXAMPLE_FILE as GOOD } from './testdata.js';

const sessionsOf = (p: Plan) => p.desired.tunnels.flatMap((t) => t.sessions);

function problems(text: string): string[] {
  try {
    parseStaticConfig(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the file to be rejected');
}

const env = (
  names: string[] = [],
  owned: { tunnelId: number; sessionId: number; ifname: string }[] = [],
): PlanEnv => ({
  underlayMtu: async () => 1500,
  interfaceNames: async () => new Set(names),
  ownedSessions: async () => owned.map((o) => ({ ...o, up: true, owned: true })),
});

describe('static config', () => {
  it('accepts the documented vocabulary and applies the kernel defaults', () => {
    const c = parseStaticConfig(GOOD);
    assert.equal(c.tunnels.length, 2);
    const s = c.tunnels[0]!.sessions[0]!;
    assert.equal(s.l2specType, 'default');
    assert.equal(s.sendSequence, false);
    assert.equal(c.tunnels[0]!.udpChecksum, false);
  });

  it('rejects bad fields with their paths', () => {
    const p = problems(GOOD.replace('tunnelId: 42', 'tunnelId: 0').replace('"0102030405060708"', '"01020"'));
    assert.ok(
      p.some((x) => /^tunnels\[0\]\.tunnelId: must be non-zero/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^tunnels\[0\]\.sessions\[0\]\.cookie: /.test(x)),
      p.join('\n'),
    );
  });

  it('rejects ports on ip encap, missing ports on udp, unknown keys, sequencing without sublayer', () => {
    assert.ok(
      problems(GOOD.replace('    udpSourcePort: 5000\n', '')).some((x) =>
        x.startsWith('tunnels[0].udpSourcePort'),
      ),
    );
    assert.ok(
      problems(GOOD.replace('remote: 10.0.0.3', 'remote: 10.0.0.3\n    udpSourcePort: 1')).some((x) =>
        x.startsWith('tunnels[1].udpSourcePort'),
      ),
    );
    assert.ok(
      problems(GOOD.replace('mtu: 1400', 'mtu: 1400\n        colour: red')).some((x) =>
        /sessions\[1\]/.test(x),
      ),
    );
    assert.ok(
      problems(GOOD.replace('sendSequence: true', 'sendSequence: true, l2specType: none')).some((x) =>
        x.startsWith('tunnels[1].sessions[0].sendSequence'),
      ),
    );
    assert.deepEqual(problems('tunnels: []'), ['tunnels: must be a non-empty list']);
    assert.match(problems('tunnels: [')[0]!, /^YAML: /);
  });

  it('rejects duplicates: tunnel ids, session ids across tunnels, names, UDP sockets', () => {
    const dup = GOOD.replace('tunnelId: 43', 'tunnelId: 42')
      .replace('sessionId: 130', 'sessionId: 128')
      .replace('sendSequence: true', 'name: custom0, sendSequence: true');
    const p = problems(dup);
    assert.ok(
      p.some((x) => /tunnels\[1\]\.tunnelId: 42 is also used/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /tunnels\[1\]\.sessions\[0\]\.sessionId: 128 is also used/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /tunnels\[1\]\.sessions\[0\]\.name: custom0/.test(x)),
      p.join('\n'),
    );
  });
});

describe('static plan', () => {
  it('names devices l2tpethN (lowest free), computes the kernel MTU, keeps configured values', async () => {
    const plan = await makePlan(parseStaticConfig(GOOD), env(['l2tpeth0']));
    assert.deepEqual(
      sessionsOf(plan).map((s) => [s.ifname, s.mtu]),
      [
        ['l2tpeth1', 1500 - (20 + 8 + 4 + 4 + 8 + 4 + 14)],
        ['custom0', 1400],
        ['l2tpeth2', 1500 - (20 + 4 + 4 + 14)],
      ],
    );
  });

  it('reuses the name of a TAP this project already owns for the same session', async () => {
    const plan = await makePlan(
      parseStaticConfig(GOOD),
      env(['l2tpeth5'], [{ tunnelId: 42, sessionId: 128, ifname: 'l2tpeth5' }]),
    );
    assert.equal(sessionsOf(plan)[0]!.ifname, 'l2tpeth5');
    assert.equal(sessionsOf(plan)[2]!.ifname, 'l2tpeth0');
  });

  it("refuses an mtu above what the route to the peer carries, in the file's own words", async () => {
    // custom0 (UDP, no cookie, no sublayer) asks for 1400; a 1400-byte underlay carries 1400 - 50
    const narrow: PlanEnv = { ...env(), underlayMtu: async () => 1400 };
    const refused = sessionsOf(await makePlan(parseStaticConfig(GOOD), narrow)).find(
      (s) => s.ifname === 'custom0',
    )!.refused;
    assert.equal(
      refused,
      "the session's mtu 1400 is more than the underlay carries: at most 1350 over an underlay MTU of 1400; " +
        "lower the session's mtu, or raise the MTU of the device on the route to the peer if the node " +
        'network carries larger packets',
    );
  });
});
