import * as z from 'zod';
import {
  alignmentProblem,
  DECIMAL_RE,
  decimalSchema,
  EXTRA_FIELDS,
  exchangeSchema,
  MAX_OPEN_TIME,
  MIN_OPEN_TIME,
  ohlcProblem,
  openTimeSchema,
  symbolSchema,
  type Candle,
  type SeriesKey,
} from './candle.ts';
import { intervalSchema, type Interval } from './intervals.ts';

/** A half-open span [start, end) of epoch ms: the buckets a message accounts for. */
export interface BatchRange {
  start: number;
  end: number;
}

/**
 * CandleBatch v1: one series per message, candles as compact positional rows.
 *
 *   { "v": 1, "exchange": "binance", "symbol": "BTC/USDT", "interval": "1m", "fetchedAt": 1732147200000,
 *     "rows": [[openTime, open, high, low, close, volume, quoteVolume|null, trades|null, closed 0|1], ...] }
 *
 * `fetchedAt` (ms) is when the exchange was asked; it orders versions of a still-open candle so a
 * late-delivered older version never replaces a newer one.
 *
 * A row may carry three more fields, the optional ones some exchanges send:
 * `[..., closed, takerBuyVolume|null, takerBuyQuoteVolume|null, vwap|null]` (12 fields). Senders
 * append them only when a candle has one; a 9-field row (every older message) stays valid and
 * means none of them.
 *
 * An optional `"range": [startMs, endMs]` is the half-open span of buckets the exchange was asked
 * for that this message accounts for: the writer records it in the coverage ledger in the same
 * transaction as the candles, so only a stored message ever claims a range. With a range, `rows`
 * may be empty (the exchange confirmed the span empty) and every row must open inside it. Messages
 * without one (older senders) stay valid and claim nothing.
 */
export const CANDLE_BATCH_VERSION = 1;
/** SQS's limit for one message body (and for one SendMessageBatch call). */
export const SQS_MAX_BYTES = 256 * 1024;

/** A compact row: [openTime, open, high, low, close, volume, quoteVolume|null, trades|null, closed 0|1]. */
export type BaseCandleRow = [
  openTime: number,
  open: string,
  high: string,
  low: string,
  close: string,
  volume: string,
  quoteVolume: string | null,
  trades: number | null,
  closed: 0 | 1,
];
/** A row with the optional fields: [...BaseCandleRow, takerBuyVolume|null, takerBuyQuoteVolume|null, vwap|null]. */
export type ExtendedCandleRow = [...BaseCandleRow, takerBuyVolume: string | null, takerBuyQuoteVolume: string | null, vwap: string | null];
export type CandleRow = BaseCandleRow | ExtendedCandleRow;

/**
 * The row contract as a zod schema: the reference the fast checker below must agree with (a test
 * holds them to it), and the form documentation is generated from.
 */
const baseRow = [
  openTimeSchema,
  decimalSchema,
  decimalSchema,
  decimalSchema,
  decimalSchema,
  decimalSchema,
  decimalSchema.nullable(),
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
  z.union([z.literal(0), z.literal(1)]),
] as const;
export const candleRowSchema = z.union([
  z.tuple([...baseRow]),
  z.tuple([...baseRow, decimalSchema.nullable(), decimalSchema.nullable(), decimalSchema.nullable()]),
]);

const FIELD_NAMES = ['openTime', 'open', 'high', 'low', 'close', 'volume', 'quoteVolume', 'trades', 'closed', ...EXTRA_FIELDS] as const;
const isDecimal = (v: unknown): v is string => typeof v === 'string' && v.length <= 80 && DECIMAL_RE.test(v);

/**
 * Checks one compact row; returns a reason naming the field, or undefined. Hand-written because a
 * batch holds tens of thousands of rows and a zod tuple per row costs several times the upsert.
 */
