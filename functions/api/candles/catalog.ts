import type { Exchange } from '../../candles/candle.ts';
import { INTERVAL_MS, INTERVALS, type Interval } from '../../candles/intervals.ts';
import { notFound } from '../../http/problem.ts';
import type { Queryable } from '../../store/db.ts';
import type { GapPage, LatestCandles, Markets } from '../schemas.ts';
import { MS, toCandle } from './read-candles.ts';

// Interval lengths as a SQL lookup, so one statement can treat series of different intervals.
const STEPS_SQL = `(VALUES ${INTERVALS.map((i) => `('${i}', ${INTERVAL_MS[i]}::bigint)`).join(', ')}) AS st(interval, ms)`;

export interface SeriesFilter {
  exchange?: Exchange | undefined;
  symbol?: string | undefined;
  interval?: Interval | undefined;
}

export interface SeriesRef {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
}

/** The newest closed candle of each listed series (or of every series matching the filter). */
export async function latestClosed(db: Queryable, refs: SeriesRef[] | undefined, filter: SeriesFilter): Promise<LatestCandles> {
  const where = refs
    ? '(s.exchange, s.symbol, s.interval) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))'
    : '($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)';
  const params = refs
    ? [refs.map((r) => r.exchange), refs.map((r) => r.symbol), refs.map((r) => r.interval)]
    : [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null];
  const { rows } = await db.query<{
    exchange: Exchange;
    symbol: string;
    interval: Interval;
    t: number | null;
    open: string;
    high: string;
    low: string;
    close: string;
    volume: string;
    quote_volume: string | null;
    trades: string | null;
  }>(
    `SELECT s.exchange, s.symbol, s.interval, c.t, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades
     FROM series s
     LEFT JOIN LATERAL (
       SELECT ${MS('open_time')} AS t, open, high, low, close, volume, quote_volume, trades
       FROM candles WHERE series_id = s.id AND closed ORDER BY open_time DESC LIMIT 1
     ) c ON true
     WHERE ${where}
     ORDER BY s.exchange, s.symbol, s.interval`,
    params,
  );
  if (refs) {
    const found = new Set(rows.map((r) => `${r.exchange}:${r.symbol}:${r.interval}`));
    const missing = refs.find((r) => !found.has(`${r.exchange}:${r.symbol}:${r.interval}`));
    if (missing) {
      throw notFound(`series ${missing.exchange}:${missing.symbol}:${missing.interval} is not stored; GET /v1/markets lists the stored series`, 'series');
    }
  }
  return {
    series: rows.map((r) => ({
      exchange: r.exchange,
      symbol: r.symbol,
      interval: r.interval,
      // The newest *closed* candle: the query selects only closed ones.
      candle: r.t === null ? null : toCandle({ ...r, t: r.t, closed: true }, false),
    })),
  };
}

/**
 * Every stored series with its extent and gaps, computed from the candles themselves in one pass
 * over each series' primary key (an index-only scan once the table is vacuumed).
 */
export async function listMarkets(db: Queryable, filter: SeriesFilter): Promise<Markets> {
  const { rows } = await db.query<{
    exchange: Exchange;
    symbol: string;
    interval: Interval;
    n: string;
    first_t: number | null;
    last_t: number | null;
    gap_count: string;
    missing: string;
    largest: string;
  }>(
    `SELECT s.exchange, s.symbol, s.interval, x.n, x.first_t, x.last_t, x.gap_count, x.missing, x.largest
     FROM series s
     JOIN ${STEPS_SQL} ON st.interval = s.interval
     CROSS JOIN LATERAL (
       SELECT count(*) AS n, min(t) AS first_t, max(t) AS last_t,
              count(*) FILTER (WHERE d > st.ms) AS gap_count,
              coalesce(sum(d / st.ms - 1) FILTER (WHERE d > st.ms), 0) AS missing,
              coalesce(max(d / st.ms - 1) FILTER (WHERE d > st.ms), 0) AS largest
       FROM (
         SELECT ${MS('open_time')} AS t,
                ((extract(epoch FROM open_time - lag(open_time) OVER (ORDER BY open_time))) * 1000)::bigint AS d
         FROM candles WHERE series_id = s.id
       ) c
     ) x
     WHERE ($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)
     ORDER BY s.exchange, s.symbol, s.interval`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null],
  );
  return {
    markets: rows.map((r) => ({
      exchange: r.exchange,
      symbol: r.symbol,
      interval: r.interval,
      candles: Number(r.n),
      firstOpenTime: r.first_t,
      lastOpenTime: r.last_t,
      gapCount: Number(r.gap_count),
      missingCandles: Number(r.missing),
      largestGapCandles: Number(r.largest),
    })),
  };
}

export interface GapOptions {
  start?: number | undefined;
  end?: number | undefined;
  limit: number;
  /** Cursor position: the open time of the stored candle that ended the previous page's last gap. */
  from?: number | undefined;
}

/**
 * Runs of missing candles of one stored series, oldest first. A gap is reported as
 * [first missing open time, next stored open time). `confirmedByExchange` tells a real hole in the
 * exchange's history (the coverage ledger shows the range was fetched) from one a backfill may fill.
 */
export async function listGaps(
  db: Queryable,
  seriesId: number,
  interval: Interval,
  opts: GapOptions,
): Promise<{ gaps: GapPage['gaps']; next: number | null }> {
  const step = INTERVAL_MS[interval];
  const lower = opts.from ?? opts.start ?? null;
  const { rows } = await db.query<{ gap_start: number; gap_end: number; missing: string; confirmed: boolean }>(
    `WITH lo AS (
       -- Start from the stored candle at or before the lower bound, so a gap straddling it is seen whole.
       SELECT coalesce(
         (SELECT open_time FROM candles WHERE series_id = $1 AND open_time <= $2::timestamptz ORDER BY open_time DESC LIMIT 1),
         $2::timestamptz, '-infinity') AS t
     ), c AS (
       SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev
       FROM candles WHERE series_id = $1 AND open_time >= (SELECT t FROM lo)
     ), g AS (
       SELECT prev + interval '${step} milliseconds' AS gap_start, open_time AS gap_end
       FROM c WHERE open_time - prev > interval '${step} milliseconds'
         AND ($3::timestamptz IS NULL OR prev + interval '${step} milliseconds' < $3::timestamptz)
       ORDER BY open_time LIMIT $4
     )
     SELECT ${MS('g.gap_start')} AS gap_start, ${MS('g.gap_end')} AS gap_end,
            ((extract(epoch FROM g.gap_end - g.gap_start) * 1000)::bigint / ${step}) AS missing,
            EXISTS (SELECT 1 FROM coverage v WHERE v.series_id = $1 AND v.range_start <= g.gap_start AND v.range_end >= g.gap_end) AS confirmed
     FROM g ORDER BY g.gap_start`,
    [seriesId, lower === null ? null : new Date(lower).toISOString(), opts.end === undefined ? null : new Date(opts.end).toISOString(), opts.limit + 1],
  );
  const more = rows.length > opts.limit;
  const page = more ? rows.slice(0, opts.limit) : rows;
  return {
    gaps: page.map((r) => ({ start: r.gap_start, end: r.gap_end, missingCandles: Number(r.missing), confirmedByExchange: r.confirmed })),
    next: more ? page[page.length - 1]!.gap_end : null,
  };
}
