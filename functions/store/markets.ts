import type { Exchange, SeriesKey } from '../candles/candle.ts';
import { INTERVALS, type Interval } from '../candles/intervals.ts';
import { inTransaction, type Db, type Queryable } from './db.ts';
import { SeriesRegistry } from './series.ts';
import { ms, ts } from './sql.ts';

/*
 * The followed markets (migration 0007): a market is (exchange, symbol) with a start, a paused flag
 * and the intervals it follows, one market_series row each. Removing keeps the row (removed_at) and
 * the candles; purging deletes the candles too.
 */

export type MarketSource = 'seed' | 'api';

/**
 * Days of candles to keep, null for forever: `default` is the market's, which every interval
 * without its own setting follows; an interval key sets that interval's own.
 */
export type RetentionSetting = Partial<Record<Interval | 'default', number | null>>;

export interface FollowRequest {
  exchange: Exchange;
  symbol: string;
  intervals: readonly Interval[];
  /** First candle to backfill from (ms); undefined: only the newest page when the series starts. */
  start?: number | undefined;
  /** Retention to set: keys left out keep their current setting (forever for a new market). */
  retention?: RetentionSetting | undefined;
}

export interface FollowedSeries {
  series: SeriesKey;
  seriesId: number;
  start: number | undefined;
  /** Where the coverage ledger's newest range ends: the newest closed candle stored (or confirmed absent) closes there. Null before the first write. */
  closedThrough: number | null;
  /** When the market was last followed, paused or changed. */
  followedAt: number;
}

export interface MarketRow {
  exchange: Exchange;
  symbol: string;
  intervals: Interval[];
  start: number | null;
  paused: boolean;
  source: MarketSource;
  addedAt: number;
  updatedAt: number;
  removedAt: number | null;
  /** The market's default (`default`) and each followed interval's retention in days, null for forever. */
  retentionDays: RetentionSetting & { default: number | null };
}

async function attachIntervals(db: Queryable, requests: readonly FollowRequest[]): Promise<void> {
  const keys = requests.flatMap((r) => r.intervals.map((interval) => ({ exchange: r.exchange, symbol: r.symbol, interval })));
  // A fresh registry: the ids of new series are wanted, not a container's cache.
  const ids = await new SeriesRegistry().resolve(db, keys);
  const known = keys.filter((k) => ids.has(`${k.exchange}|${k.symbol}|${k.interval}`));
  await db.query(
    `INSERT INTO market_series (series_id, exchange, symbol)
     SELECT * FROM unnest($1::int[], $2::text[], $3::text[])
     ON CONFLICT (series_id) DO NOTHING`,
    [known.map((k) => ids.get(`${k.exchange}|${k.symbol}|${k.interval}`)), known.map((k) => k.exchange), known.map((k) => k.symbol)],
  );
}

/**
 * Applies the seed list: markets never seen before are added with their intervals; a market that
 * exists (even removed or changed at runtime) is left as it is. Returns how many were added.
 */
export async function seedMarkets(db: Db, seeds: readonly FollowRequest[]): Promise<number> {
  if (seeds.length === 0) return 0;
  return inTransaction(db, async (tx) => {
    const { rows } = await tx.query<{ exchange: Exchange; symbol: string }>(
      `INSERT INTO markets (exchange, symbol, start_time, source, retention_days)
       SELECT e, s, ${ts('t')}, 'seed', r FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[]) AS x(e, s, t, r)
       ON CONFLICT (exchange, symbol) DO NOTHING
       RETURNING exchange, symbol`,
      [seeds.map((m) => m.exchange), seeds.map((m) => m.symbol), seeds.map((m) => m.start ?? null), seeds.map((m) => m.retention?.default ?? null)],
    );
    const added = new Set(rows.map((r) => `${r.exchange}|${r.symbol}`));
    const fresh = seeds.filter((m) => added.has(`${m.exchange}|${m.symbol}`));
    await attachIntervals(tx, fresh);
    await setIntervalRetention(tx, fresh);
    return added.size;
  });
}

