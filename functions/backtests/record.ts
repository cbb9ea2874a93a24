import * as z from 'zod';
import { exchangeSchema, symbolSchema } from '../candles/candle.ts';
import { intervalSchema } from '../candles/intervals.ts';
import { nonFiniteName } from '../http/body.ts';
import { parseTime } from '../http/time.ts';

/**
 * The backtest record contract: what a client POSTs, and what the API answers. Metrics are
 * fractions (0.25 = 25 %), finite, and within the range their definition allows, so a record
 * written from a buggy notebook (NaN Sharpe, drawdown in percent) is refused with the field named.
 */

/** A number that must be finite; NaN/Infinity (JSON has neither, Python writes both) get a message naming what arrived. */
function finite(what = 'a finite number') {
  return z.number({
    error: (issue) => {
      const bad = nonFiniteName(issue.input);
      if (bad) return `is ${bad}; only finite numbers are stored (leave out a value that is undefined, e.g. a Sharpe ratio without trades)`;
      if (typeof issue.input === 'number') return `is ${issue.input}; only finite numbers are stored`;
      return `must be ${what}`;
    },
  });
}

const ratioHint = 'fractions, not percent: 0.25 means 25 %';

export const KNOWN_METRICS = {
  totalReturn: finite().min(-1, `must be at least -1 (a total loss); returns are ${ratioHint}`).meta({ description: `Total return over the range; ${ratioHint}.` }),
  cagr: finite().min(-1, `must be at least -1; returns are ${ratioHint}`).meta({ description: 'Compound annual growth rate (fraction).' }),
  sharpe: finite().min(-1000, 'must be between -1000 and 1000').max(1000, 'must be between -1000 and 1000').meta({ description: 'Annualised Sharpe ratio.' }),
  sortino: finite().min(-1000, 'must be between -1000 and 1000').max(1000, 'must be between -1000 and 1000').meta({ description: 'Annualised Sortino ratio.' }),
  calmar: finite().min(-1000, 'must be between -1000 and 1000').max(1000, 'must be between -1000 and 1000').meta({ description: 'CAGR over max drawdown.' }),
  maxDrawdown: finite()
    .min(0, `must be between 0 and 1: a positive fraction of peak equity (0.2 = 20 %), not a negative number or percent`)
    .max(1, `must be between 0 and 1: a fraction of peak equity (0.2 = 20 %), not percent`)
    .meta({ description: 'Largest peak-to-trough loss as a positive fraction of peak equity.' }),
  volatility: finite().min(0, 'must be at least 0').meta({ description: 'Annualised volatility of returns (fraction).' }),
  winRate: finite().min(0, `must be between 0 and 1 (${ratioHint})`).max(1, `must be between 0 and 1 (${ratioHint})`).meta({ description: 'Winning trades / all trades.' }),
  profitFactor: finite().min(0, 'must be at least 0').meta({ description: 'Gross profit / gross loss. Leave it out when there were no losing trades.' }),
  tradeCount: finite().int('must be a whole number').min(0, 'must be at least 0').meta({ description: 'Number of closed trades.' }),
  exposure: finite().min(0, `must be between 0 and 1 (${ratioHint})`).max(1, `must be between 0 and 1 (${ratioHint})`).meta({ description: 'Share of time with an open position.' }),
} as const;
export type KnownMetric = keyof typeof KNOWN_METRICS;
export const KNOWN_METRIC_NAMES = Object.keys(KNOWN_METRICS) as KnownMetric[];

export const METRIC_NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$/;
export const STRATEGY_RE = /^[A-Za-z0-9][A-Za-z0-9_.:\-/ ]{0,99}$/;
export const MAX_POINTS = 100_000;
/**
 * Stored sizes, as JSON: a run's parameters, and one trade. They keep every answer within Lambda's
 * 6 MB response limit: a page of runs shows their parameters, a page of trades whole trades.
 */
export const MAX_PARAMETERS_BYTES = 64 * 1024;
export const MAX_TRADE_BYTES = 8 * 1024;

/** An issue when `value` takes more than `max` bytes as JSON. */
function checkJsonSize(value: unknown, max: number, what: string, ctx: z.RefinementCtx): void {
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > max) ctx.addIssue({ code: 'custom', message: `is ${(bytes / 1024).toFixed(1)} KiB as JSON; ${what} may take at most ${max / 1024} KiB` });
}

