// The examples' explicit MTUs fit a 1500-byte underlay, as the agent computes it: a larger one is
// refused ("is more than the underlay carries"), so an example with one would not come up as shown.
// (test/integration/examples-apiserver.test.ts applies the examples to a real API server.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { sessionMtu } from '../../lib/wire/session.js';
import { parseStaticConfig } from '../../datapath/static/config.js';
import { makePlan } from '../../datapath/static/plan.js';
import { readRepo, repoRoot } from './markdown.js';

type Obj = {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  stringData?: Record<string, string>;
};
interface CookieSource {
  value?: string;
  secretRef?: { name: string; key: string };
}

const examplesDir = join(repoRoot, 'examples');
const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) =>
    statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : [join(dir, f)],
  );

/** Each Pseudowire with an explicit MTU in a manifest, with the most a 1500-byte underlay carries. */
export function explicitMtus(text: string): { name: string; mtu: number; most: number }[] {
  const objs = YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
  const secret = (ref: { name: string; key: string }) =>
    objs.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name)?.stringData?.[ref.key];
  const hex = (c: CookieSource | undefined) =>
    (c?.value ?? (c?.secretRef ? secret(c.secretRef) : undefined))?.trim();
  return objs
    .filter((o) => o.kind === 'Pseudowire' && typeof o.spec?.mtu === 'number')
    .map((pw) => {
      const spec = pw.spec as {
        tunnelRef: { name: string };
        mtu: number;
        l2SpecificSublayer?: string;
        cookie?: CookieSource;
      };
      const tunnel = objs.find((o) => o.kind === 'L2TPTunnel' && o.metadata.name === spec.tunnelRef.name);
      assert.ok(tunnel, `${pw.metadata.name}: its tunnel is in the same file`);
      const t = tunnel.spec as { encapsulation?: string; local: { address?: string } };
      const cookie = hex(spec.cookie);
      const most = sessionMtu({
        encap: t.encapsulation === 'IP' ? 'ip' : 'udp',
        ipv6: (t.local.address ?? '').includes(':'),
        cookieLength: cookie === undefined ? 0 : cookie.length === 8 ? 4 : 8,
        l2specType: spec.l2SpecificSublayer === 'None' ? 'none' : 'default',
      });
      return { name: pw.metadata.name, mtu: spec.mtu, most };
    });
}

describe('example MTUs', () => {
  it('every explicit Pseudowire MTU in examples/ fits a 1500-byte underlay', () => {
    const files = walk(examplesDir).filter((f) => /\.ya?ml$/.test(f) && !f.endsWith('-static.yaml'));
    const found = files.flatMap((f) =>
      explicitMtus(readRepo(relative(repoRoot, f))).map((m) => ({ ...m, f })),
    );
    assert.ok(found.length >= 2, JSON.stringify(found));
    for (const m of found)
      assert.ok(m.mtu <= m.most, `${relative(repoRoot, m.f)}: ${m.name} mtu ${m.mtu} > ${m.most}`);
  });

  it('the Linux peer (static mode and ip l2tp) is not refused for its MTU', async () => {
    const cfg = parseStaticConfig(readRepo('examples/linux-peer-static.yaml'));
    const plan = await makePlan(cfg, {
      underlayMtu: () => Promise.resolve(1500),
      interfaceNames: () => Promise.resolve(new Set<string>()),
      ownedSessions: () => Promise.resolve([]),
    });
    const sessions = plan.desired.tunnels.flatMap((t) => t.sessions);
    assert.equal(sessions.length, 1);
    const s = sessions[0]!;
    assert.equal(s.refused, undefined);
    const sh = /ip link set \S+ mtu (\d+)/.exec(readRepo('examples/linux-peer.sh'));
    assert.equal(Number(sh?.[1]), s.mtu, 'linux-peer.sh sets the same MTU');
  });

  it('catches an MTU that does not fit', () => {
    const text = readRepo('examples/linux-peer.yaml').replace(/^ {2}mtu: \d+$/m, '  mtu: 1446');
    const [m] = explicitMtus(text);
    assert.deepEqual(m, { name: 'host-wire', mtu: 1446, most: 1442 });
  });
});