/**
 * Follows markets: new ones are added; a removed one is followed again; an existing one gains the
 * intervals it lacked (a start given replaces the old one). Paused markets stay paused.
 */
export async function followMarkets(db: Db, requests: readonly FollowRequest[]): Promise<void> {
  if (requests.length === 0) return;
  await inTransaction(db, async (tx) => {
    await tx.query(
      `INSERT INTO markets (exchange, symbol, start_time, source, retention_days)
       SELECT e, s, ${ts('t')}, 'api', r FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[], $5::boolean[]) AS x(e, s, t, r, set_r)
       ON CONFLICT (exchange, symbol) DO UPDATE
         SET removed_at = NULL, updated_at = now(), start_time = coalesce(excluded.start_time, markets.start_time),
             retention_days = CASE WHEN (SELECT set_r FROM unnest($1::text[], $2::text[], $5::boolean[]) AS y(e, s, set_r)
                                         WHERE y.e = excluded.exchange AND y.s = excluded.symbol)
                                   THEN excluded.retention_days ELSE markets.retention_days END`,
      [
        requests.map((m) => m.exchange),
        requests.map((m) => m.symbol),
        requests.map((m) => m.start ?? null),
        requests.map((m) => m.retention?.default ?? null),
        requests.map((m) => m.retention !== undefined && 'default' in m.retention),
      ],
    );
    await attachIntervals(tx, requests);
    await setIntervalRetention(tx, requests);
  });
}

/** Gives the intervals named in each request's retention their own setting (null: forever). */
async function setIntervalRetention(db: Queryable, requests: readonly FollowRequest[]): Promise<void> {
  const own = requests.flatMap((r) =>
    Object.entries(r.retention ?? {})
      .filter(([k]) => k !== 'default')
      .map(([interval, days]) => ({ exchange: r.exchange, symbol: r.symbol, interval, days: days ?? null })),
  );
  if (own.length === 0) return;
  await db.query(
    `UPDATE market_series m SET retention_days = o.days, retention_own = true
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS o(exchange, symbol, interval, days), series s
     WHERE s.exchange = o.exchange AND s.symbol = o.symbol AND s.interval = o.interval AND m.series_id = s.id`,
    [own.map((o) => o.exchange), own.map((o) => o.symbol), own.map((o) => o.interval), own.map((o) => o.days)],
  );
}

export interface MarketChange {
  /** The exact intervals to follow from now on. */
  intervals?: readonly Interval[] | undefined;
  paused?: boolean | undefined;
  start?: number | undefined;
  /** Retention to change; keys left out keep theirs. */
  retention?: RetentionSetting | undefined;
}

/** Changes a followed market; false when no such market is followed (never added, or removed). */
export async function changeMarket(db: Db, exchange: Exchange, symbol: string, change: MarketChange): Promise<boolean> {
  return inTransaction(db, async (tx) => {
    const { rowCount } = await tx.query(
      `UPDATE markets SET paused = coalesce($3, paused), start_time = coalesce(${ts('$4')}, start_time), updated_at = now(),
              retention_days = CASE WHEN $5 THEN $6::int ELSE retention_days END
       WHERE exchange = $1 AND symbol = $2 AND removed_at IS NULL`,
      [exchange, symbol, change.paused ?? null, change.start ?? null, change.retention !== undefined && 'default' in change.retention, change.retention?.default ?? null],
    );
    if (!rowCount) return false;
    if (change.intervals) {
      await tx.query(
        `DELETE FROM market_series m USING series s
         WHERE m.series_id = s.id AND m.exchange = $1 AND m.symbol = $2 AND NOT s.interval = ANY($3::text[])`,
        [exchange, symbol, change.intervals],
      );
      await attachIntervals(tx, [{ exchange, symbol, intervals: change.intervals }]);
    }
    if (change.retention) await setIntervalRetention(tx, [{ exchange, symbol, intervals: [], retention: change.retention }]);
    return true;
  });
}

