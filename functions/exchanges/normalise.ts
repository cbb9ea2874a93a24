import * as z from 'zod';
import {
  MAX_OPEN_TIME,
  MIN_OPEN_TIME,
  alignmentProblem,
  decimalSchema,
  ohlcProblem,
  openTimeSchema,
  type Candle,
  type Exchange,
} from '../candles/candle.ts';
import { describeIssues } from '../candles/candle-batch.ts';
import type { Interval } from '../candles/intervals.ts';
import { toPlainDecimal } from './decimal.ts';
import { BodyTooLargeError, MalformedResponseError, UnknownSymbolError, UnsupportedIntervalError } from './errors.ts';
import type { PageRequest } from './types.ts';

/** A response body read once, so error mapping and parsing can both look at it. */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * The most an exchange answer may hold. The largest page any adapter asks for (Binance, 1000 rows of
 * about 200 bytes) is near 200 KB; 4 MiB leaves twenty times that for verbose error pages, while a
 * runaway body (a broken proxy, a hostile mirror) cannot fill a 512 MB function even with several
 * pages in flight at once.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Reads at most `limit` bytes of a body, then drops the rest of it unread. */
async function readUpTo(res: Response, limit: number): Promise<{ text: string; overflow: boolean }> {
  if (!res.body) return { text: '', overflow: false };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let overflow = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > limit) {
      overflow = true;
      // Cancelling the stream aborts the transfer: nothing more is downloaded or buffered.
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return { text: new TextDecoder().decode(Buffer.concat(chunks)), overflow };
}

/** The whole body as text, streamed and refused past `limit` bytes (a declared Content-Length over it is refused unread). */
export async function readBody(exchange: Exchange, res: Response, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(exchange, limit, `Content-Length ${declared}`);
  }
  const { text, overflow } = await readUpTo(res, limit);
  if (overflow) throw new BodyTooLargeError(exchange, limit, `more than ${limit} bytes sent`);
  return text;
}

export async function readResponse(exchange: Exchange, res: Response): Promise<RawResponse> {
  return { status: res.status, headers: res.headers, text: await readBody(exchange, res) };
}

// Enough of an error body for its message; the rest is never read.
const ERROR_BODY_BYTES = 16 * 1024;

/** What an error answer says, read from at most its first 16 KB of body; the rest is never read. */
export async function statedError(res: Response): Promise<string> {
  const { text } = await readUpTo(res, ERROR_BODY_BYTES);
  return describeErrorBody({ status: res.status, headers: res.headers, text });
}

/** The message and code of whichever documented error envelope a body uses (`msg`, `retMsg`, `message`, `error: [...]`), else an excerpt. */
export function describeErrorBody(raw: RawResponse): string {
  const b = tryParseJson(raw);
  if (b && typeof b === 'object' && !Array.isArray(b)) {
    const body = b as Record<string, unknown>;
    const listed = Array.isArray(body.error) && body.error.length > 0 ? body.error.join('; ') : undefined;
    const message = [body.msg, body.retMsg, body.message, listed].find((m): m is string => typeof m === 'string' && m !== '');
    const code = body.code ?? body.retCode;
    if (message) return code !== undefined && code !== '' ? `${message} (code ${String(code)})` : message;
  }
  if (raw.text.trim() === '') return 'empty body';
  return errorMessage(raw, undefined);
}

export function excerpt(text: string, max = 120): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

type SourceReviver = (key: string, value: unknown, context?: { source?: string }) => unknown;
const parseWithContext = JSON.parse as (text: string, reviver: SourceReviver) => unknown;

// JSON.parse source text access (Node ≥ 21) is what lets a JSON number keep its exact digits; a
// runtime without it would silently round prices, so refuse to load there.
const probe = parseWithContext('[0.10]', (_k, v, ctx) => (typeof v === 'number' ? ctx?.source : v));
if (!Array.isArray(probe) || probe[0] !== '0.10') {
  throw new Error('this runtime lacks JSON.parse source text access (Node.js 21 or newer is required)');
}

export function looksLikeHtml(raw: RawResponse): boolean {
  const type = raw.headers.get('content-type') ?? '';
  return type.includes('text/html') || /^\s*</.test(raw.text);
}

/**
 * Parses a body as JSON. With `numbersAsText`, every JSON number becomes its source text so a
 * price like 68123.10 keeps its digits (no float round trip).
 */
export function parseJson(exchange: Exchange, raw: RawResponse, options: { numbersAsText?: boolean } = {}): unknown {
  if (looksLikeHtml(raw)) {
    throw new MalformedResponseError(exchange, `expected JSON, got an HTML page (HTTP ${raw.status})`, excerpt(raw.text));
  }
  if (raw.text.trim() === '') throw new MalformedResponseError(exchange, `empty body (HTTP ${raw.status})`, '');
  try {
    return options.numbersAsText ? parseJsonNumbersAsText(raw.text) : (JSON.parse(raw.text) as unknown);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new MalformedResponseError(exchange, `invalid or truncated JSON (${reason})`, excerpt(raw.text.slice(-200)));
  }
}