/** A time as ISO 8601 text or epoch milliseconds (number or digits), to epoch milliseconds. */
export const timeValue = z
  .union([z.number(), z.string()])
  .transform((v, ctx) => {
    const r = parseTime(String(v));
    if (r.ok) return r.ms;
    ctx.issues.push({ code: 'custom', message: r.message, input: v });
    return z.NEVER;
  })
  .meta({ description: 'ISO 8601 time or epoch milliseconds.' });

/** JSON values whose numbers are all finite; reports the path of the first NaN/Infinity. */
function checkFinite(value: unknown, path: (string | number)[], ctx: z.RefinementCtx): void {
  const bad = nonFiniteName(value);
  if (bad) {
    ctx.addIssue({ code: 'custom', path, message: `is ${bad}; only finite numbers are stored` });
    return;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    ctx.addIssue({ code: 'custom', path, message: `is ${value}; only finite numbers are stored` });
  } else if (Array.isArray(value)) value.forEach((v, i) => checkFinite(v, [...path, i], ctx));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) checkFinite(v, [...path, k], ctx);
}

export const PARAM_KEY_RE = /^[A-Za-z_][A-Za-z0-9_\-]{0,63}$/;

export const parametersSchema = z
  .record(z.string().regex(PARAM_KEY_RE, 'parameter names are letters, digits, _ and -, starting with a letter or _'), z.unknown())
  .superRefine((v, ctx) => {
    checkFinite(v, [], ctx);
    checkJsonSize(v, MAX_PARAMETERS_BYTES, 'parameters', ctx);
  })
  .meta({
    description: `Strategy parameters: any JSON object (names: letters, digits, _ and -), at most ${MAX_PARAMETERS_BYTES / 1024} KiB as JSON. Numbers must be finite.`,
    examples: [{ fast: 10, slow: 30 }],
  });

export const instrumentSchema = z.strictObject({ exchange: exchangeSchema, symbol: symbolSchema, interval: intervalSchema });

const metricsSchema = z
  .object(KNOWN_METRICS)
  .partial()
  .catchall(finite())
  .superRefine((m, ctx) => {
    const names = Object.keys(m);
    if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one metric, e.g. {"totalReturn": 0.12}' });
    if (names.length > 100) ctx.addIssue({ code: 'custom', message: `has ${names.length} metrics; at most 100` });
    for (const n of names) {
      if (!METRIC_NAME_RE.test(n)) ctx.addIssue({ code: 'custom', path: [n], message: 'is not a valid metric name (letters, digits and _, starting with a letter)' });
    }
  })
  .meta({ description: `Run metrics: the named ones are checked against their definitions; others may be any finite number. Ratios are ${ratioHint}.` });

const tradeSchema = z
  .object({
    symbol: z.string().max(64).optional(),
    side: z.enum(['long', 'short'], { error: 'must be "long" or "short"' }),
    entryTime: timeValue,
    exitTime: timeValue.optional(),
    entryPrice: finite().optional(),
    exitPrice: finite().optional(),
    quantity: finite().optional(),
    pnl: finite().optional(),
    fee: finite().optional(),
  })
  .catchall(z.union([z.string().max(200), finite(), z.boolean(), z.null()]))
  .superRefine((t, ctx) => checkJsonSize(t, MAX_TRADE_BYTES, 'a trade', ctx))
  .meta({ description: `One trade, at most ${MAX_TRADE_BYTES / 1024} KiB as JSON; extra scalar fields are kept.` });

export const createBacktestSchema = z
  .strictObject({
    strategy: z.string().regex(STRATEGY_RE, 'must be 1-100 characters: letters, digits, space and _ . : - /, starting with a letter or digit'),
    strategyVersion: z.string().min(1, 'must not be empty').max(100, 'must be at most 100 characters'),
    parameters: parametersSchema,
    instruments: z.array(instrumentSchema).min(1, 'needs at least one instrument').max(20, 'accepts at most 20 instruments'),
    start: timeValue,
    end: timeValue,
    metrics: metricsSchema,
    tags: z
      .array(z.string().regex(TAG_RE, 'tags are 1-64 characters: letters, digits and _ . : -'))
      .max(20, 'accepts at most 20 tags')
      .default([])
      .refine((t) => new Set(t).size === t.length, 'lists a tag twice'),
    notes: z.string().max(10_000, 'must be at most 10000 characters').optional(),
    equityCurve: z
      .array(z.strictObject({ t: timeValue, equity: finite() }))
      .max(MAX_POINTS, `accepts at most ${MAX_POINTS} points; downsample the curve`)
      .optional()
      .meta({ description: 'Equity over time, in increasing time order.' }),
    trades: z.array(tradeSchema).max(MAX_POINTS, `accepts at most ${MAX_POINTS} trades`).optional(),
    reproducedFrom: z
      .uuid('must be the id (a UUID) of a stored run')
      .optional()
      .meta({ description: 'The id of the stored run this one re-runs (see `candlekeep backtests reproduce`); it must exist.' }),
  })
  .superRefine((b, ctx) => {
    if (b.end <= b.start) ctx.addIssue({ code: 'custom', path: ['end'], message: 'must be after start' });
    const curve = b.equityCurve ?? [];
    for (let i = 1; i < curve.length; i++) {
      if (curve[i]!.t <= curve[i - 1]!.t) {
        ctx.addIssue({ code: 'custom', path: ['equityCurve', i, 't'], message: `is not after equityCurve[${i - 1}].t; points must be in increasing time order` });
        break;
      }
    }
  });
