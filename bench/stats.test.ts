import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, medianInterval, ratioGoal, ratioGoalDetail } from './stats.js';

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });
});

describe('medianInterval', () => {
  it('9 values at 90%: the 2nd smallest to the 2nd largest, coverage 1 - 2 * 10/512', () => {
    const i = medianInterval([9, 1, 8, 2, 7, 3, 6, 4, 5]);
    assert.deepEqual({ low: i.low, high: i.high }, { low: 2, high: 8 });
    assert.equal(i.coverage, 1 - (2 * 10) / 512);
  });
  it('5 values reach 90% only with the whole range (93.75%)', () => {
    assert.deepEqual(medianInterval([5, 4, 3, 2, 1]), { low: 1, high: 5, coverage: 1 - 2 / 32 });
  });
  it('too few values for the level: the whole range and its coverage (3 values: 75%)', () => {
    assert.deepEqual(medianInterval([1.1, 0.9, 1.0]), { low: 0.9, high: 1.1, coverage: 0.75 });
    assert.deepEqual(medianInterval([1.2]), { low: 1.2, high: 1.2, coverage: 0 });
  });
  it('more values narrow the interval (20 values at 90%: the 6th to the 15th)', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    const i = medianInterval(xs);
    assert.deepEqual({ low: i.low, high: i.high }, { low: 6, high: 15 });
    assert.ok(i.coverage >= 0.9 && i.coverage < 0.97, String(i.coverage));
  });
});

describe('ratioGoal', () => {
  it('met when every ratio inside the interval is at least 1', () => {
    const g = ratioGoal([1.14, 1.12, 0.92, 1.14, 1.13, 1.29, 1.17, 1.05, 1.05]);
    assert.equal(g.verdict, 'met');
    assert.equal(g.low, 1.05);
    assert.equal(g.ahead, 8);
    assert.equal(g.median, 1.13);
  });
  it('not settled when the interval holds 1', () => {
    const g = ratioGoal([1.33, 0.95, 1.0, 0.88, 0.99, 0.99, 1.23, 0.77, 1.03]);
    assert.equal(g.verdict, 'not settled');
    assert.equal(g.ahead, 4);
  });
  it('NOT met when the whole interval is below 1', () => {
    assert.equal(ratioGoal([0.9, 0.8, 0.95, 1.02, 0.85]).verdict, 'not settled');
    assert.equal(ratioGoal([0.9, 0.8, 0.95, 0.97, 0.85]).verdict, 'NOT met');
  });
  it('prints the verdict, the median, the rounds ahead and the interval', () => {
    assert.equal(
      ratioGoalDetail(ratioGoal([1.1, 0.9, 1.2, 1.05, 1.3])),
      "not settled (median of the rounds' ratios 1.10x; 4 of 5 round(s) at least 1.0x; 94% interval 0.90x to 1.30x)",
    );
  });
  it('a verdict from fewer rounds than the level needs says so', () => {
    const g = ratioGoal([1.1, 1.05, 1.2]);
    assert.equal(g.enough, false);
    assert.equal(
      ratioGoalDetail(g),
      "met, by too few rounds to be sure (median of the rounds' ratios 1.10x; 3 of 3 round(s) at least 1.0x; 75% interval 1.05x to 1.20x)",
    );
  });
});