export function rowProblem(row: unknown, interval: Interval): string | undefined {
  if (!Array.isArray(row)) return 'expected a row array [openTime, open, high, low, close, volume, quoteVolume, trades, closed]';
  if (row.length !== 9 && row.length !== 12) {
    return `expected 9 fields per row (or 12 with takerBuyVolume, takerBuyQuoteVolume, vwap), got ${row.length}`;
  }
  const t = row[0];
  if (typeof t !== 'number' || !Number.isInteger(t)) return `openTime must be an integer number of milliseconds, got ${JSON.stringify(t)}`;
  if (t < MIN_OPEN_TIME || t >= MAX_OPEN_TIME) {
    return `openTime ${t} is not a millisecond UTC time between 2000-01-01 and 2100-01-01 (a value in seconds or microseconds?)`;
  }
  const aligned = alignmentProblem(t, interval);
  if (aligned) return aligned;
  for (let i = 1; i <= 5; i++) {
    if (!isDecimal(row[i])) return `${FIELD_NAMES[i]} must be a non-negative decimal string in plain notation such as "68123.45", got ${JSON.stringify(row[i])}`;
  }
  if (row[6] !== null && !isDecimal(row[6])) return `quoteVolume must be a decimal string or null, got ${JSON.stringify(row[6])}`;
  const trades = row[7];
  if (trades !== null && !(typeof trades === 'number' && Number.isSafeInteger(trades) && trades >= 0)) {
    return `trades must be a non-negative integer or null, got ${JSON.stringify(trades)}`;
  }
  if (row[8] !== 0 && row[8] !== 1) return `closed must be 0 or 1, got ${JSON.stringify(row[8])}`;
  for (let i = 9; i < row.length; i++) {
    if (row[i] !== null && !isDecimal(row[i])) return `${FIELD_NAMES[i]} must be a decimal string or null, got ${JSON.stringify(row[i])}`;
  }
  return ohlcProblem({ open: row[1], high: row[2], low: row[3], close: row[4] });
}

export const candleBatchSchema = z
  .object({
    v: z.literal(CANDLE_BATCH_VERSION, { error: (i) => `unsupported CandleBatch version ${JSON.stringify(i.input)}; this writer reads v1` }),
    exchange: exchangeSchema,
    symbol: symbolSchema,
    interval: intervalSchema,
    fetchedAt: z.number().int().positive(),
    rows: z.array(z.unknown()),
    range: z
      .tuple([z.number().int().min(MIN_OPEN_TIME), z.number().int().max(MAX_OPEN_TIME)])
      .refine(([start, end]) => end > start, 'range must be [startMs, endMs] with endMs after startMs')
      .optional(),
  })
  .strict()
  .superRefine((batch, ctx) => {
    if (batch.rows.length === 0 && !batch.range) {
      ctx.addIssue({ code: 'custom', path: ['rows'], message: 'rows must hold at least one candle (or the message must carry the range the exchange confirmed empty)' });
    }
    const seen = new Set<number>();
    let problems = 0;
    for (let i = 0; i < batch.rows.length && problems < 5; i++) {
      const problem = rowProblem(batch.rows[i], batch.interval);
      if (problem) {
        problems++;
        ctx.addIssue({ code: 'custom', path: ['rows', i], message: problem });
        continue;
      }
      const t = (batch.rows[i] as CandleRow)[0];
      if (batch.range && (t < batch.range[0] || t >= batch.range[1])) {
        problems++;
        ctx.addIssue({ code: 'custom', path: ['rows', i, 0], message: `openTime ${t} is outside the message's range [${batch.range[0]}, ${batch.range[1]})` });
        continue;
      }
      if (seen.has(t)) {
        problems++;
        ctx.addIssue({ code: 'custom', path: ['rows', i, 0], message: `duplicate openTime ${t} in one message` });
      }
      seen.add(t);
    }
  })
  .transform((batch) => ({ ...batch, rows: batch.rows as CandleRow[] }));
export type CandleBatch = z.output<typeof candleBatchSchema>;

export type ParseResult = { ok: true; batch: CandleBatch } | { ok: false; reason: string };

/** Turns a zod error into one line a person can act on: `rows[3][2]: expected ...; v: ...`. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map((issue) => {
    const path = issue.path.reduce<string>(
      (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
      '',
    );
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  const more = error.issues.length > max ? ` (and ${error.issues.length - max} more)` : '';
  return parts.join('; ') + more;
}

/** Parses an SQS body as CandleBatch v1; never throws. */
export function parseCandleBatch(body: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
  const result = candleBatchSchema.safeParse(json);
  if (!result.success) return { ok: false, reason: `invalid CandleBatch: ${describeIssues(result.error)}` };
  return { ok: true, batch: result.data };
}