export type CreateBacktest = z.output<typeof createBacktestSchema>;
export type CreateBacktestInput = z.input<typeof createBacktestSchema>;
export type Instrument = z.infer<typeof instrumentSchema>;

// ---- responses ----

export const fingerprintSummarySchema = z.object({
  value: z.string().meta({ description: 'Hash of the stored candles the run covers (series, range, count, and a digest of every row).' }),
  computedAt: z.iso.datetime(),
  candles: z.number().int().meta({ description: 'Stored candles in the instruments and range when the run was recorded.' }),
});

export const backtestSchema = z.object({
  id: z.uuid(),
  createdAt: z.iso.datetime(),
  strategy: z.string(),
  strategyVersion: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  instruments: z.array(instrumentSchema),
  start: z.iso.datetime(),
  end: z.iso.datetime(),
  metrics: z.record(z.string(), z.number()),
  tags: z.array(z.string()),
  notes: z.string().nullable(),
  fingerprint: fingerprintSummarySchema,
  equityCurvePoints: z.number().int(),
  tradesStored: z.number().int(),
  reproducedFrom: z.uuid().nullable().meta({ description: 'The run this one re-runs; null for an original run.' }),
  equityCurve: z.array(z.object({ t: z.number().int(), equity: z.number() })).optional().meta({ description: 'Only with include=equityCurve.' }),
  trades: z.array(z.record(z.string(), z.unknown())).optional().meta({ description: 'Only with include=trades.' }),
});
export type Backtest = z.infer<typeof backtestSchema>;

export const tradePageSchema = z.object({
  id: z.uuid(),
  trades: z.array(z.record(z.string(), z.unknown())),
  nextCursor: z.string().nullable(),
});
export type TradePage = z.infer<typeof tradePageSchema>;

export const equityCurvePageSchema = z.object({
  id: z.uuid(),
  equityCurve: z.array(z.object({ t: z.number().int(), equity: z.number() })),
  nextCursor: z.string().nullable(),
});
export type EquityCurvePage = z.infer<typeof equityCurvePageSchema>;

export const backtestPageSchema = z.object({
  runs: z.array(backtestSchema),
  nextCursor: z.string().nullable(),
});
export type BacktestPage = z.infer<typeof backtestPageSchema>;

const dataCheckSchema = z.object({
  id: z.uuid(),
  fingerprint: z.string(),
  changed: z.boolean().meta({ description: 'True when the stored candles the run covered differ now from when it was recorded.' }),
  restatedCandles: z.number().int().meta({ description: 'Closed candles in range the exchange restated since.' }),
  addedCandles: z.number().int().meta({ description: 'Candles stored since into what were gaps.' }),
  changedOpenCandles: z.number().int().meta({ description: 'Candles that were still open then and have changed or closed since.' }),
  expired: z
    .boolean()
    .meta({ description: "True when retention has deleted candles of the run's range since it was recorded: the data is gone on purpose, not restated." }),
});

export const comparisonSchema = z.object({
  runs: z.array(
    backtestSchema.pick({ id: true, createdAt: true, strategy: true, strategyVersion: true, instruments: true, start: true, end: true, tags: true }),
  ),
  metrics: z
    .array(z.object({ name: z.string(), values: z.array(z.number().nullable()) }))
    .meta({ description: 'One row per metric any run has; values in the order of `runs` (null: the run lacks it).' }),
  parameters: z.object({
    differing: z
      .array(z.object({ name: z.string(), values: z.array(z.unknown()) }))
      .meta({ description: 'Parameters (dotted paths for nested ones) whose values are not identical across the runs; a missing one is null.' }),
    identical: z.array(z.string()).meta({ description: 'Names of the parameters every run shares with the same value.' }),
  }),
  data: z.array(dataCheckSchema),
});
export type Comparison = z.infer<typeof comparisonSchema>;
