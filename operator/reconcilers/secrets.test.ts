import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Pseudowire } from '../../lib/api/schemas.js';
import { ApiError } from '../../lib/kube/client.js';
import { CookieResolver } from './secrets.js';

const pw = (name: string, secret: string): Pseudowire =>
  ({
    metadata: { name, namespace: 'team' },
    spec: { tunnelRef: { name: 't' }, cookie: { secretRef: { name: secret, key: 'cookie' } } },
  }) as unknown as Pseudowire;

function api(secrets: Record<string, string>) {
  const gets: string[] = [];
  return {
    gets,
    async get<T>(path: string): Promise<T> {
      gets.push(path);
      await new Promise((r) => setTimeout(r, 5));
      const name = path.split('/').pop()!;
      const v = secrets[name];
      if (v === undefined) throw new ApiError(404, 'NotFound', `secrets "${name}" not found`);
      return { data: { cookie: Buffer.from(v).toString('base64') } } as T;
    },
  };
}

describe('CookieResolver', () => {
  it('reads a Secret once for every pseudowire that names it, concurrently or not', async () => {
    const a = api({ shared: '0xDEADBEEF' });
    const r = new CookieResolver(a);
    const out = await Promise.all(Array.from({ length: 50 }, (_, i) => r.of(pw(`p${i}`, 'shared'))));
    assert.ok(out.every((c) => 'cookie' in c && c.cookie === 'deadbeef'));
    assert.deepEqual(await r.of(pw('later', 'shared')), { cookie: 'deadbeef' });
    assert.equal(a.gets.length, 1);
  });

  it('caches a missing Secret briefly, then reads it again and finds it once created', async () => {
    const secrets: Record<string, string> = {};
    const a = api(secrets);
    let t = 0;
    const r = new CookieResolver(a, () => t);
    const misses = await Promise.all(Array.from({ length: 20 }, (_, i) => r.of(pw(`p${i}`, 'late'))));
    for (const m of misses) assert.match((m as { error: string }).error, /cookie Secret not found/);
    assert.equal(a.gets.length, 1, 'one GET for twenty pseudowires naming a missing Secret');
    secrets.late = '0102030405060708';
    t += 1000;
    assert.ok('error' in (await r.of(pw('p0', 'late'))), 'still the cached miss');
    assert.equal(a.gets.length, 1);
    t += 10_000;
    assert.deepEqual(await r.of(pw('p0', 'late')), { cookie: '0102030405060708' });
    assert.equal(a.gets.length, 2);
  });
});
