import * as z from 'zod';
import { isAligned } from '../candles/intervals.ts';
import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../candles/candle.ts';
import { compareBacktests } from '../backtests/compare.ts';
import { listBacktests, listDynamicParams, listQuerySchema } from '../backtests/list.ts';
import { backtestPageSchema, backtestSchema, comparisonSchema, createBacktestSchema, type Backtest } from '../backtests/record.ts';
import { createBacktest, deleteBacktest, getBacktest } from '../backtests/store.ts';
import { parseJsonBody } from '../http/body.ts';
import { decodeCursor, encodeCursor, queryHash } from '../http/cursor.ts';
import type { CsvValue } from '../http/csv.ts';
import { badRequest } from '../http/problem.ts';
import { listParam } from '../http/query.ts';
import { csv, json, noContent } from '../http/response.ts';
import { listGaps, listMarkets, latestClosed } from './candles/catalog.ts';
import { readCandles } from './candles/read-candles.ts';
import { resolveSource, resolveStored } from './candles/source.ts';
import { defineRoute, type ResponseDoc, type Route } from './route.ts';
import {
  candlePageSchema,
  candlesQuerySchema,
  gapsPageSchema,
  gapsQuerySchema,
  healthSchema,
  latestQuerySchema,
  latestSchema,
  marketsQuerySchema,
  marketsSchema,
  problemSchema,
  type CandleOut,
} from './schemas.ts';

export const API_VERSION = '1.0.0';

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : iso(ms));

const problems = (...statuses: number[]): Record<number, ResponseDoc> => {
  const text: Record<number, string> = {
    400: 'Invalid parameter: the problem names it.',
    403: 'Missing or invalid API key (x-api-key header).',
    404: 'No such series or run.',
    406: 'The Accept header asks for a format this route does not produce.',
    413: 'Body too large.',
    415: 'Body is not application/json.',
    422: 'Body is well-formed JSON but not a valid record: the problem names the field.',
    429: 'Throttled or over quota (usage plan).',
    503: 'Database unavailable; retry after Retry-After seconds.',
  };
  return Object.fromEntries(statuses.map((s) => [s, { description: text[s] ?? 'Error', schema: problemSchema }]));
};
const COMMON = [400, 403, 429, 503];

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
  ...(resampled ? ['source_candles'] : []),
];
const candleRow = (c: CandleOut, resampled: boolean): CsvValue[] => {
  const row: CsvValue[] = [iso(c.openTime), c.openTime, c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.trades, c.closed, c.gap];
  if (resampled) row.push(c.sourceCandles ?? 0);
  return row;
};

const health = defineRoute({
  method: 'GET',
  path: '/v1/health',
  operationId: 'getHealth',
  tag: 'meta',
  apiKey: false,
  summary: 'Liveness and database reachability (no API key needed)',
  responses: { 200: { description: 'Up, and the database answers.', schema: healthSchema }, ...problems(400, 503) },
  async handle({ db }) {
    await (await db()).query('SELECT 1');
    return json(200, { status: 'ok', database: 'ok', version: API_VERSION }, { 'Cache-Control': 'no-store' });
  },
});

let openApiCache: unknown;
const openapi = defineRoute({
  method: 'GET',
  path: '/v1/openapi.json',
  operationId: 'getOpenApi',
  tag: 'meta',
  apiKey: true,
  summary: 'This OpenAPI 3.1 document',
  responses: { 200: { description: 'The OpenAPI document.' }, ...problems(403) },
  async handle() {
    // Imported on demand: building the document is only needed by this route.
    const { buildOpenApi } = await import('./openapi.ts');
    openApiCache ??= buildOpenApi();
    return json(200, openApiCache);
  },
});

