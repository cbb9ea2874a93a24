import { mergeRanges, type Range } from '../ingest/ranges.ts';
import type { Queryable } from './db.ts';
import { bigintArray, ms, ts } from './sql.ts';

/**
 * Records that the exchange was asked for every bucket of `range` and answered with the candles
 * opening at `openTimes`: a bucket of the range without a stored candle is then one the exchange
 * confirmed empty. So it is called only where those candles are stored in the same transaction
 * (the writer, through `recordClaims`) or where there are none to store (the planner's "nothing
 * before the listing date"). A range that continues a recorded one (a live pull after the previous tick)
 * extends that row instead of adding one, so the ledger stays a few rows per series; its count
 * grows only by the candles past the old end, so re-fetched candles are not counted twice.
 */
export async function recordCoverage(db: Queryable, seriesId: number, range: Range, openTimes: readonly number[]): Promise<void> {
  if (range.end <= range.start) return;
  const inside = openTimes.filter((t) => t >= range.start && t < range.end);
  await db.query(
    `WITH hit AS (
       SELECT ctid, range_end FROM coverage
       WHERE series_id = $1 AND range_start <= ${ts('$2')} AND range_end >= ${ts('$2')} AND range_end < ${ts('$3')}
       ORDER BY range_end DESC LIMIT 1
       FOR UPDATE
     ), extended AS (
       UPDATE coverage c
       SET range_end = ${ts('$3')}, fetched_at = now(),
           candles = c.candles + (SELECT count(*) FROM unnest($4::bigint[]) t WHERE t >= ${ms('hit.range_end')})
       FROM hit WHERE c.ctid = hit.ctid
       RETURNING 1
     )
     INSERT INTO coverage (series_id, range_start, range_end, candles)
     SELECT $1, ${ts('$2')}, ${ts('$3')}, cardinality($4::bigint[])
     WHERE NOT EXISTS (SELECT 1 FROM extended)
       AND NOT EXISTS (SELECT 1 FROM coverage WHERE series_id = $1 AND range_start <= ${ts('$2')} AND range_end >= ${ts('$3')})`,
    [seriesId, range.start, range.end, bigintArray(inside)],
  );
}

/** Claims grouped by series, in series order, so two writers extending the same rows lock them in the same order. */
function claimsBySeries(claims: readonly CoverageClaim[]): [number, CoverageClaim[]][] {
  const bySeries = new Map<number, CoverageClaim[]>();
  for (const c of claims) {
    const own = bySeries.get(c.seriesId);
    if (own) own.push(c);
    else bySeries.set(c.seriesId, [c]);
  }
  return [...bySeries].sort(([a], [b]) => a - b);
}

/** A range a stored message accounts for, and the open times of the candles it carried. */
export interface CoverageClaim {
  seriesId: number;
  range: Range;
  openTimes: readonly number[];
}

/**
 * Records the ranges of the messages one write stored. Ranges of a series that touch or overlap
 * (the consecutive messages of one fetch) are joined first, so a batch costs one statement per
 * series, not one per message; a candle carried twice (a message delivered twice) counts once.
 */
export async function recordClaims(db: Queryable, claims: readonly CoverageClaim[]): Promise<void> {
  for (const [seriesId, own] of claimsBySeries(claims)) {
    const times = [...new Set(own.flatMap((c) => c.openTimes))];
    for (const range of mergeRanges(own.map((c) => c.range))) {
      await recordCoverage(db, seriesId, range, times);
    }
  }
}

/**
 * Whether every claimed range is already inside one recorded row of its series: then recording
 * the claims would change nothing. One statement for the whole batch.
 */
export async function claimsRecorded(db: Queryable, claims: readonly CoverageClaim[]): Promise<boolean> {
  const merged = claimsBySeries(claims).flatMap(([seriesId, own]) => mergeRanges(own.map((c) => c.range)).filter((r) => r.end > r.start).map((r) => ({ seriesId, ...r })));
  if (merged.length === 0) return true;
  const { rows } = await db.query<{ open: number }>(
    `SELECT count(*)::int AS open
     FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS c(series_id, s, e)
     WHERE NOT EXISTS (SELECT 1 FROM coverage v WHERE v.series_id = c.series_id
                         AND v.range_start <= ${ts('c.s')} AND v.range_end >= ${ts('c.e')})`,
    [bigintArray(merged.map((m) => m.seriesId)), bigintArray(merged.map((m) => m.start)), bigintArray(merged.map((m) => m.end))],
  );
  return rows[0]?.open === 0;
}

export interface CoverageRow extends Range {
  candles: number;
}

/** Recorded ranges of a series that overlap `within`, ascending. */
export function loadCoverage(db: Queryable, seriesId: number, within: Range): Promise<CoverageRow[]> {
  return rangesOverlapping(db, 'coverage', seriesId, within);
}

/** Rows of a per-series range ledger (coverage, dead letters) that overlap `within`, ascending. */
export async function rangesOverlapping(db: Queryable, ledger: 'coverage' | 'dead_letters', seriesId: number, within: Range): Promise<CoverageRow[]> {
  const { rows } = await db.query<{ s: number; e: number; candles: number }>(
    `SELECT ${ms('range_start')} AS s, ${ms('range_end')} AS e, candles FROM ${ledger}
     WHERE series_id = $1 AND range_start < ${ts('$3')} AND range_end > ${ts('$2')}
     ORDER BY range_start`,
    [seriesId, within.start, within.end],
  );
  return rows.map((r) => ({ start: Number(r.s), end: Number(r.e), candles: Number(r.candles) }));
}
