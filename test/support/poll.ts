/**
 * Deadline polling for tests: retry `fn` until it returns a value other than undefined/false,
 * instead of sleeping a fixed time and hoping the system caught up.
 */
export interface PollOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Shown in the timeout error, e.g. 'queue to drain'. */
  description?: string;
}

export async function pollUntil<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 10_000, intervalMs = 100, description }: PollOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      // A throwing probe counts as "not yet", but its last error is reported on timeout.
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = description ? ` waiting for ${description}` : '';
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`pollUntil timed out after ${timeoutMs} ms${what}${cause}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
}