const candles = defineRoute({
  method: 'GET',
  path: '/v1/candles',
  operationId: 'getCandles',
  tag: 'candles',
  apiKey: true,
  summary: 'Candle history of one series, ordered by open time, paginated',
  description:
    'Candles with open time in [start, end), oldest first, as exact decimal strings. An interval that is not stored is built from the finest stored ' +
    'interval that divides it (first open, max high, min low, last close, summed volumes) and `resampledFrom` says so. `Accept: text/csv` or ' +
    '`format=csv` returns CSV with a header row; the next cursor is then in the `X-Next-Cursor` header.',
  query: candlesQuerySchema,
  csv: true,
  responses: {
    200: {
      description: 'A page of candles.',
      schema: candlePageSchema,
      csv: true,
      headers: {
        'X-Next-Cursor': 'CSV only: cursor of the next page (absent on the last page).',
        'X-Resampled-From': 'CSV only: the stored interval the candles were built from, when resampled.',
        'X-Gap-Policy': 'CSV only: the gap policy applied.',
      },
    },
    ...problems(...COMMON, 404, 406),
  },
  async handle({ query: q, db, format }) {
    if (q.start !== undefined && q.end !== undefined && q.end <= q.start) {
      throw badRequest(`end (${iso(q.end)}) must be after start (${iso(q.start)})`, 'end', 'inverted-range');
    }
    const hash = queryHash(['candles', q.exchange, q.symbol, q.interval, q.start, q.end, q.gaps]);
    const from = q.cursor
      ? decodeCursor(
          q.cursor,
          hash,
          z.number().int().min(MIN_OPEN_TIME).max(MAX_OPEN_TIME).refine((t) => isAligned(t, q.interval)),
        )
      : undefined;
    const conn = await db();
    const src = await resolveSource(conn, q.exchange, q.symbol, q.interval);
    const page = await readCandles(conn, src, { start: q.start, end: q.end, limit: q.limit, from, gaps: q.gaps });
    const nextCursor = page.next === null ? null : encodeCursor(page.next, hash);
    if (format === 'csv') {
      const headers: Record<string, string> = { 'X-Gap-Policy': q.gaps };
      if (nextCursor) headers['X-Next-Cursor'] = nextCursor;
      if (src.resampled) headers['X-Resampled-From'] = src.source;
      return csv(candleColumns(src.resampled), page.candles.map((c) => candleRow(c, src.resampled)), headers);
    }
    return json(200, {
      exchange: q.exchange,
      symbol: q.symbol,
      interval: q.interval,
      resampledFrom: src.resampled ? src.source : null,
      sourceCandlesPerBucket: src.resampled ? src.perBucket : null,
      gaps: q.gaps,
      start: isoOrNull(q.start),
      end: isoOrNull(q.end),
      count: page.candles.length,
      candles: page.candles,
      nextCursor,
    });
  },
});

const latest = defineRoute({
  method: 'GET',
  path: '/v1/candles/latest',
  operationId: 'getLatestCandles',
  tag: 'candles',
  apiKey: true,
  summary: 'The newest closed candle of one or many series',
  query: latestQuerySchema,
  csv: true,
  responses: { 200: { description: 'One entry per series.', schema: latestSchema, csv: true }, ...problems(...COMMON, 404, 406) },
  async handle({ query: q, db, format }) {
    if (q.series && (q.exchange || q.symbol || q.interval)) {
      throw badRequest('give either series or exchange/symbol/interval filters, not both', 'series');
    }
    const out = await latestClosed(await db(), q.series, q);
    if (format === 'csv') {
      return csv(
        ['exchange', 'symbol', 'interval', ...candleColumns(false)],
        out.series.map((s) => [s.exchange, s.symbol, s.interval, ...(s.candle ? candleRow(s.candle, false) : candleColumns(false).map(() => null))]),
      );
    }
    return json(200, out);
  },
});

const markets = defineRoute({
  method: 'GET',
  path: '/v1/markets',
  operationId: 'listMarkets',
  tag: 'candles',
  apiKey: true,
  summary: 'Stored series with their first and last candle, count and gaps',
  query: marketsQuerySchema,
  csv: true,
  responses: { 200: { description: 'Every matching series.', schema: marketsSchema, csv: true }, ...problems(...COMMON, 406) },
  async handle({ query: q, db, format }) {
    const out = await listMarkets(await db(), q);
    if (format === 'csv') {
      return csv(
        ['exchange', 'symbol', 'interval', 'candles', 'first_open_time', 'last_open_time', 'gap_count', 'missing_candles', 'largest_gap_candles'],
        out.markets.map((m) => [
          m.exchange,
          m.symbol,
          m.interval,
          m.candles,
          isoOrNull(m.firstOpenTime),
          isoOrNull(m.lastOpenTime),
          m.gapCount,
          m.missingCandles,
          m.largestGapCandles,
        ]),
      );
    }
    return json(200, out);
  },
});

