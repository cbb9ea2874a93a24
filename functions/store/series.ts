import type { Exchange, SeriesKey } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';
import type { Queryable } from './db.ts';

const seriesKey = (s: SeriesKey) => `${s.exchange}|${s.symbol}|${s.interval}`;

/**
 * Maps series (exchange, symbol, interval) to their small integer ids, creating missing ones.
 * Ids never change once assigned, so they are cached for the life of the container.
 */
export class SeriesRegistry {
  private readonly ids = new Map<string, number>();

  async resolve(db: Queryable, series: readonly SeriesKey[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let missing: SeriesKey[] = [];
    for (const s of series) {
      const key = seriesKey(s);
      const id = this.ids.get(key);
      if (id === undefined) missing.push(s);
      else out.set(key, id);
    }
    // A concurrent writer may create the same series between our snapshot and our insert; the
    // second pass then sees its committed row.
    for (let attempt = 0; missing.length > 0 && attempt < 3; attempt++) {
      const { rows } = await db.query<{ id: number; exchange: string; symbol: string; interval: string }>(
        `WITH input AS (
           SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[]) AS t(exchange, symbol, interval)
         ), ins AS (
           INSERT INTO series (exchange, symbol, interval) SELECT * FROM input
           ON CONFLICT (exchange, symbol, interval) DO NOTHING
           RETURNING id, exchange, symbol, interval
         )
         SELECT id, exchange, symbol, interval FROM ins
         UNION ALL
         SELECT s.id, s.exchange, s.symbol, s.interval FROM series s JOIN input USING (exchange, symbol, interval)`,
        [missing.map((s) => s.exchange), missing.map((s) => s.symbol), missing.map((s) => s.interval)],
      );
      for (const r of rows) {
        const key = `${r.exchange}|${r.symbol}|${r.interval}`;
        this.ids.set(key, r.id);
        out.set(key, r.id);
      }
      missing = missing.filter((s) => !out.has(seriesKey(s)));
    }
    if (missing.length > 0) throw new Error(`could not resolve series ${missing.map(seriesKey).join(', ')}`);
    return out;
  }

  /** An id known from elsewhere (a pull shard carries its series' ids), so resolving it costs no query. */
  remember(series: SeriesKey, id: number): void {
    this.ids.set(seriesKey(series), id);
  }

  static key = seriesKey;
}

/** Looks up an existing series id without creating one. */
export async function findSeriesId(db: Queryable, s: SeriesKey): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>(
    'SELECT id FROM series WHERE exchange = $1 AND symbol = $2 AND interval = $3',
    [s.exchange, s.symbol, s.interval],
  );
  return rows[0]?.id;
}

/** The stored series of a symbol on an exchange, one per interval. */
export async function seriesOfSymbol(db: Queryable, exchange: Exchange, symbol: string): Promise<{ id: number; interval: Interval }[]> {
  const { rows } = await db.query<{ id: number; interval: Interval }>('SELECT id, interval FROM series WHERE exchange = $1 AND symbol = $2', [
    exchange,
    symbol,
  ]);
  return rows;
}

/** Stored series, optionally of one exchange and some symbols, ordered by exchange, symbol and interval. */
export async function listSeries(
  db: Queryable,
  filter: { exchange?: Exchange | undefined; symbols?: readonly string[] | undefined } = {},
): Promise<(SeriesKey & { id: number })[]> {
  const { rows } = await db.query<SeriesKey & { id: number }>(
    `SELECT id, exchange, symbol, interval FROM series
     WHERE ($1::text IS NULL OR exchange = $1) AND ($2::text[] IS NULL OR symbol = ANY($2))
     ORDER BY exchange, symbol, interval`,
    [filter.exchange ?? null, filter.symbols ?? null],
  );
  return rows;
}

/** Stored candles of each series, keyed `exchange symbol interval`; a series never stored is absent. */
export async function countCandlesPerSeries(db: Queryable, series: readonly SeriesKey[]): Promise<Map<string, number>> {
  const { rows } = await db.query<{ exchange: string; symbol: string; interval: string; n: number }>(
    `SELECT s.exchange, s.symbol, s.interval, count(c.open_time)::int AS n
     FROM series s LEFT JOIN candles c ON c.series_id = s.id
     WHERE (s.exchange, s.symbol, s.interval) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
     GROUP BY 1, 2, 3`,
    [series.map((s) => s.exchange), series.map((s) => s.symbol), series.map((s) => s.interval)],
  );
  return new Map(rows.map((r) => [`${r.exchange} ${r.symbol} ${r.interval}`, r.n]));
}
