import type { SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { loadCoverage } from '../store/coverage.ts';
import type { Queryable } from '../store/db.ts';
import { loadDeadLetteredRanges } from '../store/dead-letters.ts';
import { earliestKnownTime, scanStoredSpan } from '../store/gaps.ts';
import { seriesExpiry } from '../store/retention.ts';
import { findSeriesId } from '../store/series.ts';
import type { BackfillRequest } from './backfill-request.ts';
import { bucketAtOrAfter, bucketsIn, intersectRanges, mergeRanges, subtractRanges, type Range } from './ranges.ts';

/**
 * A run of buckets without a stored candle. `missing`: nobody asked the exchange for it yet (a
 * backfill can fill it); `empty`: the coverage ledger shows the exchange was asked and had nothing
 * (a quiet market, or before its listing), so a backfill would find nothing either;
 * `dead-lettered`: messages with candles for it wait in the dead-letter queue, so `candlekeep
 * redrive` (after fixing what made the writer fail) fills it, not a backfill; `expired`: before the
 * series' retention horizon, deleted (or due to be) by the retention job on purpose, so a backfill
 * would only fetch what the next run deletes.
 */
export interface Hole extends Range {
  kind: 'missing' | 'empty' | 'dead-lettered' | 'expired';
  /** Buckets in the hole. */
  candles: number;
  /** For `dead-lettered`: the dead-lettered messages whose span overlaps the hole. */
  messages?: number;
}

/** What the user does about a hole of this kind. */
export const HOLE_FIX: Record<Hole['kind'], string> = {
  missing: 'backfill',
  empty: 'none: the exchange has no candles there',
  'dead-lettered': 'candlekeep redrive (candles wait in the dead-letter queue)',
  expired: 'none: expired by retention (candlekeep markets set --retention keeps more)',
};

export interface GapReport {
  series: SeriesKey;
  /** The range examined, [start, end): by default from the first stored or recorded bucket to the forming one. */
  range: Range;
  /** Stored candles in the range. */
  stored: number;
  holes: Hole[];
  missingCandles: number;
  emptyCandles: number;
  deadLetteredCandles: number;
  /** Buckets before the retention horizon without a stored candle. */
  expiredCandles: number;
  /** The series' retention in days, null for forever (or not followed). */
  retentionDays: number | null;
  /** Candles before this open time are expired by retention; null when none are. */
  expiredBefore: number | null;
}

export class UnknownSeriesError extends Error {
  override name = 'UnknownSeriesError';
}

/**
 * Lists the holes of a series over a range: the runs between consecutive stored candles, plus the
 * holes at the range's edges; the coverage ledger then splits each hole into its missing and
 * confirmed-empty parts.
 */
export async function findGaps(db: Queryable, series: SeriesKey, opts: { from?: number; to?: number; now: number }): Promise<GapReport> {
  const seriesId = await findSeriesId(db, series);
  if (seriesId === undefined) {
    throw new UnknownSeriesError(`no stored series ${series.exchange} ${series.symbol} ${series.interval}; pull or backfill it first`);
  }
  const step = INTERVAL_MS[series.interval];
  const forming = bucketStart(opts.now, series.interval);
  const end = Math.min(opts.to === undefined ? forming : bucketAtOrAfter(opts.to, series.interval), forming);
  const expiry = await seriesExpiry(db, seriesId, series.interval, opts.now);
  let start = opts.from === undefined ? undefined : bucketAtOrAfter(opts.from, series.interval);
  if (start === undefined) {
    // From the oldest candle ever known: one the retention job deleted counts, so its range reads as expired.
    const earliest = [await earliestKnownTime(db, seriesId), expiry.firstExpired].filter((t) => t !== undefined);
    start = earliest.length === 0 ? end : bucketAtOrAfter(Math.min(...earliest), series.interval);
  }
  const range = { start, end: Math.max(start, end) };
  const retention = { retentionDays: expiry.retentionDays, expiredBefore: expiry.horizon ?? null };
  if (range.end <= range.start) {
    return { series, range, stored: 0, holes: [], missingCandles: 0, emptyCandles: 0, deadLetteredCandles: 0, expiredCandles: 0, ...retention };
  }

  const { stored, first, last, jumps } = await scanStoredSpan(db, seriesId, range, step);
  const raw: Range[] = [];
  if (first === undefined || last === undefined) {
    raw.push(range);
  } else {
    if (first > range.start) raw.push({ start: range.start, end: first });
    for (const j of jumps) raw.push({ start: j.start + step, end: j.end });
    if (last + step < range.end) raw.push({ start: last + step, end: range.end });
  }

  const [coverage, deadLettered] = await Promise.all([loadCoverage(db, seriesId, range), loadDeadLetteredRanges(db, seriesId, range)]);
  const holes = classifyHoles(mergeRanges(raw), coverage, deadLettered, series.interval, expiry.horizon);
  const total = (kind: Hole['kind']) => holes.filter((h) => h.kind === kind).reduce((n, h) => n + h.candles, 0);
  return {
    series,
    range,
    stored,
    holes,
    missingCandles: total('missing'),
    emptyCandles: total('empty'),
    deadLetteredCandles: total('dead-lettered'),
    expiredCandles: total('expired'),
    ...retention,
  };
}

/**
 * Splits each hole by what explains it. Before the retention horizon (`expiredBefore`) a hole is
 * expired, whatever else is known of it: its candles are not to be kept. A dead-lettered span wins
 * over the coverage ledger: the message carried candles for it, so whatever the ledger says, the
 * exchange had them.
 */
export function classifyHoles(
  holes: readonly Range[],
  coverage: readonly Range[],
  deadLettered: readonly Range[],
  interval: Interval,
  expiredBefore?: number,
): Hole[] {
  const out: Hole[] = [];
  const expired: Range[] = expiredBefore === undefined ? [] : [{ start: -8.64e15, end: expiredBefore }];
  for (const whole of holes) {
    const parts: Hole[] = intersectRanges(whole, expired).map((r) => ({ ...r, kind: 'expired' as const, candles: 0 }));
    for (const hole of subtractRanges(whole, expired)) {
      parts.push(
        ...intersectRanges(hole, deadLettered).map((r) => ({
          ...r,
          kind: 'dead-lettered' as const,
          candles: 0,
          messages: deadLettered.filter((d) => d.start < r.end && d.end > r.start).length,
        })),
      );
      for (const rest of subtractRanges(hole, deadLettered)) {
        parts.push(
          ...intersectRanges(rest, coverage).map((r) => ({ ...r, kind: 'empty' as const, candles: 0 })),
          ...subtractRanges(rest, coverage).map((r) => ({ ...r, kind: 'missing' as const, candles: 0 })),
        );
      }
    }
    for (const p of parts) p.candles = bucketsIn(p, interval);
    out.push(...parts.sort((a, b) => a.start - b.start));
  }
  return out;
}

/**
 * Backfill requests for the missing holes (confirmed-empty ones would fetch nothing, dead-lettered
 * ones are filled by a redrive, expired ones would be deleted again by the next retention run).
 * Holes closer than `joinWithin` are asked for together: a request per tiny hole would cost more in
 * planning and probes than the few candles between them.
 */
export function backfillRequestsForGaps(report: GapReport, opts: { joinWithin?: number; requestedBy?: string } = {}): BackfillRequest[] {
  const joinWithin = opts.joinWithin ?? 1000 * INTERVAL_MS[report.series.interval];
  const out: BackfillRequest[] = [];
  for (const h of report.holes) {
    if (h.kind !== 'missing') continue;
    const last = out.at(-1);
    if (last && h.start - last.to <= joinWithin) last.to = h.end;
    else out.push({ ...report.series, from: h.start, to: h.end, requestedBy: opts.requestedBy ?? 'gaps' });
  }
  return out;
}
