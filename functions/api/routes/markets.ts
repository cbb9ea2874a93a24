import * as z from 'zod';
import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../../candles/candle.ts';
import { queryHash } from '../../http/cursor.ts';
import { nextCursorHeader } from '../../http/csv.ts';
import { checkTimeRange } from '../../http/query.ts';
import { iso, isoOrNull } from '../../http/time.ts';
import { seriesExtents, storedGaps } from '../../store/candles.ts';
import { resolveStored } from '../candles/source.ts';
import { COMMON, defineRoute, problems } from '../route.ts';
import { gapsPageSchema, gapsQuerySchema, marketsQuerySchema, marketsSchema, type GapPage, type Markets } from '../schemas.ts';

export const markets = defineRoute({
  method: 'GET',
  path: '/v1/markets',
  operationId: 'listMarkets',
  tag: 'candles',
  apiKey: true,
  summary: 'Stored series with their first and last candle, count, gaps and dead-lettered messages',
  query: marketsQuerySchema,
  csv: (out: Markets) => ({
    columns: [
      'exchange',
      'symbol',
      'interval',
      'candles',
      'first_open_time',
      'last_open_time',
      'gap_count',
      'missing_candles',
      'largest_gap_candles',
      'dead_lettered_messages',
      'dead_lettered_candles',
    ],
    rows: out.markets.map((m) => [
      m.exchange,
      m.symbol,
      m.interval,
      m.candles,
      isoOrNull(m.firstOpenTime),
      isoOrNull(m.lastOpenTime),
      m.gapCount,
      m.missingCandles,
      m.largestGapCandles,
      m.deadLetteredMessages,
      m.deadLetteredCandles,
    ]),
  }),
  responses: { 200: { description: 'Every matching series.', schema: marketsSchema }, ...problems(...COMMON) },
  async handle({ query: q, db, reply }) {
    return reply({ markets: await seriesExtents(await db(), q) });
  },
});

export const gaps = defineRoute({
  method: 'GET',
  path: '/v1/gaps',
  operationId: 'listGaps',
  tag: 'candles',
  apiKey: true,
  summary: 'Runs of missing candles in one stored series',
  query: gapsQuerySchema,
  csv: (page: GapPage) => ({
    columns: ['start', 'end', 'missing_candles', 'kind', 'confirmed_by_exchange', 'dead_lettered_messages'],
    rows: page.gaps.map((g) => [iso(g.start), iso(g.end), g.missingCandles, g.kind, g.confirmedByExchange, g.deadLetteredMessages]),
    headers: nextCursorHeader(page.nextCursor),
  }),
  responses: { 200: { description: 'A page of gaps, oldest first.', schema: gapsPageSchema }, ...problems(...COMMON, 404) },
  async handle({ query: q, db, cursors, reply }) {
    checkTimeRange(q);
    const codec = await cursors();
    const hash = queryHash(['gaps', q.exchange, q.symbol, q.interval, q.start, q.end]);
    const from = q.cursor ? codec.decode(q.cursor, hash, z.number().int().min(MIN_OPEN_TIME).max(MAX_OPEN_TIME)) : undefined;
    const conn = await db();
    const seriesId = await resolveStored(conn, q.exchange, q.symbol, q.interval);
    const page = await storedGaps(conn, seriesId, q.interval, { start: q.start, end: q.end, limit: q.limit, from });
    const nextCursor = page.next === null ? null : codec.encode(page.next, hash);
    return reply({ exchange: q.exchange, symbol: q.symbol, interval: q.interval, gaps: page.gaps, nextCursor });
  },
});
