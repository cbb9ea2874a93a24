import type { SeriesKey } from '../candles/candle.ts';
import type { Interval } from '../candles/intervals.ts';
import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../candles/candle.ts';
import { ceilBucket } from '../api/candles/read-candles.ts';
import { resolveSource, type CandleSource } from '../api/candles/source.ts';
import { DomainError, NotFound } from '../errors.ts';
import { DECIMAL_COLUMNS, exportStats, PRICE_COLUMNS, type DecimalColumn, type ExportStats } from '../store/exports.ts';
import type { Queryable } from '../store/db.ts';
import { listSeries } from '../store/series.ts';
import { decimalSpec, integerDigits, type DecimalSpec } from './decimal.ts';
import type { ExportRequest } from './request.ts';

/** One series of an export: what was asked for, where its candles come from, and what is stored. */
export interface PlannedSeries {
  key: SeriesKey;
  source: CandleSource;
  stats: ExportStats;
}

export interface ExportPlan {
  request: ExportRequest;
  series: PlannedSeries[];
  /** Market selections skip symbols that cannot give the interval, and say why. */
  skipped: { key: SeriesKey; reason: string }[];
  /** Every decimal column's Parquet type: the scale and magnitude of every value it will hold. */
  decimals: Record<DecimalColumn, DecimalSpec>;
  /** Whether any series is resampled (the file then has a source_candles column). */
  resampled: boolean;
  /** Stored candles the export reads: the progress total. */
  sourceCandles: number;
  /**
   * With `request.asOf`: restatements with a larger id are after the point (a backtest's fingerprint
   * mark, exact whatever the clocks); without it, restatements after `asOf` by their time.
   */
  asOfMark?: number | undefined;
}

/** The stored open times a read of [start, end) at `interval` covers: whole buckets, as readCandles takes them. */
export function storedBounds(interval: Interval, start: number | undefined, end: number | undefined): [number, number] {
  const lo = start !== undefined ? ceilBucket(start, interval) : MIN_OPEN_TIME;
  const hi = end !== undefined ? Math.min(ceilBucket(end, interval), MAX_OPEN_TIME) : MAX_OPEN_TIME;
  return [lo, hi];
}

async function requestedSeries(db: Queryable, req: ExportRequest): Promise<SeriesKey[]> {
  if (req.series) return req.series;
  const m = req.markets!;
  const stored = await listSeries(db, { exchange: m.exchange, symbols: m.symbols });
  const pairs = new Map<string, SeriesKey>();
  for (const s of stored) pairs.set(`${s.exchange}|${s.symbol}`, { exchange: s.exchange, symbol: s.symbol, interval: m.interval });
  if (pairs.size === 0) {
    throw new NotFound(`no stored series match the market selection${m.exchange ? ` on ${m.exchange}` : ''}; GET /v1/markets lists them`, 'markets');
  }
  return [...pairs.values()];
}

/**
 * Resolves the series of an export request and reads what the file's schema needs: each column's
 * decimal scale and magnitude over the whole range (one aggregate per series), so no row group has
 * to be rewritten, and the candle total for progress.
 */
export async function planExport(db: Queryable, req: ExportRequest, asOfMark?: number): Promise<ExportPlan> {
  const asOf = req.asOf === undefined ? undefined : { at: req.asOf, mark: asOfMark };
  const keys = await requestedSeries(db, req);
  const resolved: { key: SeriesKey; source: CandleSource }[] = [];
  const skipped: ExportPlan['skipped'] = [];
  for (const key of keys) {
    try {
      resolved.push({ key, source: await resolveSource(db, key.exchange, key.symbol, key.interval) });
    } catch (err) {
      // A listed series must exist; a market selection takes the symbols that can give the interval.
      if (req.series || !(err instanceof DomainError)) throw err;
      skipped.push({ key, reason: err.message });
    }
  }
  if (resolved.length === 0) throw new NotFound(`no selected market can give ${req.markets?.interval} candles: ${skipped.map((s) => s.reason).join('; ')}`, 'markets');

  const series: PlannedSeries[] = [];
  // Series of one interval share their stored bounds, so their stats come in one query.
  const byInterval = new Map<Interval, typeof resolved>();
  for (const r of resolved) byInterval.set(r.key.interval, [...(byInterval.get(r.key.interval) ?? []), r]);
  for (const [interval, group] of byInterval) {
    const [lo, hi] = storedBounds(interval, req.start, req.end);
    const stats = lo < hi ? await exportStats(db, group.map((g) => g.source.seriesId), lo, hi, asOf) : [];
    const byId = new Map(stats.map((s) => [s.seriesId, s]));
    for (const g of group) series.push({ ...g, stats: byId.get(g.source.seriesId) ?? emptyStats(g.source.seriesId) });
  }
  series.sort((a, b) => keys.indexOf(a.key) - keys.indexOf(b.key));

  const decimals = {} as Record<DecimalColumn, DecimalSpec>;
  for (const c of DECIMAL_COLUMNS) {
    let scale = 0;
    let digits = 1;
    for (const s of series) {
      if (s.stats.candles === 0) continue;
      scale = Math.max(scale, s.stats.scale[c]);
      // Resampled volumes are sums of up to perBucket stored values.
      const sums = (c === 'volume' || c === 'quote_volume') && s.source.resampled ? Math.ceil(Math.log10(s.source.perBucket)) : 0;
      digits = Math.max(digits, integerDigits(s.stats.largest[c]) + sums);
      // ffill repeats the close before the range in every price column.
      if (req.gaps === 'ffill' && s.stats.prevClose !== null && PRICE_COLUMNS.includes(c)) {
        const p = s.stats.prevClose;
        scale = Math.max(scale, p.includes('.') ? p.length - p.indexOf('.') - 1 : 0);
        digits = Math.max(digits, integerDigits(p));
      }
    }
    decimals[c] = decimalSpec(c, digits, scale);
  }
  return {
    request: req,
    series,
    skipped,
    decimals,
    resampled: series.some((s) => s.source.resampled),
    sourceCandles: series.reduce((n, s) => n + s.stats.candles, 0),
    asOfMark,
  };
}

function emptyStats(seriesId: number): ExportStats {
  const zero = Object.fromEntries(DECIMAL_COLUMNS.map((c) => [c, 0])) as Record<DecimalColumn, number>;
  const zeroText = Object.fromEntries(DECIMAL_COLUMNS.map((c) => [c, '0'])) as Record<DecimalColumn, string>;
  return { seriesId, candles: 0, scale: zero, largest: zeroText, prevClose: null };
}
