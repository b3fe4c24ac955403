// Polling for a condition in tests: level-triggered like the code under test.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * What p gives, or 'timeout' when it has not settled within ms. The timer goes as soon as p settles:
 * a pending timer would keep the test's process alive after its work is done.
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Calls fn until it returns something other than undefined or false, and returns that. Errors
 * thrown by fn count as "not yet"; the last one is quoted when the time runs out.
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}
