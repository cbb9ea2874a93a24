import { createHash } from 'node:crypto';
import { INTERVAL_MS, bucketStart, sourceInterval, type Interval } from '../candles/intervals.ts';
import type { Exchange } from '../candles/candle.ts';
import { Unprocessable } from '../errors.ts';
import { changesSince, measureRange, restatementMark } from '../store/backtests.ts';
import type { Queryable } from '../store/db.ts';
import { seriesOfSymbol } from '../store/series.ts';
import type { Instrument } from './record.ts';

/**
 * The fingerprint of the candle data a run used: per instrument, the stored series read (the
 * instrument's interval, or the finer one it is resampled from), the range, the number of stored
 * candles and a digest of every row's values. The `value` changes whenever a candle in range is
 * restated, added or changed.
 *
 * Checking later whether the data changed must be cheap (compare looks at up to 10 runs), so the
 * fingerprint also keeps what can change under candlekeep's write rules, which delete a candle only
 * by retention (recorded per series in series_expiry, and reported as `expired`, not as a
 * restatement) and record every change to a closed one in candle_restatements:
 * - restatements of closed candles in range: newer rows in candle_restatements (by id mark);
 * - candles added in range: only possible inside the gaps, which are kept as ranges;
 * - candles that were still open: kept with a hash of their values.
 * The check then reads a few index entries instead of re-hashing the range. When a range has too
 * many gaps or open candles to keep, the check falls back to recounting the range.
 */
export interface InstrumentPrint {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
  source: Interval;
  seriesId: number;
  /** First bucket and exclusive end, epoch ms. */
  start: number;
  end: number;
  candles: number;
  digest: string;
  restatementMark: number;
  /** [open time, md5 of the row] of candles still open when computed. */
  open: [number, string][] | null;
  /** [start, end) ranges with no stored candle when computed. */
  gaps: [number, number][] | null;
}

export interface Fingerprint {
  v: 1;
  value: string;
  computedAt: string;
  candles: number;
  instruments: InstrumentPrint[];
}

const MAX_GAPS = 1000;
/** Source candles one fingerprint may hash (19 years of 1m candles): about as many as a statement hashes within the API's time limit. */
export const MAX_FINGERPRINT_CANDLES = 10_000_000;
const MAX_OPEN = 100;

async function sourceFor(db: Queryable, inst: Instrument): Promise<{ seriesId: number; source: Interval } | undefined> {
  const rows = await seriesOfSymbol(db, inst.exchange, inst.symbol);
  const source = sourceInterval(inst.interval, rows.map((r) => r.interval));
  const hit = rows.find((r) => r.interval === source);
  return hit ? { seriesId: hit.id, source: hit.interval } : undefined;
}

export async function computeFingerprint(
  db: Queryable,
  instruments: readonly Instrument[],
  start: number,
  end: number,
  now: number,
): Promise<Fingerprint> {
  const mark = await restatementMark(db);
  const sources: { seriesId: number; source: Interval }[] = [];
  let buckets = 0;
  for (const [i, inst] of instruments.entries()) {
    const src = await sourceFor(db, inst);
    if (!src) {
      throw new Unprocessable(
        `instruments[${i}]: no candles are stored for ${inst.exchange} ${inst.symbol} at ${inst.interval} or a finer interval; the run's data cannot be fingerprinted`,
        `instruments[${i}]`,
        'unknown-series',
      );
    }
    sources.push(src);
    buckets += Math.ceil((end - start) / INTERVAL_MS[src.source]);
  }
  // The hash reads every source candle in range: past this many it could not finish within an
  // API request, so the run is refused before anything is read.
  if (buckets > MAX_FINGERPRINT_CANDLES) {
    throw new Unprocessable(
      `the run's instruments and range span ${buckets.toLocaleString('en-US')} source candles, more than ${MAX_FINGERPRINT_CANDLES.toLocaleString('en-US')} a fingerprint may hash; ` +
        'record the run in shorter ranges or with fewer instruments',
      'end',
      'range-too-long',
    );
  }
  const prints: InstrumentPrint[] = [];
  for (const [i, inst] of instruments.entries()) prints.push(await printInstrument(db, inst, sources[i]!, start, end, mark));
  const candles = prints.reduce((n, p) => n + p.candles, 0);
  return { v: 1, value: fingerprintValue(prints), computedAt: new Date(now).toISOString(), candles, instruments: prints };
}

export function fingerprintValue(prints: readonly InstrumentPrint[]): string {
  const h = createHash('sha256');
  for (const p of prints) h.update(JSON.stringify([p.exchange, p.symbol, p.interval, p.source, p.start, p.end, p.candles, p.digest]));
  return `ck1:${h.digest('hex').slice(0, 40)}`;
}

async function printInstrument(
  db: Queryable,
  inst: Instrument,
  src: { seriesId: number; source: Interval },
  start: number,
  end: number,
  mark: number,
): Promise<InstrumentPrint> {
  const step = INTERVAL_MS[src.source];
  // Whole source candles inside [start, end).
  const lo = bucketStart(start - 1, src.source) + step;
  const hi = bucketStart(end - 1, src.source) + step;
  const measure = await measureRange(db, src.seriesId, { lo, hi, step }, { maxOpen: MAX_OPEN, maxGaps: MAX_GAPS });
  return {
    exchange: inst.exchange,
    symbol: inst.symbol,
    interval: inst.interval,
    source: src.source,
    seriesId: src.seriesId,
    start: lo,
    end: hi,
    candles: measure.candles,
    digest: measure.digest,
    restatementMark: mark,
    open: measure.open,
    gaps: measure.gaps,
  };
}

export interface DataCheck {
  changed: boolean;
  restatedCandles: number;
  addedCandles: number;
  changedOpenCandles: number;
  /** Candles of the run's range were deleted by retention since: the data is gone, not restated. */
  expired: boolean;
}

/**
 * Whether the data behind each fingerprint changed since it was computed, in one statement for
 * all of them. Identical instrument prints (runs of one parameter sweep share them) are checked once.
 */
export async function checkFingerprints(db: Queryable, prints: readonly Fingerprint[]): Promise<DataCheck[]> {
  const keys = new Map<string, number>();
  const unique: (InstrumentPrint & { computedAt: string })[] = [];
  const perRun = prints.map((fp) =>
    fp.instruments.map((p) => {
      const key = JSON.stringify([p.seriesId, p.start, p.end, p.restatementMark, p.digest, fp.computedAt]);
      let k = keys.get(key);
      if (k === undefined) {
        k = unique.length;
        keys.set(key, k);
        unique.push({ ...p, computedAt: fp.computedAt });
      }
      return k;
    }),
  );
  const byKey = await changesSince(db, unique);
  return perRun.map((ks) => {
    const c = { changed: false, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0, expired: false };
    for (const k of ks) {
      const x = byKey[k]!;
      c.restatedCandles += x.restated;
      c.addedCandles += x.added;
      c.changedOpenCandles += x.open;
      if (x.expired) c.expired = true;
      if (x.restated || x.added || x.open || x.full || x.expired) c.changed = true;
    }
    return c;
  });
}
