/**
 * Point-in-time reads: the candles as they were stored at a moment, rebuilt from the current rows
 * and the versions `candle_restatements` keeps (migration 0001: every change to a closed candle
 * keeps the version it replaced).
 *
 * A candle as of `at`:
 * - if a restatement after the point replaced it, the version the first such restatement replaced;
 * - otherwise the current row;
 * - absent when its oldest kept version was fetched after `at` (first stored after the point).
 *
 * "After the point" is `restated_at > at` for a time, or `id > mark` for a restatement mark (what a
 * backtest fingerprint records: exact whatever the clocks). Versions of a candle that was still
 * open are not kept: a candle open at `at` and closed since reads as absent, its earlier values
 * being gone.
 */
export interface AsOf {
  /** Epoch ms. */
  at: number;
  /** Restatements with a larger id are after the point (instead of comparing `restated_at` with `at`). */
  mark?: number | undefined;
}

/**
 * A relation with the columns of `candles` (series_id, open_time, fetched_at, closed, trades, open,
 * high, low, close, volume, quote_volume), named `alias`: the table itself without a point, the
 * candles as of it with one, which also has the optional fields of `candle_extras`
 * (taker_buy_volume, taker_buy_quote_volume, vwap) as of the point. Outer conditions on series_id
 * and open_time are pushed into the scan.
 */
export function candlesAt(asOf: AsOf | undefined, alias = 'candles'): string {
  if (!asOf) return alias === 'candles' ? 'candles' : `candles ${alias}`;
  if (!Number.isFinite(asOf.at)) throw new Error(`asOf must be a finite epoch ms, got ${asOf.at}`);
  const at = `'${new Date(asOf.at).toISOString()}'::timestamptz`;
  const after = asOf.mark !== undefined ? `r.id > ${BigInt(Math.trunc(asOf.mark))}` : `r.restated_at > ${at}`;
  const pick = (col: string) => `CASE WHEN r.id IS NULL THEN c.${col} ELSE r.old_${col} END AS ${col}`;
  const extra = (col: string) => `CASE WHEN r.id IS NULL THEN x.${col} ELSE r.old_${col} END AS ${col}`;
  return `(SELECT c.series_id, c.open_time, ${pick('fetched_at')}, (r.id IS NOT NULL OR c.closed) AS closed, ${pick('trades')},
            ${pick('open')}, ${pick('high')}, ${pick('low')}, ${pick('close')}, ${pick('volume')}, ${pick('quote_volume')},
            ${extra('taker_buy_volume')}, ${extra('taker_buy_quote_volume')}, ${extra('vwap')}
     FROM candles c
     LEFT JOIN candle_extras x ON x.series_id = c.series_id AND x.open_time = c.open_time
     LEFT JOIN LATERAL (
       SELECT r.id, r.old_fetched_at, r.old_trades, r.old_open, r.old_high, r.old_low, r.old_close, r.old_volume, r.old_quote_volume,
              r.old_taker_buy_volume, r.old_taker_buy_quote_volume, r.old_vwap
       FROM candle_restatements r WHERE r.series_id = c.series_id AND r.open_time = c.open_time AND ${after}
       ORDER BY r.id LIMIT 1
     ) r ON true
     WHERE coalesce((SELECT min(r0.old_fetched_at) FROM candle_restatements r0 WHERE r0.series_id = c.series_id AND r0.open_time = c.open_time),
                    c.fetched_at) <= ${at}) ${alias}`;
}
