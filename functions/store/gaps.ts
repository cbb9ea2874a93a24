import type { Range } from '../ingest/ranges.ts';
import type { Queryable } from './db.ts';
import { ms, ts } from './sql.ts';

/** Open time of the earliest bucket a series knows of: its first stored candle, recorded coverage or dead-lettered message, whichever is oldest. */
export async function earliestKnownTime(db: Queryable, seriesId: number): Promise<number | undefined> {
  const { rows } = await db.query<{ t: number | null }>(
    `SELECT least((SELECT ${ms('min(open_time)')} FROM candles WHERE series_id = $1),
                  (SELECT ${ms('min(range_start)')} FROM coverage WHERE series_id = $1),
                  (SELECT ${ms('min(range_start)')} FROM dead_letters WHERE series_id = $1)) AS t`,
    [seriesId],
  );
  const t = rows[0]?.t;
  return t === null || t === undefined ? undefined : Number(t);
}

export interface StoredSpan {
  /** Stored candles in the range. */
  stored: number;
  /** Open times of the first and last stored candle; undefined when none is stored. */
  first: number | undefined;
  last: number | undefined;
  /** Consecutive stored candles more than one bucket apart: `start` opens the earlier, `end` the later one. */
  jumps: Range[];
}

/**
 * What a series stores in `range`, as its edges and the jumps between consecutive candles. One
 * statement finds every jump with `lag(open_time)` over the primary key's index (no round trip per
 * row), plus the first and last stored candle.
 */
export async function scanStoredSpan(db: Queryable, seriesId: number, range: Range, stepMs: number): Promise<StoredSpan> {
  const { rows } = await db.query<{ kind: 'gap' | 'bounds'; a: number | null; b: number | null; n: string }>(
    `WITH c AS (
       SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev
       FROM candles WHERE series_id = $1 AND open_time >= ${ts('$2')} AND open_time < ${ts('$3')}
     )
     SELECT 'gap' AS kind, ${ms('prev')} AS a, ${ms('open_time')} AS b, 0::bigint AS n
     FROM c WHERE open_time - prev > $4 * interval '1 millisecond'
     UNION ALL
     SELECT 'bounds', ${ms('min(open_time)')}, ${ms('max(open_time)')}, count(*) FROM c`,
    [seriesId, range.start, range.end, stepMs],
  );
  const bounds = rows.find((r) => r.kind === 'bounds');
  const stored = Number(bounds?.n ?? 0);
  const edges = stored === 0 || bounds?.a === null || bounds?.a === undefined || bounds.b === null ? undefined : bounds;
  return {
    stored,
    first: edges ? Number(edges.a) : undefined,
    last: edges ? Number(edges.b) : undefined,
    jumps: rows.filter((r) => r.kind === 'gap').map((r) => ({ start: Number(r.a), end: Number(r.b) })),
  };
}
