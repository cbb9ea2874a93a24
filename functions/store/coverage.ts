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
  await recordRanges(db, [{ seriesId, range, inside: openTimes.filter((t) => t >= range.start && t < range.end) }]);
}

/** A range one statement records: its series, bounds and the open times of the candles inside it. */
interface RangeClaim {
  seriesId: number;
  range: Range;
  inside: readonly number[];
}

/**
 * Records any number of claimed ranges in one statement, each as `recordCoverage` describes. The
 * ranges of one series must not touch (`mergeRanges` output): each then finds its own row to extend
 * or none. Rows are locked in the order of the input, which callers sort by series.
 */
async function recordRanges(db: Queryable, claims: readonly RangeClaim[]): Promise<void> {
  if (claims.length === 0) return;
  const k: number[] = [];
  const t: number[] = [];
  claims.forEach((c, i) => {
    for (const time of c.inside) {
      k.push(i + 1);
      t.push(time);
    }
  });
  await db.query(
    `WITH c AS (
       SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::int[]) WITH ORDINALITY AS c(series_id, s, e, n, k)
     ), hit AS (
       SELECT c.k, c.e, h.ctid, h.range_end
       FROM c CROSS JOIN LATERAL (
         SELECT ctid, range_end FROM coverage
         WHERE series_id = c.series_id AND range_start <= ${ts('c.s')} AND range_end >= ${ts('c.s')} AND range_end < ${ts('c.e')}
         ORDER BY range_end DESC LIMIT 1
         FOR UPDATE
       ) h
     ), past_end AS (
       -- Candles past the old end of the row a range extends: only those are new to its count.
       SELECT hit.k, count(t.t) AS n
       FROM hit LEFT JOIN unnest($5::int[], $6::bigint[]) AS t(k, t) ON t.k = hit.k AND t.t >= ${ms('hit.range_end')}
       GROUP BY hit.k
     ), extended AS (
       UPDATE coverage v
       SET range_end = ${ts('hit.e')}, fetched_at = now(), candles = v.candles + past_end.n
       FROM hit JOIN past_end USING (k)
       WHERE v.ctid = hit.ctid
       RETURNING hit.k
     )
     INSERT INTO coverage (series_id, range_start, range_end, candles)
     SELECT c.series_id, ${ts('c.s')}, ${ts('c.e')}, c.n FROM c
     WHERE NOT EXISTS (SELECT 1 FROM extended x WHERE x.k = c.k)
       AND NOT EXISTS (SELECT 1 FROM coverage v WHERE v.series_id = c.series_id AND v.range_start <= ${ts('c.s')} AND v.range_end >= ${ts('c.e')})`,
    [
      bigintArray(claims.map((c) => c.seriesId)),
      bigintArray(claims.map((c) => c.range.start)),
      bigintArray(claims.map((c) => c.range.end)),
      bigintArray(claims.map((c) => c.inside.length)),
      bigintArray(k),
      bigintArray(t),
    ],
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
 * (the consecutive messages of one fetch) are joined first, and all of them go in one statement,
 * however many series the batch holds; a candle carried twice (a message delivered twice) counts once.
 */
export async function recordClaims(db: Queryable, claims: readonly CoverageClaim[]): Promise<void> {
  const ranges: RangeClaim[] = [];
  for (const [seriesId, own] of claimsBySeries(claims)) {
    const times = [...new Set(own.flatMap((c) => c.openTimes))];
    for (const range of mergeRanges(own.map((c) => c.range))) {
      ranges.push({ seriesId, range, inside: times.filter((t) => t >= range.start && t < range.end) });
    }
  }
  await recordRanges(db, ranges);
}

/**
 * Whether every claimed range is already inside one recorded row of its series: then recording
 * the claims would change nothing. One statement for the whole batch.
 */
export async function claimsRecorded(db: Queryable, claims: readonly CoverageClaim[]): Promise<boolean> {
  const merged = claimsBySeries(claims).flatMap(([seriesId, own]) => mergeRanges(own.map((c) => c.range)).map((r) => ({ seriesId, ...r })));
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
