import type { Queryable } from './db.ts';
import { candlesAt, type AsOf } from './as-of.ts';

/** The decimal columns of a candle, in the order exports write them. */
export const DECIMAL_COLUMNS = ['open', 'high', 'low', 'close', 'volume', 'quote_volume'] as const;
export type DecimalColumn = (typeof DECIMAL_COLUMNS)[number];

/** What an export needs to know of one series' stored candles in a range before it writes a byte. */
export interface ExportStats {
  seriesId: number;
  /** Stored candles in the range. */
  candles: number;
  /**
   * Per decimal column: the most digits after the point any value has, and the largest value as
   * text. Stored candles are non-negative with low <= open, close <= high, so the prices' largest
   * is the largest high (one comparison per row instead of four).
   */
  scale: Record<DecimalColumn, number>;
  largest: Record<DecimalColumn, string>;
  /** The close of the candle before the range (what `gaps=ffill` repeats first), or null. */
  prevClose: string | null;
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * Count, decimal scales and magnitudes of each series' candles in [lo, hi): one aggregate per
 * series over its primary-key range. Parquet needs a decimal column's scale and precision in the
 * schema before the first row group, and a progress bar needs the total.
 */
export async function exportStats(db: Queryable, seriesIds: readonly number[], lo: number, hi: number, asOf?: AsOf): Promise<ExportStats[]> {
  // PostgreSQL computes the repeated max(c.high) once.
  const largestOf = (c: DecimalColumn) => (c === 'volume' || c === 'quote_volume' ? c : 'high');
  const cols = DECIMAL_COLUMNS.map((c) => `coalesce(max(scale(c.${c})), 0), coalesce(max(c.${largestOf(c)}), 0)::text`).join(', ');
  const { rows } = await db.query<unknown[]>({
    text: `SELECT s.id, a.*,
              (SELECT close FROM ${candlesAt(asOf, 'p')} WHERE p.series_id = s.id AND p.open_time < $2::timestamptz ORDER BY p.open_time DESC LIMIT 1)
           FROM unnest($1::integer[]) AS s(id)
           CROSS JOIN LATERAL (
             SELECT count(*)::float8, ${cols}
             FROM ${candlesAt(asOf, 'c')} WHERE c.series_id = s.id AND c.open_time >= $2::timestamptz AND c.open_time < $3::timestamptz
           ) a`,
    values: [seriesIds, iso(lo), iso(hi)],
    rowMode: 'array',
  });
  return rows.map((r) => {
    const scale = {} as Record<DecimalColumn, number>;
    const largest = {} as Record<DecimalColumn, string>;
    DECIMAL_COLUMNS.forEach((c, k) => {
      scale[c] = Number(r[2 + 2 * k]);
      largest[c] = String(r[3 + 2 * k]);
    });
    return { seriesId: Number(r[0]), candles: Number(r[1]), scale, largest, prevClose: (r[2 + 2 * DECIMAL_COLUMNS.length] as string | null) ?? null };
  });
}

/** A page of stored candles as one text block: a line per candle, oldest first (see storedCandleText). */
export interface StoredCandleText {
  text: string;
  rows: number;
  /** Open time of the last candle, or null when there are none. */
  last: number | null;
}

/**
 * Up to `limit` stored candles of a series with open time in [lo, hi), oldest first, as one text
 * block of lines `open_time_ms,open,high,low,close,volume,quote_volume,trades,closed(0|1)`, with
 * absent optionals empty and decimals as stored. One value crosses the wire instead of nine per
 * candle, which spares the driver a string per field: this is the path bulk exports take.
 */
export async function storedCandleText(db: Queryable, seriesId: number, lo: number, hi: number, limit: number, asOf?: AsOf): Promise<StoredCandleText> {
  const { rows } = await db.query<[number, number | null, string | null]>({
    text: `SELECT count(*)::int, max(t),
                  string_agg(concat_ws(',', t::int8, open, high, low, close, volume, coalesce(quote_volume::text, ''),
                                       coalesce(trades::text, ''), closed::int), E'\\n' ORDER BY t)
           FROM (SELECT date_part('epoch', open_time) * 1000 AS t, open, high, low, close, volume, quote_volume, trades, closed
                 FROM ${candlesAt(asOf)} WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
                 ORDER BY open_time LIMIT $4) c`,
    values: [seriesId, iso(lo), iso(hi), limit],
    rowMode: 'array',
  });
  const r = rows[0]!;
  return { rows: r[0], last: r[1] === null ? null : Number(r[1]), text: r[2] ?? '' };
}
