import type { CandleBatch, CandleRow } from '../candles/candle-batch.ts';
import type { Queryable } from './db.ts';
import { SeriesRegistry } from './series.ts';

export interface UpsertResult {
  /** Candles in the input after de-duplication. */
  received: number;
  /** Rows inserted or updated. */
  written: number;
  /** Rows left as they were: identical rewrites, open versions of closed candles, stale versions. */
  unchanged: number;
}

interface Version {
  seriesId: number;
  fetchedAt: number;
  row: CandleRow;
}

/** Which of two versions of the same candle wins, by the finality rules. */
function newer(a: Version, b: Version): Version {
  const aClosed = a.row[8] === 1;
  const bClosed = b.row[8] === 1;
  if (aClosed !== bClosed) return aClosed ? a : b;
  return b.fetchedAt >= a.fetchedAt ? b : a;
}

/** `{a,b,NULL}`: decimals and integers need no quoting, which keeps the literal small and cheap to build. */
function arrayLiteral(values: readonly (string | number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    out += v === null || v === undefined ? 'NULL' : String(v);
  }
  return out + '}';
}

/**
 * The finality rules, applied in SQL to an existing row `e` and an incoming row `i`:
 * - an identical rewrite (every value and the closed flag equal) changes nothing;
 * - a closed candle is never replaced by an open one;
 * - an open candle is replaced by a closed one, or by an open one fetched no earlier;
 * - a closed candle is replaced by a closed one fetched later (a restatement: the old version is
 *   kept in candle_restatements by a trigger).
 */
const replaces = (e: string, i: string) => `(
  (${e}.closed, ${e}.open, ${e}.high, ${e}.low, ${e}.close, ${e}.volume, ${e}.quote_volume, ${e}.trades)
    IS DISTINCT FROM (${i}.closed, ${i}.open, ${i}.high, ${i}.low, ${i}.close, ${i}.volume, ${i}.quote_volume, ${i}.trades)
  AND (CASE WHEN ${e}.closed THEN ${i}.closed AND ${i}.fetched_at > ${e}.fetched_at
            ELSE ${i}.closed OR ${i}.fetched_at >= ${e}.fetched_at END))`;

/*
 * One statement per batch. The lateral probe drops rows the finality rules would not apply before they
 * reach INSERT, so a redelivered batch reads index pages and writes nothing (ON CONFLICT ... WHERE
 * alone would still lock, and so dirty, every conflicting row). The same rule guards the DO UPDATE
 * for rows another writer changed in between.
 */
export const UPSERT_SQL = `
INSERT INTO candles AS e (series_id, closed, open_time, fetched_at, trades, open, high, low, close, volume, quote_volume)
SELECT i.series_id, i.closed, i.open_time, i.fetched_at, i.trades, i.open, i.high, i.low, i.close, i.volume, i.quote_volume
FROM (
  SELECT u.series_id, u.closed, to_timestamp(u.t::float8 / 1000) AS open_time, to_timestamp(u.f::float8 / 1000) AS fetched_at,
         u.trades, u.open, u.high, u.low, u.close, u.volume, u.quote_volume
  FROM unnest($1::integer[], $2::boolean[], $3::bigint[], $4::bigint[], $5::bigint[],
              $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])
       AS u(series_id, closed, t, f, trades, open, high, low, close, volume, quote_volume)
) i
-- LATERAL ... LIMIT 1 keeps this a per-row primary-key probe: as a plain NOT EXISTS the planner may
-- pick a merge anti-join that sorts the whole table.
LEFT JOIN LATERAL (
  SELECT x.closed, x.fetched_at, x.trades, x.open, x.high, x.low, x.close, x.volume, x.quote_volume, x.open_time
  FROM candles x WHERE x.series_id = i.series_id AND x.open_time = i.open_time LIMIT 1
) x ON true
WHERE x.open_time IS NULL OR ${replaces('x', 'i')}
ON CONFLICT (series_id, open_time) DO UPDATE SET
  closed = excluded.closed, fetched_at = excluded.fetched_at, trades = excluded.trades,
  open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
  volume = excluded.volume, quote_volume = excluded.quote_volume
WHERE ${replaces('e', 'excluded')}`;

export class CandleStore {
  private readonly registry: SeriesRegistry;

  constructor(registry = new SeriesRegistry()) {
    this.registry = registry;
  }

  /**
   * Writes the candles of many CandleBatch messages with one upsert statement. Versions of the
   * same candle within the input are reduced to the one the finality rules pick first.
   */
  async upsert(db: Queryable, batches: readonly CandleBatch[]): Promise<UpsertResult> {
    if (batches.length === 0) return { received: 0, written: 0, unchanged: 0 };
    const ids = await this.registry.resolve(db, batches);
    const versions = new Map<string, Version>();
    for (const b of batches) {
      const seriesId = ids.get(SeriesRegistry.key(b))!;
      for (const row of b.rows) {
        const key = `${seriesId}:${row[0]}`;
        const v: Version = { seriesId, fetchedAt: b.fetchedAt, row };
        const prev = versions.get(key);
        versions.set(key, prev ? newer(prev, v) : v);
      }
    }
    const n = versions.size;
    const series: number[] = new Array(n);
    const closed: string[] = new Array(n);
    const times: number[] = new Array(n);
    const fetched: number[] = new Array(n);
    const trades: (number | null)[] = new Array(n);
    const cols: (string | null)[][] = [[], [], [], [], [], []];
    let k = 0;
    for (const { seriesId, fetchedAt, row } of versions.values()) {
      series[k] = seriesId;
      closed[k] = row[8] === 1 ? 't' : 'f';
      times[k] = row[0];
      fetched[k] = fetchedAt;
      trades[k] = row[7];
      cols[0]![k] = row[1];
      cols[1]![k] = row[2];
      cols[2]![k] = row[3];
      cols[3]![k] = row[4];
      cols[4]![k] = row[5];
      cols[5]![k] = row[6];
      k++;
    }
    const result = await db.query(UPSERT_SQL, [
      arrayLiteral(series),
      arrayLiteral(closed),
      arrayLiteral(times),
      arrayLiteral(fetched),
      arrayLiteral(trades),
      ...cols.map(arrayLiteral),
    ]);
    const written = result.rowCount ?? 0;
    return { received: n, written, unchanged: n - written };
  }
}
