import type { Candle, SeriesKey } from '../../functions/candles/candle.ts';
import type { StoredCandle } from '../../functions/store/candles.ts';
import type { Queryable } from '../../functions/store/db.ts';

/** A candle as the tests compare it with what was stored: absent quote volume and trades as null, the optional fields where it has them. */
export function asStored(c: Candle): StoredCandle {
  return {
    openTime: c.openTime, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume,
    quoteVolume: c.quoteVolume ?? null, trades: c.trades ?? null, closed: c.closed,
    ...(c.takerBuyVolume !== undefined && { takerBuyVolume: c.takerBuyVolume }),
    ...(c.takerBuyQuoteVolume !== undefined && { takerBuyQuoteVolume: c.takerBuyQuoteVolume }),
    ...(c.vwap !== undefined && { vwap: c.vwap }),
  };
}

/**
 * The stored rows of a series, as text exactly as stored, optionally only those with an open time
 * in [from, to). Every row is read, so extras and duplicates show.
 */
export async function readStored(db: Queryable, s: SeriesKey, range?: { from: number; to: number }): Promise<StoredCandle[]> {
  const { rows } = await db.query<{
    t: number; o: string; h: string; l: string; c: string; v: string; q: string | null; n: string | null; closed: boolean;
    tbv: string | null; tbq: string | null; vwap: string | null;
  }>(
    `SELECT (extract(epoch FROM c.open_time) * 1000)::float8 AS t, c.open::text AS o, c.high::text AS h, c.low::text AS l,
            c.close::text AS c, c.volume::text AS v, c.quote_volume::text AS q, c.trades::text AS n, c.closed,
            x.taker_buy_volume::text AS tbv, x.taker_buy_quote_volume::text AS tbq, x.vwap::text AS vwap
     FROM candles c JOIN series s ON s.id = c.series_id
     LEFT JOIN candle_extras x ON x.series_id = c.series_id AND x.open_time = c.open_time
     WHERE s.exchange = $1 AND s.symbol = $2 AND s.interval = $3
       AND ($4::float8 IS NULL OR c.open_time >= to_timestamp($4::float8 / 1000))
       AND ($5::float8 IS NULL OR c.open_time < to_timestamp($5::float8 / 1000))
     ORDER BY c.open_time`,
    [s.exchange, s.symbol, s.interval, range?.from ?? null, range?.to ?? null],
  );
  return rows.map((r) => ({
    openTime: Number(r.t), open: r.o, high: r.h, low: r.l, close: r.c, volume: r.v, quoteVolume: r.q,
    trades: r.n === null ? null : Number(r.n), closed: r.closed,
    ...(r.tbv !== null && { takerBuyVolume: r.tbv }),
    ...(r.tbq !== null && { takerBuyQuoteVolume: r.tbq }),
    ...(r.vwap !== null && { vwap: r.vwap }),
  }));
}
