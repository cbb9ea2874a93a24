import * as z from 'zod';
import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../../candles/candle.ts';
import { queryHash } from '../../http/cursor.ts';
import { nextCursorHeader } from '../../http/csv.ts';
import { checkTimeRange } from '../../http/query.ts';
import { iso, isoOrNull } from '../../http/time.ts';
import { parseJsonBody } from '../../http/body.ts';
import { json } from '../../http/response.ts';
import { follow, MarketsRefused, refusals } from '../../markets/follow.ts';
import { seriesExtents, storedGaps } from '../../store/candles.ts';
import { changeMarket, listMarkets, removeMarket } from '../../store/markets.ts';
import { firstStored, seriesExpiry, type SeriesExpiry } from '../../store/retention.ts';
import { INTERVAL_MS } from '../../candles/intervals.ts';
import { NotFound, Unprocessable } from '../../errors.ts';
import { resolveStored } from '../candles/source.ts';
import { COMMON, defineRoute, problems } from '../route.ts';
import {
  followBodySchema,
  followedMarketSchema,
  followedMarketsSchema,
  gapsPageSchema,
  gapsQuerySchema,
  marketChangeSchema,
  marketsQuerySchema,
  marketsSchema,
  removalSchema,
  removeMarketQuerySchema,
  retentionOutside,
  type GapPage,
  type Markets,
} from '../schemas.ts';

export const markets = defineRoute({
  method: 'GET',
  path: '/v1/markets',
  operationId: 'listMarkets',
  tag: 'candles',
  scope: 'read',
  summary: 'Stored and followed series: state, first, last and newest closed candle, lag, count, gaps, dead-lettered messages and retention',
  query: marketsQuerySchema,
  csv: (out: Markets) => ({
    columns: [
      'exchange',
      'symbol',
      'interval',
      'state',
      'candles',
      'first_open_time',
      'last_open_time',
      'newest_closed_open_time',
      'lag_ms',
      'pulled_at',
      'last_error',
      'gap_count',
      'missing_candles',
      'largest_gap_candles',
      'dead_lettered_messages',
      'dead_lettered_candles',
      'retention_days',
      'expired_before',
      'expired_candles',
    ],
    rows: out.markets.map((m) => [
      m.exchange,
      m.symbol,
      m.interval,
      m.state,
      m.candles,
      isoOrNull(m.firstOpenTime),
      isoOrNull(m.lastOpenTime),
      isoOrNull(m.newestClosedOpenTime),
      m.lagMs,
      isoOrNull(m.pulledAt),
      m.lastError,
      m.gapCount,
      m.missingCandles,
      m.largestGapCandles,
      m.deadLetteredMessages,
      m.deadLetteredCandles,
      m.retentionDays,
      isoOrNull(m.expiredBefore),
      m.expiredCandles,
    ]),
  }),
  responses: { 200: { description: 'Every matching series.', schema: marketsSchema }, ...problems(...COMMON) },
  async handle({ query: q, db, reply, now }) {
    return reply({ markets: await seriesExtents(await db(), q, now()) });
  },
});

export const gaps = defineRoute({
  method: 'GET',
  path: '/v1/gaps',
  operationId: 'listGaps',
  tag: 'candles',
  scope: 'read',
  summary: 'Runs of missing candles in one stored series',
  query: gapsQuerySchema,
  csv: (page: GapPage) => ({
    columns: ['start', 'end', 'missing_candles', 'kind', 'confirmed_by_exchange', 'dead_lettered_messages'],
    rows: page.gaps.map((g) => [iso(g.start), iso(g.end), g.missingCandles, g.kind, g.confirmedByExchange, g.deadLetteredMessages]),
    headers: nextCursorHeader(page.nextCursor),
  }),
  responses: { 200: { description: 'A page of gaps, oldest first.', schema: gapsPageSchema }, ...problems(...COMMON, 404) },
  async handle({ query: q, db, cursors, reply, now }) {
    checkTimeRange(q);
    const codec = await cursors();
    const hash = queryHash(['gaps', q.exchange, q.symbol, q.interval, q.start, q.end]);
    const from = q.cursor ? codec.decode(q.cursor, hash, z.number().int().min(MIN_OPEN_TIME).max(MAX_OPEN_TIME)) : undefined;
    const conn = await db();
    const seriesId = await resolveStored(conn, q.exchange, q.symbol, q.interval);
    const expiry = await seriesExpiry(conn, seriesId, q.interval, now());
    const page = await storedGaps(conn, seriesId, q.interval, { start: q.start, end: q.end, limit: q.limit, from, expiredBefore: expiry.horizon });
    const nextCursor = page.next === null ? null : codec.encode(page.next, hash);
    // The range the retention job deleted, before the first stored candle: on the first page, expired.
    const lead = expiry.firstExpired === undefined ? undefined : expiredLead(expiry, await firstStored(conn, seriesId), INTERVAL_MS[q.interval]);
    const gaps = !q.cursor && lead && (q.start === undefined || lead.end > q.start) && (q.end === undefined || lead.start < q.end) ? [lead, ...page.gaps] : page.gaps;
    return reply({ exchange: q.exchange, symbol: q.symbol, interval: q.interval, gaps, nextCursor });
  },
});

