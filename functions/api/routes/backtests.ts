import * as z from 'zod';
import { compareBacktests } from '../../backtests/compare.ts';
import { listBacktests, listDynamicParams, listQuerySchema } from '../../backtests/list.ts';
import {
  backtestPageSchema,
  backtestSchema,
  comparisonSchema,
  createBacktestSchema,
  equityCurvePageSchema,
  MAX_POINTS,
  tradePageSchema,
  type BacktestPage,
  type Comparison,
} from '../../backtests/record.ts';
import { backtestPart, createBacktest, deleteBacktest, getBacktest } from '../../backtests/runs.ts';
import { queryHash } from '../../http/cursor.ts';
import { fitPage } from '../../http/size.ts';
import { parseJsonBody } from '../../http/body.ts';
import { nextCursorHeader, type CsvValue } from '../../http/csv.ts';
import { badRequest, HttpProblem } from '../../http/problem.ts';
import { cursorParamSchema, limitParam, listParam } from '../../http/query.ts';
import { json, noContent } from '../../http/response.ts';
import { COMMON, defineRoute, problems } from '../route.ts';

const IDEMPOTENCY_RE = /^[\x21-\x7e]{1,200}$/;
const idempotencyHeader = z
  .string()
  .regex(IDEMPOTENCY_RE, 'must be 1-200 visible ASCII characters, e.g. a UUID')
  .meta({ description: 'Makes retries safe: a repeated POST with the same key and body returns the run the first one created (200) instead of a new one.' });

