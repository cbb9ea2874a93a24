import * as z from 'zod';
import { intervalSchema, INTERVALS, type Interval } from '../candles/intervals.ts';

/**
 * How often the pull runs for each interval. A pull fetches from the watermark to now, so running
 * more often than a bucket closes only refreshes the forming candle; less often only delays it.
 * Short intervals run every minute, hours every 5 minutes, days and weeks every 15.
 */
export const PULL_EVERY_MINUTES: Readonly<Record<Interval, number>> = {
  '1m': 1, '3m': 1, '5m': 1, '15m': 5, '30m': 5, '1h': 5, '2h': 5, '4h': 5, '6h': 15, '12h': 15, '1d': 15, '1w': 15,
};

export interface PullGroup {
  /** `every-1-minute`, `every-5-minutes`, ...: names the schedule. */
  name: string;
  minutes: number;
  /** The followed intervals this schedule pulls (its input). */
  intervals: Interval[];
}

/** One schedule per cadence, each covering its intervals (markets are followed at runtime, at any interval). */
export function pullGroups(): PullGroup[] {
  const byMinutes = new Map<number, Interval[]>();
  for (const interval of INTERVALS) {
    const minutes = PULL_EVERY_MINUTES[interval];
    byMinutes.set(minutes, [...(byMinutes.get(minutes) ?? []), interval]);
  }
  return [...byMinutes.entries()]
    .sort(([a], [b]) => a - b)
    .map(([minutes, intervals]) => ({ name: `every-${minutes}-minute${minutes === 1 ? '' : 's'}`, minutes, intervals }));
}

/** What a pull schedule sends the pull Lambda. */
export const pullEventSchema = z.object({ intervals: z.array(intervalSchema).min(1) });
export type PullEvent = z.infer<typeof pullEventSchema>;