export const followMarkets = defineRoute({
  method: 'POST',
  path: '/v1/markets',
  operationId: 'followMarkets',
  tag: 'markets',
  scope: 'admin',
  summary: 'Follow markets: pulled from the next tick on, no redeploy',
  description:
    'All or nothing: an interval the exchange lacks, or a symbol it does not list (asked of the exchange itself), refuses the whole ' +
    'request with 422 naming each refused market in the exchange\'s own words. A market already followed gains the intervals it lacked; ' +
    'a removed one is followed again. Paused markets stay paused.',
  body: followBodySchema,
  responses: {
    201: { description: 'The followed markets as stored.', schema: followedMarketsSchema },
    ...problems(...COMMON, 413, 415, 422),
  },
  async handle({ req, pool, exchanges }) {
    const body = parseJsonBody(req.body, req.headers['content-type'], followBodySchema);
    const markets = await follow(await pool(), await exchanges(), body.markets.map(({ retentionDays, ...m }) => ({ ...m, retention: retentionDays })));
    return json(201, { markets });
  },
});

export const changeFollowedMarket = defineRoute({
  method: 'PATCH',
  path: '/v1/markets',
  operationId: 'changeMarket',
  tag: 'markets',
  scope: 'admin',
  summary: 'Change the intervals or retention of a followed market, pause or resume it',
  body: marketChangeSchema,
  responses: {
    200: { description: 'The market as stored.', schema: followedMarketSchema },
    ...problems(...COMMON, 404, 413, 415, 422),
  },
  async handle({ req, pool, exchanges }) {
    const change = parseJsonBody(req.body, req.headers['content-type'], marketChangeSchema);
    const db = await pool();
    if (change.intervals) {
      // Only the intervals need checking, against the exchange's declaration: the market is already followed.
      const refused = await refusals(await exchanges(), [{ exchange: change.exchange, symbol: change.symbol, intervals: change.intervals }], { listed: () => true });
      if (refused.length) throw new MarketsRefused(refused);
    }
    if (change.retentionDays) {
      // An interval's retention is set on an interval the market follows (after this change).
      const [current] = await listMarkets(db, { exchange: change.exchange, symbol: change.symbol, active: true });
      if (!current) throw notFollowed(change.exchange, change.symbol);
      const intervals = change.intervals ?? current.intervals;
      const outside = retentionOutside(change.retentionDays, intervals);
      if (outside.length) {
        throw new Unprocessable(
          `retentionDays: ${change.exchange} ${change.symbol} does not follow ${outside.join(' ')} (it follows ${intervals.join(' ')}); ` +
            'follow the interval first, or set the market\'s `default`',
          'retentionDays',
          'interval-not-followed',
        );
      }
    }
    if (!(await changeMarket(db, change.exchange, change.symbol, { ...change, retention: change.retentionDays }))) throw notFollowed(change.exchange, change.symbol);
    const [market] = await listMarkets(db, { exchange: change.exchange, symbol: change.symbol });
    return json(200, market);
  },
});

export const removeFollowedMarket = defineRoute({
  method: 'DELETE',
  path: '/v1/markets',
  operationId: 'removeMarket',
  tag: 'markets',
  scope: 'admin',
  summary: 'Stop following a market; its stored candles are kept unless purge=true',
  query: removeMarketQuerySchema,
  responses: { 200: { description: 'What was removed and what was kept.', schema: removalSchema }, ...problems(...COMMON, 404) },
  async handle({ query: q, pool }) {
    const removal = await removeMarket(await pool(), q.exchange, q.symbol, { purge: q.purge });
    if (!removal) throw notFollowed(q.exchange, q.symbol);
    const detail = q.purge
      ? `${q.exchange} ${q.symbol} is no longer followed; its ${removal.purgedCandles} stored candles were deleted`
      : `${q.exchange} ${q.symbol} is no longer followed; its ${removal.keptCandles} stored candles are kept (remove with purge=true to delete them)`;
    return json(200, { exchange: q.exchange, symbol: q.symbol, purged: q.purge, ...removal, detail });
  },
});

export const followedMarkets = defineRoute({
  method: 'GET',
  path: '/v1/markets/followed',
  operationId: 'listFollowedMarkets',
  tag: 'markets',
  scope: 'read',
  summary: 'Followed markets with their intervals, start and paused flag (removed ones with removedAt)',
  query: marketsQuerySchema.pick({ exchange: true, symbol: true }),
  responses: { 200: { description: 'Every market ever followed.', schema: followedMarketsSchema }, ...problems(...COMMON) },
  async handle({ query: q, db }) {
    return json(200, { markets: await listMarkets(await db(), q) });
  },
});

function expiredLead(expiry: SeriesExpiry, stored: number | undefined, step: number): GapPage['gaps'][number] | undefined {
  if (expiry.firstExpired === undefined || expiry.horizon === undefined) return undefined;
  const end = Math.min(expiry.horizon, stored ?? expiry.horizon);
  if (end <= expiry.firstExpired) return undefined;
  const start = expiry.firstExpired;
  return { start, end, missingCandles: Math.round((end - start) / step), kind: 'expired', confirmedByExchange: false, deadLetteredMessages: 0 };
}

const notFollowed = (exchange: string, symbol: string) =>
  new NotFound(`${exchange} ${symbol} is not followed; GET /v1/markets/followed lists the followed markets`, 'symbol', 'market-not-followed');
