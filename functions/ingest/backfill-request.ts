import * as z from 'zod';
import { exchangeSchema, MAX_OPEN_TIME, MIN_OPEN_TIME, symbolSchema } from '../candles/candle.ts';
import { intervalSchema } from '../candles/intervals.ts';

/** The EventBridge event that asks for a backfill: `source` and `detail-type` the bus rule matches. */
export const BACKFILL_EVENT_SOURCE = 'candlekeep';
export const BACKFILL_DETAIL_TYPE = 'Backfill Requested';

/** A time in a request: ISO 8601 (`2024-01-01`, `2024-01-01T00:00:00Z`) or epoch milliseconds. */
export const requestTimeSchema = z
  .union([z.iso.date(), z.iso.datetime({ offset: true }), z.number().int()], {
    error: (issue) => `expected an ISO 8601 time such as "2024-01-01T00:00:00Z" or epoch milliseconds, got ${JSON.stringify(issue.input)}`,
  })
  .transform((v) => (typeof v === 'number' ? v : Date.parse(v)))
  .refine((t) => t >= MIN_OPEN_TIME && t <= MAX_OPEN_TIME, {
    error: 'time must be between 2000-01-01 and 2100-01-01 (epoch milliseconds, not seconds)',
  });

export const backfillRequestSchema = z
  .strictObject({
    exchange: exchangeSchema,
    symbol: symbolSchema,
    interval: intervalSchema,
    from: requestTimeSchema,
    to: requestTimeSchema,
    /** Who asked: `cli`, `pull`, `gaps`, a user name. Shown in status. */
    requestedBy: z.string().max(200).optional(),
  })
  .refine((r) => r.to > r.from, { error: '"to" must be after "from"', path: ['to'] });
export type BackfillRequest = z.output<typeof backfillRequestSchema>;

/** The event detail as it travels: times as ISO text, readable in the console and in logs. */
export function toEventDetail(req: BackfillRequest): Record<string, string> {
  return {
    exchange: req.exchange,
    symbol: req.symbol,
    interval: req.interval,
    from: new Date(req.from).toISOString(),
    to: new Date(req.to).toISOString(),
    ...(req.requestedBy ? { requestedBy: req.requestedBy } : {}),
  };
}

/** The part of an EventBridge event the planner reads; `id` makes a redelivered event plan nothing twice. */
export const backfillEventSchema = z.object({
  id: z.string().min(1),
  source: z.literal(BACKFILL_EVENT_SOURCE),
  'detail-type': z.literal(BACKFILL_DETAIL_TYPE),
  detail: backfillRequestSchema,
});
export type BackfillEvent = z.output<typeof backfillEventSchema>;
