import type { SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS } from '../candles/intervals.ts';
import type { Queryable } from '../store/db.ts';
import { findSeriesId } from '../store/series.ts';
import type { BackfillRequest } from './backfill-request.ts';
import { loadCoverage } from './coverage.ts';
import { bucketAtOrAfter, bucketsIn, intersectRanges, mergeRanges, subtractRanges, type Range } from './ranges.ts';
import { ms, ts } from '../store/sql.ts';

/**
 * A run of buckets without a stored candle. `missing`: nobody asked the exchange for it yet (a
 * backfill can fill it); `empty`: the coverage ledger shows the exchange was asked and had nothing
 * (a quiet market, or before its listing), so a backfill would find nothing either.
 */
export interface Hole extends Range {
  kind: 'missing' | 'empty';
  candles: number;
}

export interface GapReport {
  series: SeriesKey;
  /** The range examined, [start, end): by default from the first stored or recorded bucket to the forming one. */
  range: Range;
  /** Stored candles in the range. */
  stored: number;
  holes: Hole[];
  missingCandles: number;
  emptyCandles: number;
}

export class UnknownSeriesError extends Error {
  override name = 'UnknownSeriesError';
}

/**
 * Lists the holes of a series over a range. One statement finds every run between consecutive
 * stored candles with `lag(open_time)` over the primary key's index (no round trip per row), plus
 * the first and last stored candle for the holes at the range's edges; the coverage ledger then
 * splits each hole into its missing and confirmed-empty parts.
 */
export async function findGaps(db: Queryable, series: SeriesKey, opts: { from?: number; to?: number; now: number }): Promise<GapReport> {
  const seriesId = await findSeriesId(db, series);
  if (seriesId === undefined) {
    throw new UnknownSeriesError(`no stored series ${series.exchange} ${series.symbol} ${series.interval}; pull or backfill it first`);
  }
  const step = INTERVAL_MS[series.interval];
  const forming = bucketStart(opts.now, series.interval);
  const end = Math.min(opts.to === undefined ? forming : bucketAtOrAfter(opts.to, series.interval), forming);
  let start = opts.from === undefined ? undefined : bucketAtOrAfter(opts.from, series.interval);
  if (start === undefined) {
    const { rows } = await db.query<{ t: number | null }>(
      `SELECT least((SELECT ${ms('min(open_time)')} FROM candles WHERE series_id = $1),
                    (SELECT ${ms('min(range_start)')} FROM coverage WHERE series_id = $1)) AS t`,
      [seriesId],
    );
    start = rows[0]?.t === null || rows[0]?.t === undefined ? end : bucketAtOrAfter(Number(rows[0].t), series.interval);
  }
  const range = { start, end: Math.max(start, end) };
  if (range.end <= range.start) return { series, range, stored: 0, holes: [], missingCandles: 0, emptyCandles: 0 };

  const { rows } = await db.query<{ kind: 'gap' | 'bounds'; a: number | null; b: number | null; n: string }>(
    `WITH c AS (
       SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev
       FROM candles WHERE series_id = $1 AND open_time >= ${ts('$2')} AND open_time < ${ts('$3')}
     )
     SELECT 'gap' AS kind, ${ms('prev')} AS a, ${ms('open_time')} AS b, 0::bigint AS n
     FROM c WHERE open_time - prev > $4 * interval '1 millisecond'
     UNION ALL
     SELECT 'bounds', ${ms('min(open_time)')}, ${ms('max(open_time)')}, count(*) FROM c`,
    [seriesId, range.start, range.end, step],
  );
  const bounds = rows.find((r) => r.kind === 'bounds');
  const stored = Number(bounds?.n ?? 0);
  const raw: Range[] = [];
  if (stored === 0 || bounds?.a === null || bounds?.a === undefined || bounds.b === null) {
    raw.push(range);
  } else {
    const first = Number(bounds.a);
    const last = Number(bounds.b);
    if (first > range.start) raw.push({ start: range.start, end: first });
    for (const r of rows) if (r.kind === 'gap') raw.push({ start: Number(r.a) + step, end: Number(r.b) });
    if (last + step < range.end) raw.push({ start: last + step, end: range.end });
  }

  const coverage = await loadCoverage(db, seriesId, range);
  const holes: Hole[] = [];
  for (const hole of mergeRanges(raw)) {
    const parts: Hole[] = [
      ...intersectRanges(hole, coverage).map((r) => ({ ...r, kind: 'empty' as const, candles: 0 })),
      ...subtractRanges(hole, coverage).map((r) => ({ ...r, kind: 'missing' as const, candles: 0 })),
    ];
    for (const p of parts) p.candles = bucketsIn(p, series.interval);
    holes.push(...parts.sort((a, b) => a.start - b.start));
  }
  return {
    series,
    range,
    stored,
    holes,
    missingCandles: holes.filter((h) => h.kind === 'missing').reduce((n, h) => n + h.candles, 0),
    emptyCandles: holes.filter((h) => h.kind === 'empty').reduce((n, h) => n + h.candles, 0),
  };
}

/**
 * Backfill requests for the missing holes (confirmed-empty ones would fetch nothing). Holes closer
 * than `joinWithin` are asked for together: a request per tiny hole would cost more in planning and
 * probes than the few candles between them.
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
