import * as z from 'zod';
import { intervalSchema, type Interval } from '../candles/intervals.ts';

/**
 * When the pull runs for each interval: just after the interval's boundaries, as EventBridge
 * Scheduler cron expressions in UTC (minutes hours day-of-month month day-of-week year). Every
 * boundary of an interval is one of its group's firings; the pull then fetches only the series
 * whose boundary passed and whose closed candle is not stored yet (the due ones), so a 5m series
 * is fetched at :05, :10, ... although its group fires every minute.
 */
export const PULL_GROUPS: readonly PullGroup[] = [
  { name: 'every-minute', cron: 'cron(* * * * ? *)', intervals: ['1m', '3m', '5m'] },
  { name: 'every-15-minutes', cron: 'cron(0/15 * * * ? *)', intervals: ['15m', '30m'] },
  { name: 'hourly', cron: 'cron(0 * * * ? *)', intervals: ['1h', '2h', '4h', '6h', '12h'] },
  { name: 'daily', cron: 'cron(0 0 * * ? *)', intervals: ['1d', '1w'] },
];

export interface PullGroup {
  /** Names the schedule. */
  name: string;
  /** `cron(...)` in UTC, firing at the group's boundaries. */
  cron: string;
  /** The intervals this schedule pulls (its input). */
  intervals: Interval[];
}

/** One schedule per group, each covering its intervals (markets are followed at runtime, at any interval). */
export function pullGroups(): PullGroup[] {
  return PULL_GROUPS.map((g) => ({ ...g, intervals: [...g.intervals] }));
}

/** Wait after a boundary before fetching, so the exchange has closed the candle: 2 s unless configured. */
export const DEFAULT_PULL_DELAY_MS = 2_000;

/** Pull workers that may run at once (the pull-work queue's event source maximum concurrency). */
export const DEFAULT_PULL_WORKERS = 10;

const CRON_RE = /^cron\((\S+) (\S+) \* \* \? \*\)$/;

/** Minute or hour field of the crons above: `*`, `N` or `0/N`. */
function fieldMatches(field: string, value: number): boolean {
  if (field === '*') return true;
  const step = /^(\d+)\/(\d+)$/.exec(field);
  if (step) return value >= Number(step[1]) && (value - Number(step[1])) % Number(step[2]) === 0;
  return /^\d+$/.test(field) && Number(field) === value;
}

/**
 * The first firing of a cron above strictly after `after` (UTC ms), as EventBridge Scheduler fires
 * it at the start of the minute. Only minute and hour fields are supported: the pull's crons use no
 * others. Throws for any other expression.
 */
export function nextCronFire(expression: string, after: number): number {
  const m = CRON_RE.exec(expression.trim());
  if (!m) throw new Error(`schedule expression ${expression} is not a cron(M H * * ? *) the local scheduler can run`);
  const [, minutes, hours] = m as unknown as [string, string, string];
  let t = Math.floor(after / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 2 * 24 * 60; i++, t += 60_000) {
    const d = new Date(t);
    if (fieldMatches(minutes, d.getUTCMinutes()) && fieldMatches(hours, d.getUTCHours())) return t;
  }
  throw new Error(`schedule expression ${expression} never fires`);
}

/** What a pull schedule sends the pull Lambda. */
export const pullEventSchema = z.object({ intervals: z.array(intervalSchema).min(1) });
export type PullEvent = z.infer<typeof pullEventSchema>;
