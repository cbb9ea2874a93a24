import * as z from 'zod';
import { exchangeSchema, symbolSchema } from '../candles/candle.ts';
import { INTERVALS, intervalSchema } from '../candles/intervals.ts';
import { retentionDaysValue } from '../config/markets.ts';
import { cursorParamSchema, formatParam, limitParam, listParam, timeParam } from '../http/query.ts';

/**
 * The zod schemas of the API's requests and responses. The same objects validate requests, type
 * the client, and generate the OpenAPI document, so the three cannot drift apart.
 * Response schemas are registered under a component name in `responseRegistry`.
 */
export const responseRegistry = z.registry<{ id: string; description?: string }>();
export const requestRegistry = z.registry<{ id: string; description?: string }>();

export const problemSchema = z
  .object({
    type: z.string().meta({ description: 'A URI naming the kind of problem, stable for programs to branch on.' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().meta({ description: 'What went wrong and how to fix it, for people.' }),
    parameter: z.string().optional().meta({ description: 'The offending query parameter, header or body field (dotted path).' }),
    errors: z.array(z.object({ parameter: z.string(), detail: z.string() })).optional(),
    requiredScope: z.enum(['read', 'write', 'admin']).optional().meta({ description: "On a 403 for a key whose scope is too weak: the scope the route needs." }),
    requestId: z.string().optional(),
  })
  .meta({ description: 'RFC 9457 problem details.' });
responseRegistry.add(problemSchema, { id: 'Problem' });

// ---- query parameters ----

export const exchangeParam = exchangeSchema.meta({ description: 'Exchange id.' });
export const symbolParam = symbolSchema.meta({
  description: 'Unified symbol BASE/QUOTE, e.g. `BTC/USDT` (a query parameter, so `/` needs no escaping).',
  examples: ['BTC/USDT'],
});
export const intervalParam = intervalSchema.meta({
  description: 'Candle interval. Intervals that are not stored are built from the coarsest stored interval that divides them.',
});
export const gapPolicySchema = z.enum(['omit', 'null', 'ffill'], {
  error: (i) => `unknown gap policy ${JSON.stringify(i.input)}; expected omit, null or ffill`,
});
export type GapPolicy = z.infer<typeof gapPolicySchema>;

export const cursorParam = cursorParamSchema;

export const candlesQuerySchema = z.object({
  exchange: exchangeParam,
  symbol: symbolParam,
  interval: intervalParam,
  start: timeParam('First open time to return (inclusive); default: the first stored candle.').optional(),
  end: timeParam('Open time to stop before (exclusive); default: no limit.').optional(),
  limit: limitParam(),
  cursor: cursorParam,
  gaps: gapPolicySchema
    .optional()
    .transform((g) => g ?? 'omit')
    .meta({
      description:
        'What to do with missing buckets between the first and last stored candle of the range: `omit` (default) leaves them out; ' +
        '`null` returns a row with null prices and volumes; `ffill` repeats the previous close with zero volume. Filled rows have `gap: true` and `closed: false`.',
    }),
  asOf: timeParam(
    'Point-in-time read: the candles as stored at this moment (ISO 8601 or epoch ms), rebuilt from the restatement history; candles first stored ' +
      'after it are absent. Resampled intervals are built from the stored source, never from rollups. A cursor holds to the asOf it was issued for.',
  ).optional(),
  format: formatParam,
});
export type CandlesQuery = z.output<typeof candlesQuerySchema>;

const seriesRefRe = /^([a-z]+):([A-Z0-9]{1,20}\/[A-Z0-9]{1,20}):(\w+)$/;
export const seriesRefSchema = z
  .string()
  .regex(seriesRefRe, 'expected exchange:BASE/QUOTE:interval such as binance:BTC/USDT:1m')
  .transform((s, ctx) => {
    const [, exchange, symbol, interval] = seriesRefRe.exec(s)!;
    const e = exchangeSchema.safeParse(exchange);
    const i = intervalSchema.safeParse(interval);
    if (!e.success || !i.success) {
      ctx.issues.push({ code: 'custom', input: s, message: (e.error ?? i.error)!.issues[0]!.message });
      return z.NEVER;
    }
    return { exchange: e.data, symbol: symbol!, interval: i.data };
  });

export const latestQuerySchema = z.object({
  series: listParam(seriesRefSchema, {
    max: 100,
    description: 'Series as `exchange:BASE/QUOTE:interval`, up to 100. Without it, every series matching exchange/symbol/interval.',
  }).optional(),
  exchange: exchangeParam.optional(),
  symbol: symbolParam.optional(),
  interval: intervalSchema.optional().meta({ description: 'Only series of this stored interval.' }),
  format: formatParam,
});

export const marketsQuerySchema = z.object({
  exchange: exchangeParam.optional(),
  symbol: symbolParam.optional(),
  interval: intervalSchema.optional().meta({ description: 'Only series of this stored interval.' }),
  format: formatParam,
});

export const gapsQuerySchema = z.object({
  exchange: exchangeParam,
  symbol: symbolParam,
  interval: intervalSchema.meta({ description: 'A stored interval.' }),
  start: timeParam('Only gaps ending after this time.').optional(),
  end: timeParam('Only gaps starting before this time.').optional(),
  limit: limitParam(),
  cursor: cursorParam,
  format: formatParam,
});

// ---- responses ----

const ms = (description: string) => z.number().int().meta({ description: `${description} (epoch milliseconds, UTC)` });
const decimal = z.string().meta({ description: 'Exact decimal as text.', examples: ['68123.45'] });

export const candleSchema = z.object({
  openTime: ms('Open time of the candle'),
  open: decimal.nullable(),
  high: decimal.nullable(),
  low: decimal.nullable(),
  close: decimal.nullable(),
  volume: decimal.nullable(),
  quoteVolume: decimal.nullable(),
  trades: z.number().int().nullable(),
  closed: z.boolean().meta({ description: 'True only when the candle can no longer change.' }),
  gap: z.boolean().meta({ description: 'True on rows the gap policy made up for a missing bucket.' }),
  takerBuyVolume: decimal.optional().meta({ description: 'Base volume bought by takers, where the exchange sends it (Binance); absent otherwise and on resampled buckets.' }),
  takerBuyQuoteVolume: decimal.optional().meta({ description: 'Quote volume bought by takers, where the exchange sends it (Binance); absent otherwise and on resampled buckets.' }),
  vwap: decimal.optional().meta({ description: "Volume-weighted average price, where the exchange sends it (Kraken); absent otherwise and on resampled buckets." }),
  sourceCandles: z
    .number()
    .int()
    .optional()
    .meta({ description: 'Resampled responses only: stored candles the bucket was built from (fewer than sourceCandlesPerBucket = partial).' }),
});
responseRegistry.add(candleSchema, { id: 'Candle' });
export type CandleOut = z.infer<typeof candleSchema>;

/** The series a response is about; every response that names one starts with these. */
const seriesFields = { exchange: exchangeSchema, symbol: z.string(), interval: intervalSchema };

export const candlePageSchema = z.object({
  ...seriesFields,
  resampledFrom: intervalSchema.nullable().meta({ description: 'The stored interval the candles were built from; null when stored natively.' }),
  sourceCandlesPerBucket: z.number().int().nullable(),
  gaps: gapPolicySchema,
  start: z.iso.datetime().nullable(),
  end: z.iso.datetime().nullable(),
  asOf: z.iso.datetime().nullable().optional().meta({ description: 'The point in time the candles were read as of; null (or absent) for the current data.' }),
  count: z.number().int(),
  candles: z.array(candleSchema),
  nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last page.' }),
});
responseRegistry.add(candlePageSchema, { id: 'CandlePage' });
export type CandlePage = z.infer<typeof candlePageSchema>;

export const latestSchema = z.object({
  series: z.array(
    z.object({
      ...seriesFields,
      candle: candleSchema.nullable().meta({ description: 'The newest closed candle; null when the series has none yet.' }),
    }),
  ),
});
responseRegistry.add(latestSchema, { id: 'LatestCandles' });
export type LatestCandles = z.infer<typeof latestSchema>;

export const seriesStateSchema = z.enum(['following', 'paused', 'removed', 'not-followed']).meta({
  description:
    '`following`: pulled on every tick; `paused`: followed but not pulled; `removed`: its market was removed (its candles are kept ' +
    'unless it was purged); `not-followed`: stored by a backfill or `candlekeep pull` only.',
});

export const marketSchema = z.object({
  ...seriesFields,
  state: seriesStateSchema,
  candles: z.number().int(),
  firstOpenTime: ms('First stored candle').nullable(),
  lastOpenTime: ms('Last stored candle').nullable(),
  newestClosedOpenTime: ms('Open time of the newest closed candle stored or confirmed absent, from the coverage ledger the writer keeps; null for candles stored without it').nullable(),
  lagMs: z
    .number()
    .int()
    .nullable()
    .meta({ description: 'How long the oldest closed candle not yet stored has been closed, in ms; 0 while the newest closed candle is stored.' }),
  pulledAt: ms('When a pull last finished this series').nullable(),
  lastError: z.string().nullable().meta({ description: "What the series' last pull failed with; null once a pull succeeds." }),
  gapCount: z.number().int().meta({ description: 'Runs of missing candles between the first and last stored candle.' }),
  missingCandles: z.number().int().meta({ description: 'Candles missing in those runs.' }),
  largestGapCandles: z.number().int(),
  deadLetteredMessages: z
    .number()
    .int()
    .meta({ description: 'Messages of this series waiting in the dead-letter queue, as of the last dead-letter scan: `candlekeep redrive` writes them.' }),
  deadLetteredCandles: z.number().int().meta({ description: 'Candles those messages carry.' }),
  retentionDays: z
    .number()
    .int()
    .nullable()
    .meta({ description: 'Days of candles the series keeps; null: forever (or the series is not followed, so no retention applies).' }),
  expiredBefore: ms('Candles before this open time are expired by retention: deleted, or due at the next retention run; null when none are').nullable(),
  expiredCandles: z.number().int().meta({ description: 'Candles the retention job has deleted from this series so far.' }),
});
responseRegistry.add(marketSchema, { id: 'Market' });
export const marketsSchema = z.object({ markets: z.array(marketSchema) });
responseRegistry.add(marketsSchema, { id: 'Markets' });
export type Markets = z.infer<typeof marketsSchema>;

// ---- followed markets ----

const startField = timeParam('First candle to backfill from; default: only the newest page when the series starts.').optional();

/** `default` and each interval: days of candles to keep, null for forever. */
export const retentionSchema = z
  .strictObject(Object.fromEntries(['default', ...INTERVALS].map((k) => [k, retentionDaysValue.optional()])) as Record<'default' | (typeof INTERVALS)[number], z.ZodOptional<typeof retentionDaysValue>>)
  .refine((r) => Object.keys(r).length > 0, { error: 'name at least one of default and the intervals' })
  .meta({
    description:
      'Days of candles to keep, null for forever: `default` is the market\'s, followed by every interval without its own; an interval key ' +
      '(e.g. `"1m": 365`) sets that interval\'s own (`"1d": null` keeps it forever whatever the default). Keys left out keep their setting. ' +
      'The retention job deletes older candles daily; gaps before the horizon read as `expired`, and no backfill fetches them again.',
    examples: [{ '1m': 365, '1d': null }],
  });
export type RetentionInput = z.infer<typeof retentionSchema>;

/** Interval keys of a retention setting that are not among `intervals`. */
export const retentionOutside = (retention: RetentionInput | undefined, intervals: readonly string[]): string[] =>
  Object.keys(retention ?? {}).filter((k) => k !== 'default' && !intervals.includes(k));

export const followSchema = z.strictObject({
  exchange: exchangeSchema,
  symbol: symbolSchema,
  intervals: z
    .array(intervalSchema)
    .min(1, 'list at least one interval')
    .refine((l) => new Set(l).size === l.length, { error: 'intervals must not repeat' }),
  start: startField,
  retentionDays: retentionSchema.optional(),
}).superRefine((m, ctx) => {
  for (const k of retentionOutside(m.retentionDays, m.intervals)) {
    ctx.addIssue({
      code: 'custom',
      path: ['retentionDays', k],
      message: `${k} is not among the intervals followed here (${m.intervals.join(' ')}): add it to intervals, or set its retention with \`default\``,
    });
  }
});

export const followBodySchema = z.strictObject({
  markets: z
    .array(followSchema)
    .min(1, 'list at least one market')
    .max(1000, 'at most 1000 markets per request')
    .refine((l) => new Set(l.map((m) => `${m.exchange} ${m.symbol}`)).size === l.length, { error: 'a market must not repeat; merge its intervals' }),
});
requestRegistry.add(followBodySchema, { id: 'FollowMarkets' });
export type FollowMarketsInput = z.input<typeof followBodySchema>;

export const marketChangeSchema = z
  .strictObject({
    exchange: exchangeSchema,
    symbol: symbolSchema,
    intervals: followSchema.shape.intervals.optional().meta({ description: 'The exact intervals to follow from now on.' }),
    paused: z.boolean().optional().meta({ description: 'True pauses the pulls of every interval; false resumes them.' }),
    start: startField,
    retentionDays: retentionSchema.optional(),
  })
  .refine((c) => c.intervals !== undefined || c.paused !== undefined || c.start !== undefined || c.retentionDays !== undefined, {
    error: 'change at least one of intervals, paused, start and retentionDays',
  });
requestRegistry.add(marketChangeSchema, { id: 'MarketChange' });
export type MarketChangeInput = z.input<typeof marketChangeSchema>;

export const removeMarketQuerySchema = z.object({
  exchange: exchangeParam,
  symbol: symbolParam,
  purge: z
    .enum(['true', 'false'], { error: 'purge must be true or false' })
    .optional()
    .transform((v) => v === 'true')
    .meta({ description: 'Also delete the stored candles, coverage and backfills of the market. Default false: its data is kept.' }),
});

export const followedMarketSchema = z.object({
  exchange: exchangeSchema,
  symbol: z.string(),
  intervals: z.array(intervalSchema),
  start: ms('First candle to backfill from').nullable(),
  paused: z.boolean(),
  source: z.enum(['seed', 'api']).meta({ description: '`seed`: from cdk.json when migrations ran; `api`: added through the API or CLI.' }),
  addedAt: ms('When the market was first added'),
  updatedAt: ms('Last change'),
  removedAt: ms('When it was removed; null while followed').nullable(),
  retentionDays: z.record(z.string(), z.number().int().nullable()).meta({
    description: 'Days of candles kept, null for forever: `default` (the market\'s) and each followed interval\'s, as in force.',
    examples: [{ default: null, '1m': 365, '1d': null }],
  }),
});
responseRegistry.add(followedMarketSchema, { id: 'FollowedMarket' });
export const followedMarketsSchema = z.object({ markets: z.array(followedMarketSchema) });
responseRegistry.add(followedMarketsSchema, { id: 'FollowedMarkets' });
export type FollowedMarket = z.infer<typeof followedMarketSchema>;
export type FollowedMarkets = z.infer<typeof followedMarketsSchema>;

export const removalSchema = z.object({
  exchange: exchangeSchema,
  symbol: z.string(),
  purged: z.boolean(),
  purgedCandles: z.number().int(),
  keptCandles: z.number().int().meta({ description: 'Stored candles of the market left in place (0 after a purge).' }),
  detail: z.string().meta({ description: 'What happened to the data, for people.' }),
});
responseRegistry.add(removalSchema, { id: 'MarketRemoval' });
export type MarketRemoval = z.infer<typeof removalSchema>;

export const gapSchema = z.object({
  start: ms('First missing open time'),
  end: ms('Open time of the next stored candle (exclusive end)'),
  missingCandles: z.number().int(),
  kind: z.enum(['missing', 'empty', 'dead-lettered', 'expired']).meta({
    description:
      '`missing`: a backfill fills it. `empty`: the exchange was asked and had nothing. `dead-lettered`: messages with candles for it wait in the ' +
      'dead-letter queue; `candlekeep redrive` fills it, not a backfill. `expired`: before the series\' retention horizon, deleted on purpose ' +
      '(or due at the next retention run); no backfill fetches it again.',
  }),
  confirmedByExchange: z
    .boolean()
    .meta({ description: 'True when the coverage ledger shows the exchange was asked for this range and had nothing: a backfill will not fill it.' }),
  deadLetteredMessages: z.number().int().meta({ description: 'Dead-lettered messages whose candles fall in this gap.' }),
});
responseRegistry.add(gapSchema, { id: 'Gap' });
export const gapsPageSchema = z.object({
  ...seriesFields,
  gaps: z.array(gapSchema),
  nextCursor: z.string().nullable(),
});
responseRegistry.add(gapsPageSchema, { id: 'GapPage' });
export type GapPage = z.infer<typeof gapsPageSchema>;

export const healthSchema = z.object({ status: z.enum(['ok']), database: z.enum(['ok']), version: z.string() });
responseRegistry.add(healthSchema, { id: 'Health' });

// ---- backfills ----

export const BACKFILL_STATUSES = ['planned', 'running', 'done', 'failed', 'unsupported', 'cancelled'] as const;
const backfillStatusSchema = z.enum(BACKFILL_STATUSES, {
  error: (i) => `unknown backfill status ${JSON.stringify(i.input)}; expected ${BACKFILL_STATUSES.join(', ')}`,
});

export const backfillsQuerySchema = z.object({
  exchange: exchangeParam.optional(),
  symbol: symbolParam.optional(),
  interval: intervalSchema.optional().meta({ description: 'Only backfills of this interval.' }),
  status: listParam(backfillStatusSchema, {
    max: BACKFILL_STATUSES.length,
    description: 'Only backfills in these states, comma-separated (e.g. `planned,running` for the ones still working).',
  }).optional(),
  limit: limitParam(20, 100),
  cursor: cursorParam,
  format: formatParam,
});

const isoTime = (description: string) => z.iso.datetime().meta({ description });
export const backfillSchema = z.object({
  id: z.number().int(),
  ...seriesFields,
  from: isoTime('Start of the requested range.'),
  to: isoTime('End of the requested range (exclusive).'),
  status: backfillStatusSchema,
  message: z.string().nullable().meta({ description: 'Why it failed or what it could not fetch (e.g. history the exchange does not serve).' }),
  requestedBy: z.string().nullable(),
  requestedAt: isoTime('When it was planned.'),
  startedAt: z.iso.datetime().nullable(),
  finishedAt: z.iso.datetime().nullable(),
  listedAt: z.iso.datetime().nullable().meta({ description: 'No candle opens before this at the exchange (its listing date, found by the planner).' }),
  chunks: z.object({ total: z.number().int(), done: z.number().int(), failed: z.number().int(), inProgress: z.number().int(), pending: z.number().int() }),
  candlesWritten: z.number().int().meta({ description: 'Candles the finished chunks fetched (they may still be queued for the writer).' }),
  fraction: z.number().min(0).max(1).meta({ description: 'Share of chunks finished, 0 to 1.' }),
  etaSeconds: z.number().int().nullable().meta({ description: 'Seconds until the remaining chunks are done at the pace so far; null before the first chunk finishes or after the end.' }),
  eta: z.iso.datetime().nullable(),
});
responseRegistry.add(backfillSchema, { id: 'Backfill' });
export const backfillPageSchema = z.object({
  backfills: z.array(backfillSchema),
  nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for older backfills; null on the last page.' }),
});
responseRegistry.add(backfillPageSchema, { id: 'BackfillPage' });
export type BackfillPage = z.infer<typeof backfillPageSchema>;

export const backfillRequestedSchema = z.object({
  eventId: z.string().meta({ description: 'The EventBridge event id; the planner plans each event once.' }),
  request: z.object({ ...seriesFields, from: z.iso.datetime(), to: z.iso.datetime(), requestedBy: z.string().optional() }),
});
responseRegistry.add(backfillRequestedSchema, { id: 'BackfillRequested' });

// ---- exchange instruments (discovery) ----

export const instrumentsPathSchema = z.object({ exchange: exchangeParam });
export const instrumentsQuerySchema = z.object({
  quote: z
    .string()
    .regex(/^[A-Z0-9]{1,20}$/, 'expected a quote currency such as USDT')
    .optional()
    .meta({ description: 'Only instruments quoted in this currency, e.g. `USDT`.' }),
  top: z.coerce
    .number({ error: 'top must be a whole number from 1 to 1000' })
    .int('top must be a whole number from 1 to 1000')
    .min(1, 'top must be a whole number from 1 to 1000')
    .max(1000, 'top must be a whole number from 1 to 1000')
    .optional()
    .meta({ description: 'The N most traded by 24h quote volume (like freqtrade VolumePairList). Not on Coinbase, which publishes no such list.' }),
  trading: z
    .enum(['true', 'false'], { error: 'trading must be true or false' })
    .optional()
    .transform((v) => v !== 'false')
    .meta({ description: 'Only instruments open for trading (default true); false lists halted and delisted ones too.' }),
  format: formatParam,
});

export const instrumentSchema = z.object({
  symbol: z.string().meta({ description: 'Unified BASE/QUOTE, as candlekeep follows it.' }),
  native: z.string().meta({ description: "The exchange's own id." }),
  base: z.string(),
  quote: z.string(),
  trading: z.boolean(),
  status: z.string().meta({ description: "The exchange's status word as sent (TRADING, live, Trading, online, ...)." }),
  quoteVolume24h: z.number().nullable().meta({ description: '24h volume in the quote currency; null where the exchange publishes none in one call.' }),
});
export const instrumentsSchema = z.object({
  exchange: exchangeSchema,
  fetchedAt: ms('When the exchange was asked (listings are cached for 10 minutes)'),
  instruments: z.array(instrumentSchema),
});
responseRegistry.add(instrumentsSchema, { id: 'Instruments' });
export type Instruments = z.infer<typeof instrumentsSchema>;