export interface Removal {
  /** Candles deleted: 0 unless purged. */
  purgedCandles: number;
  /** Candles of the market kept in the database (0 after a purge). */
  keptCandles: number;
}

/**
 * Stops following a market: its intervals are dropped and it is marked removed. Its candles stay
 * unless `purge`, which deletes them with their coverage, restatements and backfills. Undefined
 * when no such market is followed.
 */
export async function removeMarket(db: Db, exchange: Exchange, symbol: string, opts: { purge: boolean }): Promise<Removal | undefined> {
  return inTransaction(db, async (tx) => {
    const { rowCount } = await tx.query(
      `UPDATE markets SET removed_at = now(), updated_at = now() WHERE exchange = $1 AND symbol = $2 AND removed_at IS NULL`,
      [exchange, symbol],
    );
    if (!rowCount) return undefined;
    await tx.query('DELETE FROM market_series WHERE exchange = $1 AND symbol = $2', [exchange, symbol]);
    const { rows: ids } = await tx.query<{ id: number }>('SELECT id FROM series WHERE exchange = $1 AND symbol = $2', [exchange, symbol]);
    const seriesIdList = ids.map((r) => r.id);
    if (!opts.purge) {
      const { rows } = await tx.query<{ n: string }>('SELECT count(*) AS n FROM candles WHERE series_id = ANY($1::int[])', [seriesIdList]);
      return { purgedCandles: 0, keptCandles: Number(rows[0]?.n ?? 0) };
    }
    const { rowCount: purged } = await tx.query('DELETE FROM candles WHERE series_id = ANY($1::int[])', [seriesIdList]);
    await tx.query('DELETE FROM candle_restatements WHERE series_id = ANY($1::int[])', [seriesIdList]);
    await tx.query('DELETE FROM candle_extras WHERE series_id = ANY($1::int[])', [seriesIdList]);
    await tx.query('DELETE FROM coverage WHERE series_id = ANY($1::int[])', [seriesIdList]);
    await tx.query('DELETE FROM backfills WHERE series_id = ANY($1::int[])', [seriesIdList]);
    await tx.query('DELETE FROM series_expiry WHERE series_id = ANY($1::int[])', [seriesIdList]);
    return { purgedCandles: purged ?? 0, keptCandles: 0 };
  });
}

/**
 * The followed, unpaused series of the given intervals (all when omitted): what a pull tick fetches.
 * With `due`, only those whose latest boundary has passed without their closed candle stored: the
 * coverage ledger's newest range (what the writer stored, or confirmed absent) ends before the
 * boundary `due` gives for their interval.
 */
export async function followedSeries(db: Queryable, intervals?: readonly Interval[], due?: (interval: Interval) => number): Promise<FollowedSeries[]> {
  const boundaries = due ? (intervals ?? INTERVALS).map((i) => [i, due(i)] as const) : [];
  const { rows } = await db.query<{ id: number; exchange: Exchange; symbol: string; interval: Interval; start: number | null; closed: number | null; followed: number }>(
    `SELECT s.id, s.exchange, s.symbol, s.interval, ${ms('m.start_time')} AS start, ${ms('k.range_end')} AS closed, ${ms('m.updated_at')} AS followed
     FROM market_series ms JOIN series s ON s.id = ms.series_id
     JOIN markets m ON m.exchange = ms.exchange AND m.symbol = ms.symbol
     LEFT JOIN unnest($2::text[], $3::float8[]) AS b(interval, boundary) ON b.interval = s.interval
     LEFT JOIN LATERAL (SELECT c.range_end FROM coverage c WHERE c.series_id = s.id ORDER BY c.range_start DESC LIMIT 1) k ON true
     WHERE m.removed_at IS NULL AND NOT m.paused AND ($1::text[] IS NULL OR s.interval = ANY($1::text[]))
       AND (NOT $4 OR coalesce(k.range_end, '-infinity') < ${ts('b.boundary')})
     ORDER BY s.exchange, s.symbol, s.interval`,
    [intervals ?? null, boundaries.map(([i]) => i), boundaries.map(([, b]) => b), due !== undefined],
  );
  return rows.map((r) => ({
    series: { exchange: r.exchange, symbol: r.symbol, interval: r.interval },
    seriesId: r.id,
    start: r.start === null ? undefined : Number(r.start),
    closedThrough: r.closed === null ? null : Math.round(Number(r.closed)),
    followedAt: Math.round(Number(r.followed)),
  }));
}

