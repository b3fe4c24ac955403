// The informer against a scripted API: paged lists, watch events into the store, managedFields and
// kubectl's last applied configuration dropped, a reader's transform, 410 Gone answered by a fresh
// list that reports what changed meanwhile.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../log.js';
import type { KObject } from '../api/schemas.js';
import { ApiError, type KubeClient, type WatchEvent } from './client.js';
import { Informer, type EventType } from './informer.js';

type Obj = KObject & { spec?: { n: number } };
const obj = (name: string, rv: string, n = 0): Obj =>
  ({
    metadata: { name, resourceVersion: rv, managedFields: [{ manager: 'kubectl', fieldsV1: {} }] },
    spec: { n },
  }) as unknown as Obj;

/** A fake API: list pages from `lists` (one entry per list call), watches from `watches`. */
function fakeApi(
  lists: Obj[][][],
  watches: (WatchEvent<Obj>[] | ApiError)[],
): Pick<KubeClient, 'get' | 'watch'> & { paths: string[] } {
  const paths: string[] = [];
  let list = -1;
  return {
    paths,
    async get<T>(path: string): Promise<T> {
      paths.push(path);
      const page = Number(new URL(path, 'http://x').searchParams.get('continue') ?? 0);
      if (page === 0) list++;
      const pages = lists[list]!;
      const more = page + 1 < pages.length;
      return {
        metadata: { resourceVersion: `list${list}`, ...(more ? { continue: String(page + 1) } : {}) },
        items: structuredClone(pages[page]!),
      } as T;
    },
    async watch<T>(path: string, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal) {
      paths.push(path);
      const next = watches.shift();
      if (next instanceof ApiError) throw next;
      for (const e of next ?? []) onEvent(structuredClone(e) as WatchEvent<T>);
      // then stays open until stopped, as a server does until its timeout
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
    },
  };
}

const until = async (ok: () => boolean) => {
  for (const end = Date.now() + 3000; !ok() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), 'condition not reached');
};

describe('Informer', () => {
  it('lists page by page, then follows the watch; the store drops managedFields', async () => {
    const api = fakeApi(
      [[[obj('a', '1')], [obj('b', '2')]]],
      [
        [
          { type: 'MODIFIED', object: obj('a', '3', 7) },
          { type: 'DELETED', object: obj('b', '4') },
        ],
      ],
    );
    const inf = new Informer<Obj>(
      api,
      { path: '/x', apiVersion: 'v1', kind: 'Thing', pageSize: 1 },
      silentLogger(),
    );
    const seen: [EventType, string, number | undefined][] = [];
    inf.on((t, o) => seen.push([t, o.metadata.name, o.spec?.n]));
    inf.start();
    await inf.waitForSync();
    await until(() => seen.length === 4);
    await inf.stop();
    assert.deepEqual(seen, [
      ['ADDED', 'a', 0],
      ['ADDED', 'b', 0],
      ['MODIFIED', 'a', 7],
      ['DELETED', 'b', 0],
    ]);
    assert.deepEqual(
      inf.list().map((o) => [o.metadata.name, o.kind, o.apiVersion]),
      [['a', 'Thing', 'v1']],
    );
    assert.equal('managedFields' in inf.get('a')!.metadata, false);
    assert.match(api.paths[2]!, /watch=1&resourceVersion=list0&/);
  });

  it("keeps what the transform returns, without kubectl's last applied configuration", async () => {
    const applied = (name: string, rv: string, n: number): Obj => {
      const o = obj(name, rv, n);
      o.metadata.annotations = {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(o),
        keep: 'me',
      };
      return o;
    };
    const api = fakeApi([[[applied('a', '1', 1)]]], [[{ type: 'MODIFIED', object: applied('a', '2', 2) }]]);
    const inf = new Informer<Obj>(
      api,
      {
        path: '/x',
        apiVersion: 'v1',
        kind: 'Thing',
        transform: (o) => ({ ...o, spec: { n: (o as Obj).spec!.n * 10 } }),
      },
      silentLogger(),
    );
    const seen: [number | undefined, number | undefined][] = [];
    inf.on((_t, o, old) => seen.push([o.spec?.n, old?.spec?.n]));
    inf.start();
    await until(() => seen.length === 2);
    await inf.stop();
    assert.deepEqual(seen, [
      [10, undefined],
      [20, 10],
    ]);
    assert.deepEqual(inf.get('a')!.metadata.annotations, { keep: 'me' });
  });

  it('410 Gone: lists again and reports only what changed meanwhile', async () => {
    const api = fakeApi(
      [[[obj('a', '1'), obj('b', '2')]], [[obj('a', '1'), obj('c', '5')]]],
      [new ApiError(410, 'Expired', 'too old resource version'), []],
    );
    const inf = new Informer<Obj>(api, { path: '/x', apiVersion: 'v1', kind: 'Thing' }, silentLogger());
    const seen: string[] = [];
    inf.on((t, o) => seen.push(`${t} ${o.metadata.name}`));
    inf.start();
    await until(() => inf.relists === 2);
    await inf.stop();
    assert.deepEqual(seen, ['ADDED a', 'ADDED b', 'ADDED c', 'DELETED b']);
    assert.deepEqual(
      inf
        .list()
        .map((o) => o.metadata.name)
        .sort(),
      ['a', 'c'],
    );
  });
});
