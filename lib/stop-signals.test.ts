import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { catchStopSignals } from './stop-signals.js';

describe('catchStopSignals', () => {
  it('resolves with the first of SIGTERM and SIGINT, and leaves a second one to Node', async () => {
    const proc = new EventEmitter();
    const stop = catchStopSignals(proc as unknown as NodeJS.Process);
    assert.equal(proc.listenerCount('SIGTERM'), 1);
    assert.equal(proc.listenerCount('SIGINT'), 1);
    proc.emit('SIGINT');
    proc.emit('SIGTERM');
    assert.equal(await stop, 'SIGINT');
    assert.equal(proc.listenerCount('SIGINT'), 0, 'a second SIGINT ends the process');
  });
});