/** A candle as a row: 9 fields, or 12 when it has any of the optional fields. */
export function toRow(c: Candle): CandleRow {
  const base: BaseCandleRow = [c.openTime, c.open, c.high, c.low, c.close, c.volume, c.quoteVolume ?? null, c.trades ?? null, c.closed ? 1 : 0];
  if (c.takerBuyVolume === undefined && c.takerBuyQuoteVolume === undefined && c.vwap === undefined) return base;
  return [...base, c.takerBuyVolume ?? null, c.takerBuyQuoteVolume ?? null, c.vwap ?? null];
}

export function fromRow(row: CandleRow): Candle {
  const [openTime, open, high, low, close, volume, quoteVolume, trades, closed] = row;
  const c: Candle = {
    openTime,
    open,
    high,
    low,
    close,
    volume,
    ...(quoteVolume !== null && { quoteVolume }),
    ...(trades !== null && { trades }),
    closed: closed === 1,
  };
  EXTRA_FIELDS.forEach((f, k) => {
    const v = row[9 + k];
    if (typeof v === 'string') c[f] = v;
  });
  return c;
}

/**
 * Encodes candles of one series as CandleBatch v1 bodies, each at most `maxBytes` (default: SQS's
 * limit less headroom for attributes). Candles are sorted by openTime and de-duplicated (last wins).
 *
 * With `range`, the messages split it between them: their ranges are contiguous and disjoint and
 * together cover it (each ends where the next begins), so the ledger claims exactly the parts whose
 * message was stored. A range without candles still yields one message, the exchange's "none here".
 * Candles outside the range (the still-forming candle past a ledger range's end) travel in
 * messages without a range of their own.
 */
export function encodeCandleBatches(
  series: SeriesKey,
  candles: readonly Candle[],
  fetchedAt: number,
  range?: BatchRange,
  maxBytes = SQS_MAX_BYTES - 6 * 1024,
): string[] {
  const byTime = new Map<number, Candle>();
  for (const c of candles) byTime.set(c.openTime, c);
  const sorted = [...byTime.values()].sort((a, b) => a.openTime - b.openTime);
  const head = `{"v":${CANDLE_BATCH_VERSION},"exchange":${JSON.stringify(series.exchange)},"symbol":${JSON.stringify(series.symbol)},"interval":${JSON.stringify(series.interval)},"fetchedAt":${fetchedAt},`;
  if (!range || range.end <= range.start) return packRows(sorted, head, undefined, maxBytes);
  const inside = sorted.filter((c) => c.openTime >= range.start && c.openTime < range.end);
  const outside = sorted.filter((c) => c.openTime < range.start || c.openTime >= range.end);
  return [...packRows(inside, head, range, maxBytes), ...packRows(outside, head, undefined, maxBytes)];
}

/** Room kept for the longest `"range":[…,…],` a message can carry. */
const RANGE_BYTES = 40;

function packRows(sorted: readonly Candle[], head: string, range: BatchRange | undefined, maxBytes: number): string[] {
  const groups: string[][] = [];
  let rows: string[] = [];
  const empty = Buffer.byteLength(head) + '"rows":[]}'.length + (range ? RANGE_BYTES : 0);
  let size = empty;
  const starts: number[] = [];
  for (const c of sorted) {
    const row = JSON.stringify(toRow(c));
    const rowBytes = Buffer.byteLength(row) + 1;
    if (rows.length > 0 && size + rowBytes > maxBytes) {
      groups.push(rows);
      rows = [];
      size = empty;
    }
    if (rows.length === 0) starts.push(c.openTime);
    rows.push(row);
    size += rowBytes;
  }
  if (rows.length > 0) groups.push(rows);
  if (!range) return groups.map((g) => `${head}"rows":[${g.join(',')}]}`);
  if (groups.length === 0) return [`${head}"range":[${range.start},${range.end}],"rows":[]}`];
  // Each message's range runs from its first candle to the next message's first candle, stretched
  // to the range's edges at both ends, so no bucket between two messages goes unclaimed.
  return groups.map((g, i) => {
    const start = i === 0 ? range.start : starts[i]!;
    const end = i === groups.length - 1 ? range.end : starts[i + 1]!;
    return `${head}"range":[${start},${end}],"rows":[${g.join(',')}]}`;
  });
}
