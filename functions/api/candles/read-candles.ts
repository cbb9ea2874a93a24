import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../../candles/candle.ts';
import { bucketStart, INTERVAL_MS, type Interval } from '../../candles/intervals.ts';
import { candleWindow, candleWindowJson, windowBounds, type StoredCandle } from '../../store/candles.ts';
import { openTimeOfJson } from '../../store/candle-columns.ts';
import { isRolledUp, keptBounds, resampledWindow, rolledUpWindow } from '../../store/rollups.ts';
import type { Queryable } from '../../store/db.ts';
import type { AsOf } from '../../store/as-of.ts';
import type { CandleOut, GapPolicy } from '../schemas.ts';
import type { CandleSource } from './source.ts';

export interface ReadCandlesOptions {
  /** Earliest open time wanted (inclusive). */
  start?: number | undefined;
  /** Open time to stop before (exclusive). */
  end?: number | undefined;
  limit: number;
  /** Cursor position: the first bucket of this page. */
  from?: number | undefined;
  gaps: GapPolicy;
  /** Read the candles as they were stored at this point (resampled ones from the source, never from rollups). */
  asOf?: AsOf | undefined;
}

export interface CandleRead {
  candles: CandleOut[];
  /** First bucket of the next page, or null when this page is the last. */
  next: number | null;
}

/** The first bucket start at or after `t`. */
export const ceilBucket = (t: number, interval: Interval) => bucketStart(t - 1, interval) + INTERVAL_MS[interval];

/** A page of candles as the API's JSON writes each (`JSON.stringify` of its CandleOut). */
export interface CandleJsonRead {
  candles: string[];
  /** Open time of each candle. */
  openTimes: (i: number) => number;
  /** First bucket of the next page, or null when this page is the last. */
  next: number | null;
}

/**
 * The page `readCandles` reads, each candle as its JSON text. Stored candles without gap filling
 * (the hot path: every download of a stored interval) are written by PostgreSQL, so Node neither
 * parses twelve fields a candle nor builds an object for it; any other page is read as objects and
 * stringified one by one, which writes the same text.
 */
export async function readCandlesJson(db: Queryable, src: CandleSource, opts: ReadCandlesOptions): Promise<CandleJsonRead> {
  if (src.resampled || opts.gaps !== 'omit') {
    const { candles, next } = await readCandles(db, src, opts);
    return { candles: candles.map((c) => JSON.stringify(c)), openTimes: (i) => candles[i]!.openTime, next };
  }
  const step = INTERVAL_MS[src.interval];
  const { lo, hi } = pageRange(src.interval, opts);
  if (lo >= hi) return { candles: [], openTimes: () => NaN, next: null };
  // As readCandles' hot path below.
  const bounded = Math.min(hi, lo + (opts.limit + 1) * step);
  let rows = await candleWindowJson(db, src.seriesId, lo, bounded, opts.limit + 1, opts.asOf);
  if (rows.length <= opts.limit && bounded < hi) rows = await candleWindowJson(db, src.seriesId, lo, hi, opts.limit + 1, opts.asOf);
  const next = rows.length > opts.limit ? openTimeOfJson(rows[opts.limit]!) : null;
  if (rows.length > opts.limit) rows.length = opts.limit;
  return { candles: rows, openTimes: (i) => openTimeOfJson(rows[i]!), next };
}

/** The buckets a read may span: [lo, hi). */
function pageRange(interval: Interval, opts: ReadCandlesOptions): { lo: number; hi: number } {
  const lo = opts.from ?? (opts.start !== undefined ? ceilBucket(opts.start, interval) : MIN_OPEN_TIME);
  const hi = opts.end !== undefined ? Math.min(ceilBucket(opts.end, interval), MAX_OPEN_TIME) : MAX_OPEN_TIME;
  return { lo, hi };
}

/**
 * A stored (or resampled) candle as the API shows it. The candle just read is made into it in
 * place, not copied: a page of 10,000 would otherwise allocate every candle twice.
 */
export function toCandle(c: StoredCandle, sourceCandles?: number): CandleOut {
  const out = c as CandleOut;
  out.gap = false;
  if (sourceCandles !== undefined) out.sourceCandles = sourceCandles;
  return out;
}

