import * as z from 'zod';

/** The intervals candlekeep stores, with their length in milliseconds. */
export const INTERVAL_MS = {
  '1m': 60_000,
  '3m': 180_000,
  '5m': 300_000,
  '15m': 900_000,
  '30m': 1_800_000,
  '1h': 3_600_000,
  '2h': 7_200_000,
  '4h': 14_400_000,
  '6h': 21_600_000,
  '12h': 43_200_000,
  '1d': 86_400_000,
  '1w': 604_800_000,
} as const;

export type Interval = keyof typeof INTERVAL_MS;
export const INTERVALS = Object.keys(INTERVAL_MS) as Interval[];
export const intervalSchema = z.enum(INTERVALS as [Interval, ...Interval[]], {
  error: (issue) => `unknown interval ${JSON.stringify(issue.input)}; expected one of ${INTERVALS.join(' ')}`,
});

// Unix epoch (1970-01-01) was a Thursday; weekly candles on every exchange open on Monday 00:00 UTC.
const WEEK_OFFSET_MS = 4 * INTERVAL_MS['1d'];

/** True when `openTime` (ms) is the start of a bucket of `interval`. */
export function isAligned(openTime: number, interval: Interval): boolean {
  const step = INTERVAL_MS[interval];
  const offset = interval === '1w' ? WEEK_OFFSET_MS : 0;
  return (openTime - offset) % step === 0;
}

/** The open time of the bucket of `interval` that contains `time` (ms). */
export function bucketStart(time: number, interval: Interval): number {
  const step = INTERVAL_MS[interval];
  const offset = interval === '1w' ? WEEK_OFFSET_MS : 0;
  return Math.floor((time - offset) / step) * step + offset;
}

/**
 * The stored interval to read `interval` from: itself when stored, else the coarsest stored one that
 * divides it, so every bucket is built from whole source candles and from as few of them as
 * possible; undefined when none does.
 */
export function sourceInterval(interval: Interval, stored: readonly Interval[]): Interval | undefined {
  if (stored.includes(interval)) return interval;
  const step = INTERVAL_MS[interval];
  return stored
    .filter((s) => INTERVAL_MS[s] < step && step % INTERVAL_MS[s] === 0)
    .sort((a, b) => INTERVAL_MS[b] - INTERVAL_MS[a])[0];
}
