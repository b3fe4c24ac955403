// The work queue's promises: one entry per key, never two runs of one key at once (an add during a
// run re-runs it after), failures back off and then succeed, requeueAfter (the earliest delay wins) and stop.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkQueue } from './queue.js';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
/** Waits for a condition (the queue's timers are unref'd and the machine may be busy). */
async function until(ok: () => boolean, ms = 5000) {
  for (const end = Date.now() + ms; !ok() && Date.now() < end;) await tick(5);
}

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.depth, 2);
    const seen: string[] = [];
    const run = q.run(
      1,
      async (k) => void seen.push(k),
      () => {},
    );
    await tick(10);
    q.stop();
    await run;
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('never runs one key twice at once; an add during a run runs it again afterwards', async () => {
    const q = new WorkQueue();
    let active = 0;
    let most = 0;
    let runs = 0;
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    const run = q.run(
      4,
      async () => {
        active++;
        most = Math.max(most, active);
        runs++;
        if (runs === 1) await first;
        active--;
      },
      () => {},
    );
    q.add('k');
    await tick(5);
    q.add('k');
    q.add('k');
    await tick(5);
    assert.equal(runs, 1, 'the second add waits for the first run');
    release();
    await until(() => runs >= 2);
    await tick(10);
    q.stop();
    await run;
    assert.equal(most, 1);
    assert.equal(runs, 2, 'adds during a run coalesce into one more run');
  });

  it('a failure is reported and retried with backoff until it succeeds', async () => {
    const q = new WorkQueue(5, 50);
    const errors: string[] = [];
    let calls = 0;
    const run = q.run(
      1,
      async (k) => {
        calls++;
        if (calls < 3) throw new Error(`fail ${calls}`);
        assert.equal(k, 'x');
      },
      (k, e) => errors.push(`${k}: ${(e as Error).message}`),
    );
    q.add('x');
    await until(() => calls >= 3);
    q.stop();
    await run;
    assert.deepEqual(errors, ['x: fail 1', 'x: fail 2']);
    assert.equal(calls, 3);
  });

  /** One worker whose reconcile counts its calls and answers `result(calls)`. */
  function counting(result: (calls: number) => { requeueAfterMs: number } | undefined = () => undefined) {
    const q = new WorkQueue();
    const c = { q, calls: 0, run: Promise.resolve() };
    c.run = q.run(
      1,
      async () => result(++c.calls),
      () => {},
    );
    return c;
  }

  it('requeueAfterMs brings the key back; stop ends the workers and drops timers', async () => {
    const c = counting((calls) => (calls === 1 ? { requeueAfterMs: 10 } : undefined));
    const { q, run } = c;
    q.add('r');
    await until(() => c.calls >= 2);
    assert.equal(c.calls, 2);
    q.addAfter('r', 60_000);
    q.stop();
    await run;
    q.add('r');
    assert.equal(q.depth, 0, 'nothing is queued after stop');
  });

  it('of two delays pending for one key the earlier wins: a long wait never hides a short one', async () => {
    // an object waiting a minute (a held status) and then deleted asks for 10 ms: the 10 ms count
    const c = counting();
    const { q, run } = c;
    q.addAfter('k', 60_000);
    q.addAfter('k', 10);
    await until(() => c.calls >= 1, 2000);
    assert.equal(c.calls, 1, 'the 10 ms delay ran the key');
    // a later delay asked for after an earlier one changes nothing
    q.addAfter('k', 10);
    q.addAfter('k', 60_000);
    await until(() => c.calls >= 2, 2000);
    assert.equal(c.calls, 2);
    q.stop();
    await run;
  });
});