export const createRun = defineRoute({
  method: 'POST',
  path: '/v1/backtests',
  operationId: 'createBacktest',
  tag: 'backtests',
  scope: 'write',
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

const sortedKeys = (objects: readonly object[]) => [...new Set(objects.flatMap((o) => Object.keys(o)))].sort();
const paramText = (v: unknown): CsvValue => (v === undefined ? null : v === null || typeof v !== 'object' ? (v as CsvValue) : JSON.stringify(v));
/** A run's own value under a client-chosen name (`constructor` is a name, not Object's constructor). */
const own = <T>(o: Record<string, T>, name: string): T | undefined => (Object.hasOwn(o, name) ? o[name] : undefined);

export const listRuns = defineRoute({
  method: 'GET',
  path: '/v1/backtests',
  operationId: 'listBacktests',
  tag: 'backtests',
  scope: 'read',
  summary: 'List and filter runs',
  description:
    'Filters combine with AND; `or.<n>.` groups add alternatives (see the parameters). Default order is newest first. ' +
    'Example: `strategy=sma_cross&metric.sharpe.gte=1&or.1.tag=prod&or.2.param.fast.lte=10`. Page size: default 100, at most 1000.',
  query: listQuerySchema,
  dynamicQuery: listDynamicParams,
  csv: (page: BacktestPage) => {
    const metricNames = sortedKeys(page.runs.map((r) => r.metrics));
    const paramNames = sortedKeys(page.runs.map((r) => r.parameters));
    return {
      columns: ['id', 'created_at', 'strategy', 'strategy_version', 'start', 'end', 'tags', 'fingerprint', ...metricNames.map((m) => `metric.${m}`), ...paramNames.map((p) => `param.${p}`)],
      rows: page.runs.map((r) => [
        r.id,
        r.createdAt,
        r.strategy,
        r.strategyVersion,
        r.start,
        r.end,
        r.tags.join(';'),
        r.fingerprint.value,
        ...metricNames.map((m) => own(r.metrics, m) ?? null),
        ...paramNames.map((p) => paramText(own(r.parameters, p))),
      ]),
      headers: nextCursorHeader(page.nextCursor),
    };
  },
  responses: { 200: { description: 'A page of runs (without equity curves and trades).', schema: backtestPageSchema }, ...problems(...COMMON) },
  async handle({ query, dynamic, db, cursors, reply, fits }) {
    return reply(await listBacktests(await db(), await cursors(), query, dynamic, fits));
  },
});

// PostgreSQL reads a UUID in any case and answers in lower case: ids are compared in that form.
const uuid = z
  .uuid({ error: 'is not a backtest run id (a UUID)' })
  .transform((id) => id.toLowerCase());
const idParams = z.object({ id: uuid.meta({ description: 'Run id.' }) });

export const compareRuns = defineRoute({
  method: 'GET',
  path: '/v1/backtests/compare',
  operationId: 'compareBacktests',
  tag: 'backtests',
  scope: 'read',
  summary: 'Compare 2-10 runs: metrics side by side, differing parameters, candle data changes',
  query: z.object({
    ids: listParam(uuid, { min: 2, max: 10, description: 'Run ids, 2 to 10.' }).refine((ids) => new Set(ids).size === ids.length, 'lists a run twice'),
    format: listQuerySchema.shape.format,
  }),
  csv: (cmp: Comparison) => ({
    columns: ['kind', 'name', ...cmp.runs.map((r) => r.id)],
    rows: [
      ['run', 'strategy', ...cmp.runs.map((r) => r.strategy)],
      ['run', 'strategy_version', ...cmp.runs.map((r) => r.strategyVersion)],
      ...cmp.metrics.map((m) => ['metric', m.name, ...m.values]),
      ...cmp.parameters.differing.map((p) => ['param', p.name, ...p.values.map(paramText)]),
      ['data', 'changed', ...cmp.data.map((d) => d.changed)],
      ['data', 'expired', ...cmp.data.map((d) => d.expired)],
    ],
  }),
  responses: { 200: { description: 'The comparison.', schema: comparisonSchema }, ...problems(...COMMON, 404) },
  async handle({ query, db, reply }) {
    return reply(await compareBacktests(await db(), query.ids));
  },
});

export const getRun = defineRoute({
  method: 'GET',
  path: '/v1/backtests/{id}',
  operationId: 'getBacktest',
  tag: 'backtests',
  scope: 'read',
  summary: 'One run',
  pathParams: idParams,
  query: z.object({
    include: listParam(z.enum(['equityCurve', 'trades'], { error: 'must be equityCurve or trades' }), {
      max: 2,
      description: 'Also return the equity curve and/or the trades.',
    }).optional(),
  }),
  responses: { 200: { description: 'The run.', schema: backtestSchema }, ...problems(...COMMON, 404, 422) },
  async handle({ params, query, db, reply, fits }) {
    const include = new Set(query.include ?? []);
    const run = await getBacktest(await db(), params.id, { equityCurve: include.has('equityCurve'), trades: include.has('trades') });
    if (!fits(run)) {
      const parts = [...include].map((p) => `/v1/backtests/${run.id}/${p === 'trades' ? 'trades' : 'equity-curve'}`);
      throw new HttpProblem(422, `the run with its ${[...include].join(' and ')} is more than one answer can carry; page them with GET ${parts.join(' and ')}`, {
        parameter: 'include',
        slug: 'response-too-large',
      });
    }
    return reply(run);
  },
});

/**
 * A paged route over a run's trades or equity curve, which can be too big for one answer: pages of
 * up to `limit` entries, cut shorter when the answer would pass the size budget.
 */
function runPartRoute<K extends 'trades' | 'equityCurve'>(part: K, path: string, operationId: string, schema: z.ZodType) {
  const name = part === 'trades' ? 'trades' : 'equity curve';
  return defineRoute({
    method: 'GET',
    path: `/v1/backtests/{id}/${path}`,
    operationId,
    tag: 'backtests',
    scope: 'read',
    summary: `A run's ${name}, paged`,
    description: `In stored order. Pages hold up to \`limit\` entries, fewer when more would not fit in one answer; follow \`nextCursor\`.`,
    pathParams: idParams,
    query: z.object({ limit: limitParam(1000, 10_000), cursor: cursorParamSchema }),
    responses: { 200: { description: `A page of the run's ${name}.`, schema }, ...problems(...COMMON, 404) },
    async handle({ params, query, db, cursors, fits, reply }) {
      const codec = await cursors();
      const hash = queryHash([path, params.id]);
      const after = query.cursor ? codec.decode(query.cursor, hash, z.number().int().min(0).max(MAX_POINTS)) : 0;
      const { items, total } = await backtestPart(await db(), params.id, part, after, query.limit);
      const pageOf = (k: number) => ({
        id: params.id,
        [part]: items.slice(0, k),
        nextCursor: after + k < total ? codec.encode(after + k, hash) : null,
      });
      // One entry always fits: a trade is capped at MAX_TRADE_BYTES, a curve point is two numbers.
      return reply(fitPage(items.length, pageOf, fits));
    },
  });
}

export const runTrades = runPartRoute('trades', 'trades', 'getBacktestTrades', tradePageSchema);
export const runEquityCurve = runPartRoute('equityCurve', 'equity-curve', 'getBacktestEquityCurve', equityCurvePageSchema);

export const deleteRun = defineRoute({
  method: 'DELETE',
  path: '/v1/backtests/{id}',
  operationId: 'deleteBacktest',
  tag: 'backtests',
  scope: 'admin',
  summary: 'Delete a run',
  pathParams: idParams,
  responses: { 204: { description: 'Deleted.' }, ...problems(...COMMON, 404) },
  async handle({ params, db }) {
    await deleteBacktest(await db(), params.id);
    return noContent();
  },
});