/**
 * One page of candles of a series, stored or resampled, with the gap policy applied.
 *
 * Buckets are the requested interval's, aligned as exchanges align them (`bucketStart`: UTC
 * midnight for days, Monday for weeks). A page holds buckets whose open time lies in
 * [start, end); a resampled bucket always aggregates its whole period, never a clipped one.
 * Gaps are buckets with no stored candle between the first and the last stored candle of the
 * range: the edges are not padded, and filling never happens unless asked for.
 */
export async function readCandles(db: Queryable, src: CandleSource, opts: ReadCandlesOptions): Promise<CandleRead> {
  const step = INTERVAL_MS[src.interval];
  const { lo, hi } = pageRange(src.interval, opts);
  if (lo >= hi) return { candles: [], next: null };

  if (!src.resampled && opts.gaps === 'omit') {
    // The hot path: candles are aligned and unique, so limit + 1 of them fit in limit + 1 buckets:
    // bounding the range by that lets the planner prune to the partitions involved. Only when gaps
    // leave it short is the open range read.
    const bounded = Math.min(hi, lo + (opts.limit + 1) * step);
    let rows = await candleWindow(db, src.seriesId, lo, bounded, opts.limit + 1, opts.asOf);
    if (rows.length <= opts.limit && bounded < hi) rows = await candleWindow(db, src.seriesId, lo, hi, opts.limit + 1, opts.asOf);
    const n = Math.min(rows.length, opts.limit);
    const candles: CandleOut[] = new Array(n);
    for (let i = 0; i < n; i++) candles[i] = toCandle(rows[i]!);
    return { candles, next: rows.length > opts.limit ? rows[opts.limit]!.openTime : null };
  }

  // Bounds of the stored data in range, so pages span only buckets that can hold data, and the
  // close before this page for ffill.
  let b = await windowBounds(db, src.seriesId, lo, hi, opts.gaps === 'ffill', opts.asOf);
  // Rollups hold the current data: a point-in-time read builds its buckets from the source.
  const rolledUp = src.resampled && isRolledUp(src.interval, src.source) && !opts.asOf;
  if (rolledUp && (!b || bucketStart(b.first, src.interval) > lo)) {
    // Kept buckets may reach further back than the stored candles: those retention deleted.
    const kept = await keptBounds(db, src.seriesId, src.interval, lo, hi);
    if (kept) b = b ? { ...b, first: Math.min(b.first, kept.first), last: Math.max(b.last, kept.last) } : { first: kept.first, last: kept.last, prevClose: null };
  }
  if (!b) return { candles: [], next: null };
  const pageLo = opts.from ?? bucketStart(b.first, src.interval);
  const lastBucket = bucketStart(b.last, src.interval);
  const pageHi = Math.min(lastBucket + step, pageLo + opts.limit * step, hi);
  const next = pageHi <= lastBucket ? pageHi : null;

  const page = { seriesId: src.seriesId, interval: src.interval, source: src.source, lo: pageLo, hi: pageHi };
  // Rollups hold the current data: a point-in-time read builds its buckets from the source.
  const candles = src.resampled
    ? (rolledUp ? await rolledUpWindow(db, page, b.last) : await resampledWindow(db, page, opts.asOf)).map((r) => toCandle(r.candle, r.sourceCandles))
    : (await candleWindow(db, src.seriesId, pageLo, pageHi, undefined, opts.asOf)).map((c) => toCandle(c));
  if (opts.gaps === 'omit') return { candles, next };
  return { candles: fill(candles, pageLo, pageHi, step, opts.gaps, b.prevClose, src.resampled), next };
}

function fill(
  candles: CandleOut[],
  lo: number,
  hi: number,
  step: number,
  policy: 'null' | 'ffill',
  prevClose: string | null,
  resampled: boolean,
): CandleOut[] {
  const out: CandleOut[] = [];
  let i = 0;
  let close = prevClose;
  for (let t = lo; t < hi; t += step) {
    const c = candles[i];
    if (c && c.openTime === t) {
      out.push(c);
      close = c.close;
      i++;
      continue;
    }
    const filled = policy === 'ffill' && close !== null;
    const g: CandleOut = {
      openTime: t,
      open: filled ? close : null,
      high: filled ? close : null,
      low: filled ? close : null,
      close: filled ? close : null,
      volume: filled ? '0' : null,
      quoteVolume: filled ? '0' : null,
      trades: filled ? 0 : null,
      closed: false,
      gap: true,
    };
    if (resampled) g.sourceCandles = 0;
    out.push(g);
  }
  return out;
}