/** Records how each series' pull ended: finished (error cleared) or failed with its message. */
export async function recordPulls(db: Queryable, outcomes: readonly { seriesId: number; error?: string | undefined }[]): Promise<void> {
  if (outcomes.length === 0) return;
  await db.query(
    `UPDATE market_series m
     SET pulled_at = CASE WHEN o.err IS NULL THEN now() ELSE m.pulled_at END,
         last_error = o.err,
         errored_at = CASE WHEN o.err IS NULL THEN m.errored_at ELSE now() END
     FROM unnest($1::int[], $2::text[]) AS o(id, err)
     WHERE m.series_id = o.id`,
    [outcomes.map((o) => o.seriesId), outcomes.map((o) => o.error ?? null)],
  );
}

/** Every market ever followed (removed ones too, unless `active`), with its followed intervals. */
export async function listMarkets(db: Queryable, filter: { exchange?: Exchange | undefined; symbol?: string | undefined; active?: boolean } = {}): Promise<MarketRow[]> {
  const { rows } = await db.query<{
    exchange: Exchange;
    symbol: string;
    intervals: Interval[] | null;
    start: number | null;
    paused: boolean;
    source: MarketSource;
    added: number;
    updated: number;
    removed: number | null;
    retention_days: number | null;
    retention: Record<string, number | null> | null;
  }>(
    `SELECT m.exchange, m.symbol, ${ms('m.start_time')} AS start, m.paused, m.source, m.retention_days,
            (SELECT jsonb_object_agg(s.interval, CASE WHEN x.retention_own THEN x.retention_days ELSE m.retention_days END)
             FROM market_series x JOIN series s ON s.id = x.series_id
             WHERE x.exchange = m.exchange AND x.symbol = m.symbol) AS retention,
            ${ms('m.added_at')} AS added, ${ms('m.updated_at')} AS updated, ${ms('m.removed_at')} AS removed,
            (SELECT array_agg(s.interval ORDER BY st.ord) FROM market_series x JOIN series s ON s.id = x.series_id
               JOIN unnest('{1m,3m,5m,15m,30m,1h,2h,4h,6h,12h,1d,1w}'::text[]) WITH ORDINALITY AS st(interval, ord) ON st.interval = s.interval
             WHERE x.exchange = m.exchange AND x.symbol = m.symbol) AS intervals
     FROM markets m
     WHERE ($1::text IS NULL OR m.exchange = $1) AND ($2::text IS NULL OR m.symbol = $2) AND (NOT $3 OR m.removed_at IS NULL)
     ORDER BY m.exchange, m.symbol`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.active ?? false],
  );
  return rows.map((r) => ({
    exchange: r.exchange,
    symbol: r.symbol,
    intervals: r.intervals ?? [],
    start: r.start === null ? null : Math.round(Number(r.start)),
    paused: r.paused,
    source: r.source,
    addedAt: Math.round(Number(r.added)),
    updatedAt: Math.round(Number(r.updated)),
    removedAt: r.removed === null ? null : Math.round(Number(r.removed)),
    retentionDays: {
      default: r.retention_days,
      ...Object.fromEntries((r.intervals ?? []).map((i) => [i, r.retention?.[i] ?? null])),
    },
  }));
}