const gaps = defineRoute({
  method: 'GET',
  path: '/v1/gaps',
  operationId: 'listGaps',
  tag: 'candles',
  apiKey: true,
  summary: 'Runs of missing candles in one stored series',
  query: gapsQuerySchema,
  csv: true,
  responses: { 200: { description: 'A page of gaps, oldest first.', schema: gapsPageSchema, csv: true }, ...problems(...COMMON, 404, 406) },
  async handle({ query: q, db, format }) {
    if (q.start !== undefined && q.end !== undefined && q.end <= q.start) {
      throw badRequest(`end (${iso(q.end)}) must be after start (${iso(q.start)})`, 'end', 'inverted-range');
    }
    const hash = queryHash(['gaps', q.exchange, q.symbol, q.interval, q.start, q.end]);
    const from = q.cursor ? decodeCursor(q.cursor, hash, z.number().int().min(MIN_OPEN_TIME).max(MAX_OPEN_TIME)) : undefined;
    const conn = await db();
    const seriesId = await resolveStored(conn, q.exchange, q.symbol, q.interval);
    const page = await listGaps(conn, seriesId, q.interval, { start: q.start, end: q.end, limit: q.limit, from });
    const nextCursor = page.next === null ? null : encodeCursor(page.next, hash);
    if (format === 'csv') {
      return csv(
        ['start', 'end', 'missing_candles', 'confirmed_by_exchange'],
        page.gaps.map((g) => [iso(g.start), iso(g.end), g.missingCandles, g.confirmedByExchange]),
        nextCursor ? { 'X-Next-Cursor': nextCursor } : {},
      );
    }
    return json(200, { exchange: q.exchange, symbol: q.symbol, interval: q.interval, gaps: page.gaps, nextCursor });
  },
});

const IDEMPOTENCY_RE = /^[\x21-\x7e]{1,200}$/;
const idempotencyHeader = z
  .string()
  .regex(IDEMPOTENCY_RE, 'must be 1-200 visible ASCII characters, e.g. a UUID')
  .meta({ description: 'Makes retries safe: a repeated POST with the same key and body returns the run the first one created (200) instead of a new one.' });

const createRun = defineRoute({
  method: 'POST',
  path: '/v1/backtests',
  operationId: 'createBacktest',
  tag: 'backtests',
  apiKey: true,
  summary: 'Store an immutable backtest run',
  description:
    'Records a run with the fingerprint of the stored candles its instruments and range cover. Metrics must be finite and within their ' +
    'definitions (ratios are fractions: 0.25 = 25 %). Send an `Idempotency-Key` so retries create one run.',
  headers: [{ name: 'Idempotency-Key', description: 'Retry-safety key, e.g. a UUID.', schema: idempotencyHeader }],
  body: createBacktestSchema,
  responses: {
    201: { description: 'Created; Location names the run.', schema: backtestSchema, headers: { Location: 'URL path of the new run.' } },
    200: {
      description: 'A retry of an earlier request with the same Idempotency-Key: the run it created.',
      schema: backtestSchema,
      headers: { 'Idempotent-Replayed': '`true`' },
    },
    ...problems(...COMMON, 413, 415, 422),
  },
  async handle({ req, db, now }) {
    const rawKey = req.headers['idempotency-key'];
    let idempotencyKey: string | undefined;
    if (rawKey !== undefined) {
      const k = idempotencyHeader.safeParse(rawKey);
      if (!k.success) throw badRequest(`Idempotency-Key ${k.error.issues[0]?.message}`, 'Idempotency-Key');
      idempotencyKey = req.apiKeyId ? `${req.apiKeyId}/${k.data}` : k.data;
    }
    const body = parseJsonBody(req.body, req.headers['content-type'], createBacktestSchema);
    const { run, created } = await createBacktest(await db(), body, { idempotencyKey, now: now() });
    return created
      ? json(201, run, { Location: `/v1/backtests/${run.id}` })
      : json(200, run, { 'Idempotent-Replayed': 'true', Location: `/v1/backtests/${run.id}` });
  },
});

const metricColumns = (runs: Backtest[]) => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
const paramText = (v: unknown): CsvValue => (v === undefined ? null : v === null || typeof v !== 'object' ? (v as CsvValue) : JSON.stringify(v));

