import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pseudowireSpecSchema, type Pseudowire } from '../../lib/api/schemas.js';
import { ApiError } from '../../lib/kube/client.js';
import { CookieResolver, secretKeysOf } from './secrets.js';

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
      const name = path.split('?')[0]!.split('/').pop()!;
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
    for (const m of misses)
      assert.match((m as { error: string }).error, /Secret late, key cookie cannot be used/);
    assert.equal(a.gets.length, 1, 'one GET for twenty pseudowires naming a missing Secret');
    secrets.late = '0102030405060708';
    t += 1000;
    assert.ok('error' in (await r.of(pw('p0', 'late'))), 'still the cached miss');
    assert.equal(a.gets.length, 1);
    t += 10_000;
    assert.deepEqual(await r.of(pw('p0', 'late')), { cookie: '0102030405060708' });
    assert.equal(a.gets.length, 2);
  });

  it('says when a Secret is read again: a miss in a row waits twice as long, up to a found one', async () => {
    const a = api({ there: '0a0b0c0d' });
    let t = 0;
    const r = new CookieResolver(a, () => t, 60_000);
    assert.equal(r.staleInMs('team/there'), 0, 'not read yet');
    await r.of(pw('p', 'there'));
    t += 15_000;
    assert.equal(r.staleInMs('team/there'), 45_000);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      await r.refresh('team/gone');
      waits.push(r.staleInMs('team/gone'));
      t += waits.at(-1)!;
    }
    assert.deepEqual(waits, [5000, 10_000, 20_000, 40_000, 60_000, 60_000]);
    assert.equal(a.gets.filter((g) => g.includes('/gone?')).length, 6, 'read once each time it went stale');
    assert.deepEqual(secretKeysOf(pw('p', 'there')), ['team/there']);
    const none = { metadata: { name: 'x', namespace: 'team' }, spec: { tunnelRef: { name: 't' } } };
    assert.deepEqual(secretKeysOf(none as unknown as Pseudowire), [], 'no Secret named');
  });

  it('a Secret read again says whether it changed: found, rotated, gone; not when it stayed the same', async () => {
    const secrets: Record<string, string> = {};
    const a = api(secrets);
    let t = 0;
    const changed: string[] = [];
    const r = new CookieResolver(
      a,
      () => t,
      60_000,
      (ns, name) => changed.push(`${ns}/${name}`),
    );
    const step = async (set?: string) => {
      if (set === undefined) delete secrets.s;
      else secrets.s = set;
      t += 60_000;
      await r.refresh('team/s');
      return changed.splice(0).length;
    };
    assert.equal(await step(), 0, 'the first read (a miss) is no change');
    assert.equal(await step('0a0b0c0d'), 1, 'found');
    assert.equal(await step('0a0b0c0d'), 0, 'the same');
    assert.equal(await step('01020304'), 1, 'rotated');
    assert.equal(await step(), 1, 'gone');
    assert.equal(await step(), 0, 'still gone');
    r.forget('team/s');
    assert.equal(r.staleInMs('team/s'), 0);
  });
});

const pwRef = (name: string, key = 'cookie'): Pseudowire => ({
  apiVersion: 'l2tp.kube-l2tp.io/v1alpha1',
  kind: 'Pseudowire',
  metadata: { name: 'w', namespace: 'team' },
  spec: pseudowireSpecSchema.parse({ tunnelRef: { name: 't' }, cookie: { secretRef: { name, key } } }),
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const stored: Record<string, Error | { data: Record<string, string> }> = {
  '/api/v1/namespaces/team/secrets/good?resourceVersion=0': { data: { cookie: b64('0a0b0c0d') } },
  '/api/v1/namespaces/team/secrets/bad-value?resourceVersion=0': { data: { cookie: b64('not a cookie') } },
  '/api/v1/namespaces/team/secrets/other-key?resourceVersion=0': { data: { password: b64('hunter2') } },
  '/api/v1/namespaces/team/secrets/forbidden?resourceVersion=0': new ApiError(403, 'Forbidden', 'forbidden'),
};
const paths: string[] = [];
const client = {
  get<T>(path: string): Promise<T> {
    paths.push(path);
    const s = stored[path] ?? new ApiError(404, 'NotFound', 'not found');
    return s instanceof Error ? Promise.reject(s) : Promise.resolve(s as T);
  },
};

describe('CookieResolver: what a Pseudowire learns about Secrets', () => {
  it('resolves a good reference', async () => {
    assert.deepEqual(await new CookieResolver(client).of(pwRef('good')), { cookie: '0a0b0c0d' });
  });

  it('says the same thing whatever is wrong; the reason goes to the log only', async () => {
    const results = await Promise.all(
      ['missing', 'bad-value', 'other-key', 'forbidden'].map((n) => new CookieResolver(client).of(pwRef(n))),
    );
    const messages = results.map((r) => ('error' in r ? r.error.replace(/Secret \S+,/, 'Secret X,') : ''));
    assert.equal(new Set(messages).size, 1, messages.join('\n'));
    assert.equal(
      messages[0],
      'spec.cookie.secretRef: Secret X, key cookie cannot be used: it must be a Secret of namespace team that the operator can read, holding the cookie as 8 or 16 hex digits under that key',
    );
    const details = results.map((r) => ('detail' in r ? r.detail : ''));
    assert.equal(new Set(details).size, 4, 'the log tells them apart');
    assert.ok(!messages[0]!.includes('hunter2') && !details.join().includes('hunter2'), 'no value echoed');
  });

  it('escapes the name into the path, and the schema takes only Secret names and keys', async () => {
    paths.length = 0;
    const odd = {
      ...pwRef('good'),
      spec: { ...pwRef('good').spec, cookie: { secretRef: { name: 'a/../b', key: 'cookie' } } },
    };
    await new CookieResolver(client).of(odd);
    assert.deepEqual(paths, ['/api/v1/namespaces/team/secrets/a%2F..%2Fb?resourceVersion=0']);
    for (const name of ['../x', 'a/b', 'UPPER', 'a?b', '']) {
      const r = pseudowireSpecSchema.safeParse({ tunnelRef: { name: 't' }, cookie: { secretRef: { name } } });
      assert.equal(r.success, false, name);
    }
    const key = pseudowireSpecSchema.safeParse({
      tunnelRef: { name: 't' },
      cookie: { secretRef: { name: 's', key: 'a/b' } },
    });
    assert.equal(key.success, false);
  });
});