/** JSON with every number as its source text (68123.10 stays "68123.10"); throws SyntaxError on bad JSON. */
export function parseJsonNumbersAsText(text: string): unknown {
  return parseWithContext(text, (_k, v, ctx) => (typeof v === 'number' ? (ctx?.source ?? String(v)) : v));
}

/** Tries to parse JSON without throwing; for error bodies whose format is optional. */
export function tryParseJson(raw: RawResponse): unknown {
  try {
    return JSON.parse(raw.text) as unknown;
  } catch {
    return undefined;
  }
}

export function parseShape<S extends z.ZodType>(exchange: Exchange, schema: S, value: unknown, raw: RawResponse): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new MalformedResponseError(exchange, `unexpected shape: ${describeIssues(result.error)}`, excerpt(raw.text));
  }
  return result.data;
}

/** Decimal text as sent, exponent notation expanded; rejects negatives and non-numbers. */
export const decimalText = z
  .string()
  .transform((s, ctx) => {
    const plain = toPlainDecimal(s);
    if (plain === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a non-negative decimal, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return plain;
  })
  .pipe(decimalSchema);

/** Integer text such as "1597026383085". */
const integerText = z.string().regex(/^\d{1,17}$/, 'expected an integer in a string').transform(Number);

/** Open time in milliseconds, as a JSON number. Seconds or microseconds fall outside the range and are rejected. */
export const msTime = openTimeSchema;
/** Open time in milliseconds, as a string. */
export const msTimeText = integerText.pipe(openTimeSchema);

const MIN_S = MIN_OPEN_TIME / 1000;
const MAX_S = MAX_OPEN_TIME / 1000;
/** Open time in whole seconds, returned as milliseconds; a value in ms (~1.7e12) is rejected, not divided. */
export const secondsTime = z
  .number()
  .int('time must be whole seconds')
  .refine((t) => t >= MIN_S && t < MAX_S, {
    error: (issue) =>
      `time ${String(issue.input)} is not a UTC time in seconds between 2000-01-01 and 2100-01-01 (a value in milliseconds?)`,
  })
  .transform((s) => s * 1000);
export const secondsTimeText = integerText.pipe(secondsTime);

export const countInt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Checks every candle (alignment, OHLC order), keeps one per open time (a closed version wins over
 * an open one), sorts ascending and drops candles outside the requested range.
 */
export function finishCandles(
  exchange: Exchange,
  interval: Interval,
  rows: readonly Candle[],
  req: Pick<PageRequest, 'from' | 'to'>,
  raw: RawResponse,
): Candle[] {
  const byTime = new Map<number, Candle>();
  rows.forEach((c, i) => {
    const problem = alignmentProblem(c.openTime, interval) ?? ohlcProblem(c);
    if (problem) throw new MalformedResponseError(exchange, `row ${i}: ${problem}`, excerpt(raw.text));
    if (byTime.get(c.openTime)?.closed && !c.closed) return;
    byTime.set(c.openTime, c);
  });
  return [...byTime.values()].filter((c) => c.openTime >= req.from && c.openTime <= req.to).sort((a, b) => a.openTime - b.openTime);
}

/** The message of an error answer: the one its body states, else what the page shows. */
export function errorMessage(raw: RawResponse, stated: string | undefined): string {
  if (stated !== undefined) return stated;
  return looksLikeHtml(raw) ? `HTML page: ${excerpt(raw.text)}` : excerpt(raw.text);
}

/** The answer's Retry-After in ms, if it has a readable one. */
export function retryAfterOf(raw: RawResponse, now: number): number | undefined {
  return parseRetryAfter(raw.headers.get('retry-after'), now);
}

/** Retry-After in ms: delta seconds (fractions accepted) or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** `BASE/QUOTE` split; undefined when the text is not a unified symbol. */
export function splitUnified(unified: string): { base: string; quote: string } | undefined {
  const m = /^([A-Z0-9]{1,20})\/([A-Z0-9]{1,20})$/.exec(unified);
  return m ? { base: m[1] ?? '', quote: m[2] ?? '' } : undefined;
}

export function withQuery(baseUrl: string, path: string, params: Record<string, string | number | undefined>): string {
  const url = new URL(baseUrl.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, String(v));
  return url.toString();
}

/** Every adapter starts the same way: a malformed unified symbol is an unknown symbol, not a crash later on. */
export function unifiedParts(exchange: Exchange, unified: string): { base: string; quote: string } {
  const parts = splitUnified(unified);
  if (!parts) throw new UnknownSymbolError(exchange, unified, 'expected a unified symbol BASE/QUOTE such as BTC/USDT');
  return parts;
}

/** The exchange's name for an interval, or UnsupportedIntervalError before any request is made. */
export function nativeInterval<T>(exchange: Exchange, interval: Interval, table: Partial<Record<Interval, T>>): T {
  const native = table[interval];
  if (native === undefined) {
    const offered = Object.keys(table).join(' ');
    throw new UnsupportedIntervalError(exchange, interval, `offered: ${offered}`);
  }
  return native;
}

/** A request whose range is empty or inverted needs no call. */
export function isEmptyRange(req: Pick<PageRequest, 'from' | 'to'>): boolean {
  return !(Number.isFinite(req.from) && Number.isFinite(req.to)) || req.from > req.to;
}
