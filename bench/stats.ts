// Statistics the benches share: medians over rounds, and whether a same-run comparison is settled.
// A shared machine moves a figure by more than the difference under test, so a goal ("ours >= the
// baseline") is judged on the rounds' paired ratios with an interval for their median, not on one
// ratio of medians: a run whose rounds lean both ways says so instead of flipping the verdict.

/** The median of xs (the mean of the middle two for an even count; NaN for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** P(X <= k) for X ~ Binomial(n, 1/2). */
function binomialHalfCdf(n: number, k: number): number {
  let term = 1; // C(n, 0)
  let sum = 0;
  for (let i = 0; i <= k; i++) {
    sum += term;
    term = (term * (n - i)) / (i + 1);
  }
  return sum / 2 ** n;
}

export interface MedianInterval {
  low: number;
  high: number;
  /** The probability that [low, high] holds the true median (0 for one value). */
  coverage: number;
}

/**
 * A distribution-free interval for the median of the population xs was drawn from: the k-th smallest
 * and the k-th largest value, with the largest k whose coverage is at least `level` (each draw falls
 * below the median with probability 1/2, whatever the distribution). With too few values for the
 * level, the whole range, and its lower coverage (3 values: 75%; 5 reach 90%).
 */
export function medianInterval(xs: readonly number[], level = 0.9): MedianInterval {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { low: NaN, high: NaN, coverage: 0 };
  const coverage = (k: number) => 1 - 2 * binomialHalfCdf(n, k - 1);
  let k = 1;
  while (k + 1 <= (n + 1) / 2 && coverage(k + 1) >= level) k++;
  return { low: s[k - 1]!, high: s[n - k]!, coverage: Math.max(0, coverage(k)) };
}

export type Verdict = 'met' | 'NOT met' | 'not settled';

export interface RatioGoal extends MedianInterval {
  median: number;
  /** Rounds whose ratio is at least 1. */
  ahead: number;
  rounds: number;
  verdict: Verdict;
  /** Whether the interval reaches the level asked for (5 rounds reach 90%). */
  enough: boolean;
}

/**
 * The goal "ours >= baseline" judged on per-round ratios ours/baseline: met when the whole interval
 * of their median is at least 1, NOT met when it is below 1, not settled when it holds 1 (the two are
 * level within this run's noise).
 */
export function ratioGoal(ratios: readonly number[], level = 0.9): RatioGoal {
  const i = medianInterval(ratios, level);
  const verdict: Verdict = i.low >= 1 ? 'met' : i.high < 1 ? 'NOT met' : 'not settled';
  return {
    ...i,
    median: median(ratios),
    ahead: ratios.filter((r) => r >= 1).length,
    rounds: ratios.length,
    verdict,
    enough: i.coverage >= level,
  };
}

/** A ratio goal as a verdict and its detail: the median ratio, the rounds at 1.0x or more, the interval. */
export function ratioGoalDetail(g: RatioGoal): string {
  const x = (v: number) => `${v.toFixed(2)}x`;
  return (
    `${g.verdict}${g.enough ? '' : ', by too few rounds to be sure'} (median of the rounds' ratios ${x(g.median)}; ${g.ahead} of ${g.rounds} round(s) at least 1.0x; ` +
    `${(g.coverage * 100).toFixed(0)}% interval ${x(g.low)} to ${x(g.high)})`
  );
}
