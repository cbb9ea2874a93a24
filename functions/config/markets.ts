import * as z from 'zod';
import { exchangeSchema, symbolSchema } from '../candles/candle.ts';
import { intervalSchema } from '../candles/intervals.ts';
import { parseTime } from '../http/time.ts';

/** The CDK context key that lists the followed markets (see cdk.json). */
export const MARKETS_CONTEXT_KEY = 'candlekeep:markets';

/**
 * First candle to backfill from, as text: the same times the API's `start` takes (ISO 8601, UTC when
 * without an offset, or epoch milliseconds, 2000-01-01 .. 2100-01-01), read by the same parser.
 */
const startSchema = z.string().superRefine((s, ctx) => {
  const t = parseTime(s);
  if (!t.ok) ctx.addIssue({ code: 'custom', message: t.message, input: s });
});

/** The open time (ms) of a start that `startSchema` accepted. */
export function startTime(start: string): number {
  const t = parseTime(start);
  if (!t.ok) throw new Error(`start ${t.message}`);
  return t.ms;
}

/** Days of candles to keep, null for forever: one value of a market's retention (config and API alike). */
export const retentionDaysValue = z
  .number({ error: (i) => `expected a whole number of days from 1 to 36500, or null for forever; got ${JSON.stringify(i.input)}` })
  .int({ error: (i) => `expected a whole number of days from 1 to 36500, or null for forever; got ${JSON.stringify(i.input)}` })
  .min(1, 'retention must keep at least 1 day (null keeps candles forever)')
  .max(36500, 'retention is at most 36500 days (null keeps candles forever)')
  .nullable();

export const marketSchema = z
  .strictObject({
    exchange: exchangeSchema,
    symbol: symbolSchema,
    intervals: z
      .array(intervalSchema)
      .min(1, 'list at least one interval')
      .refine((list) => new Set(list).size === list.length, { error: 'intervals must not repeat' }),
    /** First candle to backfill from. */
    start: startSchema,
    /**
     * Days of candles to keep, null for forever: `default` for every interval without its own, an
     * interval key for that interval (`{ "1m": 365 }`: 1m for a year, the rest forever).
     */
    retentionDays: z
      .partialRecord(z.union([z.literal('default'), intervalSchema]), retentionDaysValue)
      .optional(),
  })
  .superRefine((m, ctx) => {
    for (const k of Object.keys(m.retentionDays ?? {})) {
      if (k !== 'default' && !m.intervals.includes(k as (typeof m.intervals)[number])) {
        ctx.addIssue({ code: 'custom', path: ['retentionDays', k], message: `${k} is not among this market's intervals (${m.intervals.join(' ')})` });
      }
    }
  });
export type Market = z.infer<typeof marketSchema>;

export const marketsSchema = z.array(marketSchema).superRefine((markets, ctx) => {
  // One entry per (exchange, symbol): a second entry would double the pulls and hide which start wins.
  const seen = new Map<string, number>();
  markets.forEach((m, i) => {
    const key = `${m.exchange} ${m.symbol}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'symbol'],
        message: `${m.exchange} ${m.symbol} is already listed at index ${first}; merge the intervals into one entry`,
      });
    }
  });
});

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
}

/**
 * Validates the `candlekeep:markets` context value. Accepts the array itself (cdk.json) or its JSON
 * text (`cdk synth -c 'candlekeep:markets=[...]'`). Throws an Error naming each bad entry and field,
 * e.g. `candlekeep:markets[2].intervals[0]: unknown interval "2m"; ...`.
 */
export function parseMarkets(value: unknown): Market[] {
  if (value === undefined) {
    throw new Error(`${MARKETS_CONTEXT_KEY} is missing: list the followed markets in cdk.json under "context"`);
  }
  let input: unknown = value;
  if (typeof value === 'string') {
    try {
      input = JSON.parse(value) as unknown;
    } catch (error) {
      throw new Error(`${MARKETS_CONTEXT_KEY} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const result = marketsSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `${MARKETS_CONTEXT_KEY}${formatPath(issue.path)}: ${issue.message}`);
  throw new Error(lines.join('\n'));
}
