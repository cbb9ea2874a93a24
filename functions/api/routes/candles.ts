import * as z from 'zod';
import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../../candles/candle.ts';
import { isAligned } from '../../candles/intervals.ts';
import { queryHash } from '../../http/cursor.ts';
import { fitPage } from '../../http/size.ts';
import { nextCursorHeader, type CsvValue } from '../../http/csv.ts';
import { badRequest } from '../../http/problem.ts';
import { checkTimeRange } from '../../http/query.ts';
import { JsonText } from '../../http/response.ts';
import { iso, isoOrNull } from '../../http/time.ts';
import { latestClosed } from '../candles/catalog.ts';
import { readCandles, readCandlesJson } from '../candles/read-candles.ts';
import { resolveSource } from '../candles/source.ts';
import { COMMON, defineRoute, problems } from '../route.ts';
import { candlePageSchema, candlesQuerySchema, latestQuerySchema, latestSchema, type CandleOut, type CandlePage, type LatestCandles } from '../schemas.ts';

const candleColumns = (resampled: boolean) => [
  'time',
  'open_time',
  'open',
  'high',
  'low',
  'close',
  'volume',
  'quote_volume',
  'trades',
  'closed',
  'gap',
  'taker_buy_volume',
  'taker_buy_quote_volume',
  'vwap',
  ...(resampled ? ['source_candles'] : []),
];
const candleRow = (c: CandleOut, resampled: boolean): CsvValue[] => {
  const row: CsvValue[] = [
    iso(c.openTime), c.openTime, c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.trades, c.closed, c.gap,
    c.takerBuyVolume ?? null, c.takerBuyQuoteVolume ?? null, c.vwap ?? null,
  ];
  if (resampled) row.push(c.sourceCandles ?? 0);
  return row;
};

export const candles = defineRoute({
  method: 'GET',
  path: '/v1/candles',
  operationId: 'getCandles',
  tag: 'candles',
  scope: 'read',
  summary: 'Candle history of one series, ordered by open time, paginated',
  description:
    'Candles with open time in [start, end), oldest first, as exact decimal strings. An interval that is not stored is built from the coarsest stored ' +
    'interval that divides it (first open, max high, min low, last close, summed volumes) and `resampledFrom` says so. `Accept: text/csv` or ' +
    '`format=csv` returns CSV with a header row; the next cursor is then in the `X-Next-Cursor` header. With `asOf`, the candles are the values ' +
    'as stored at that moment: a candle restated since reads as the version it had then, and one first stored after it is absent.',
  query: candlesQuerySchema,
  csv: (page: CandlePage | JsonText) => {
    if (page instanceof JsonText) throw new Error('a CSV answer is built from the page, not from its JSON text');
    const resampled = page.resampledFrom !== null;
    return {
      columns: candleColumns(resampled),
      rows: page.candles.map((c) => candleRow(c, resampled)),
      headers: {
        'X-Gap-Policy': page.gaps,
        ...nextCursorHeader(page.nextCursor),
        ...(page.resampledFrom ? { 'X-Resampled-From': page.resampledFrom } : {}),
        ...(page.asOf ? { 'X-As-Of': page.asOf } : {}),
      },
    };
  },
  responses: {
    200: {
      description: 'A page of candles.',
      schema: candlePageSchema,
      headers: {
        'X-Next-Cursor': 'CSV only: cursor of the next page (absent on the last page).',
        'X-Resampled-From': 'CSV only: the stored interval the candles were built from, when resampled.',
        'X-Gap-Policy': 'CSV only: the gap policy applied.',
        'X-As-Of': 'CSV only: the point in time read (with `asOf`).',
      },
    },
    ...problems(...COMMON, 404),
  },
  async handle({ query: q, db, cursors, reply, fits, format }) {
    checkTimeRange(q);
    const codec = await cursors();
    const hash = queryHash(['candles', q.exchange, q.symbol, q.interval, q.start, q.end, q.gaps, ...(q.asOf === undefined ? [] : [q.asOf])]);
    const from = q.cursor
      ? codec.decode(
          q.cursor,
          hash,
          z.number().int().min(MIN_OPEN_TIME).max(MAX_OPEN_TIME).refine((t) => isAligned(t, q.interval)),
        )
      : undefined;
    const conn = await db();
    const src = await resolveSource(conn, q.exchange, q.symbol, q.interval);
    const asOf = q.asOf === undefined ? undefined : { at: q.asOf };
    const opts = { start: q.start, end: q.end, limit: q.limit, from, gaps: q.gaps, asOf };
    // A page of k candles without them and its cursor, in the order the answer lists its fields.
    const headOf = (k: number) => ({
      exchange: q.exchange,
      symbol: q.symbol,
      interval: q.interval,
      resampledFrom: src.resampled ? src.source : null,
      sourceCandlesPerBucket: src.resampled ? src.perBucket : null,
      gaps: q.gaps,
      start: isoOrNull(q.start),
      end: isoOrNull(q.end),
      ...(q.asOf === undefined ? {} : { asOf: iso(q.asOf) }),
      count: k,
    });
    const cursorOf = (next: number | null) => (next === null ? null : codec.encode(next, hash));
    if (format === 'json') {
      // The candles come as the JSON text of each (written by PostgreSQL on the hot path); the
      // answer is put together around them, byte for byte what JSON.stringify writes for the page.
      const page = await readCandlesJson(conn, src, opts);
      const n = page.candles.length;
      const pageOf = (k: number): JsonText => {
        const next = k < n ? page.openTimes(k) : page.next;
        const head = JSON.stringify(headOf(k));
        const candles = (k === n ? page.candles : page.candles.slice(0, k)).join(',');
        return new JsonText(`${head.slice(0, -1)},"candles":[${candles}],"nextCursor":${JSON.stringify(cursorOf(next))}}`);
      };
      return reply(fitPage(n, pageOf, fits));
    }
    const page = await readCandles(conn, src, opts);
    // The first k candles; a page cut short for size continues at the open time of the first one left out.
    const pageOf = (k: number): CandlePage => {
      const candles = page.candles.slice(0, k);
      const next = k < page.candles.length ? page.candles[k]!.openTime : page.next;
      return { ...headOf(k), candles, nextCursor: cursorOf(next) };
    };
    return reply(fitPage(page.candles.length, pageOf, fits));
  },
});

export const latest = defineRoute({
  method: 'GET',
  path: '/v1/candles/latest',
  operationId: 'getLatestCandles',
  tag: 'candles',
  scope: 'read',
  summary: 'The newest closed candle of one or many series',
  query: latestQuerySchema,
  csv: (out: LatestCandles) => ({
    columns: ['exchange', 'symbol', 'interval', ...candleColumns(false)],
    rows: out.series.map((s) => [s.exchange, s.symbol, s.interval, ...(s.candle ? candleRow(s.candle, false) : candleColumns(false).map(() => null))]),
  }),
  responses: { 200: { description: 'One entry per series.', schema: latestSchema }, ...problems(...COMMON, 404) },
  async handle({ query: q, db, reply }) {
    if (q.series && (q.exchange || q.symbol || q.interval)) {
      throw badRequest('give either series or exchange/symbol/interval filters, not both', 'series');
    }
    return reply(await latestClosed(await db(), q.series, q));
  },
});