const listRuns = defineRoute({
  method: 'GET',
  path: '/v1/backtests',
  operationId: 'listBacktests',
  tag: 'backtests',
  apiKey: true,
  summary: 'List and filter runs',
  description:
    'Filters combine with AND; `or.<n>.` groups add alternatives (see the parameters). Default order is newest first. ' +
    'Example: `strategy=sma_cross&metric.sharpe.gte=1&or.1.tag=prod&or.2.param.fast.lte=10`. Page size: default 100, at most 1000.',
  query: listQuerySchema,
  dynamicQuery: listDynamicParams,
  csv: true,
  responses: { 200: { description: 'A page of runs (without equity curves and trades).', schema: backtestPageSchema, csv: true }, ...problems(...COMMON, 406) },
  async handle({ query, dynamic, db, format }) {
    const page = await listBacktests(await db(), query, dynamic);
    if (format === 'csv') {
      const metricNames = metricColumns(page.runs);
      const paramNames = [...new Set(page.runs.flatMap((r) => Object.keys(r.parameters)))].sort();
      return csv(
        ['id', 'created_at', 'strategy', 'strategy_version', 'start', 'end', 'tags', 'fingerprint', ...metricNames.map((m) => `metric.${m}`), ...paramNames.map((p) => `param.${p}`)],
        page.runs.map((r) => [
          r.id,
          r.createdAt,
          r.strategy,
          r.strategyVersion,
          r.start,
          r.end,
          r.tags.join(';'),
          r.fingerprint.value,
          ...metricNames.map((m) => r.metrics[m] ?? null),
          ...paramNames.map((p) => paramText(r.parameters[p])),
        ]),
        page.nextCursor ? { 'X-Next-Cursor': page.nextCursor } : {},
      );
    }
    return json(200, page);
  },
});

const uuid = z.uuid({ error: 'is not a backtest run id (a UUID)' });
const idParams = z.object({ id: uuid.meta({ description: 'Run id.' }) });

const compareRuns = defineRoute({
  method: 'GET',
  path: '/v1/backtests/compare',
  operationId: 'compareBacktests',
  tag: 'backtests',
  apiKey: true,
  summary: 'Compare 2-10 runs: metrics side by side, differing parameters, candle data changes',
  query: z.object({
    ids: listParam(uuid, { min: 2, max: 10, description: 'Run ids, 2 to 10.' }).refine((ids) => new Set(ids).size === ids.length, 'lists a run twice'),
    format: listQuerySchema.shape.format,
  }),
  csv: true,
  responses: { 200: { description: 'The comparison.', schema: comparisonSchema, csv: true }, ...problems(...COMMON, 404, 406) },
  async handle({ query, db, format }) {
    const cmp = await compareBacktests(await db(), query.ids);
    if (format === 'csv') {
      return csv(
        ['kind', 'name', ...cmp.runs.map((r) => r.id)],
        [
          ['run', 'strategy', ...cmp.runs.map((r) => r.strategy)],
          ['run', 'strategy_version', ...cmp.runs.map((r) => r.strategyVersion)],
          ...cmp.metrics.map((m) => ['metric', m.name, ...m.values]),
          ...cmp.parameters.differing.map((p) => ['param', p.name, ...p.values.map(paramText)]),
          ['data', 'changed', ...cmp.data.map((d) => d.changed)],
        ],
      );
    }
    return json(200, cmp);
  },
});

const getRun = defineRoute({
  method: 'GET',
  path: '/v1/backtests/{id}',
  operationId: 'getBacktest',
  tag: 'backtests',
  apiKey: true,
  summary: 'One run',
  pathParams: idParams,
  query: z.object({
    include: listParam(z.enum(['equityCurve', 'trades'], { error: 'must be equityCurve or trades' }), {
      max: 2,
      description: 'Also return the equity curve and/or the trades.',
    }).optional(),
  }),
  responses: { 200: { description: 'The run.', schema: backtestSchema }, ...problems(...COMMON, 404) },
  async handle({ params, query, db }) {
    const include = new Set(query.include ?? []);
    return json(200, await getBacktest(await db(), params.id, { equityCurve: include.has('equityCurve'), trades: include.has('trades') }));
  },
});

const deleteRun = defineRoute({
  method: 'DELETE',
  path: '/v1/backtests/{id}',
  operationId: 'deleteBacktest',
  tag: 'backtests',
  apiKey: true,
  summary: 'Delete a run',
  pathParams: idParams,
  responses: { 204: { description: 'Deleted.' }, ...problems(...COMMON, 404) },
  async handle({ params, db }) {
    await deleteBacktest(await db(), params.id);
    return noContent();
  },
});

export const ROUTES: readonly Route[] = [health, openapi, candles, latest, markets, gaps, createRun, listRuns, compareRuns, getRun, deleteRun];

/** Method, path and key requirement of every route: what the CDK stack and the local server build from. */
export const ROUTE_TABLE = ROUTES.map((r) => ({ method: r.method, path: r.path, apiKey: r.apiKey }));

