import type { Candle, SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS } from '../candles/intervals.ts';
import { fetchRange } from '../exchanges/index.ts';
import { readWatermark } from '../store/candles.ts';
import type { Queryable } from '../store/db.ts';
import { SeriesRegistry } from '../store/series.ts';
import type { BackfillRequest } from './backfill-request.ts';
import type { CandleSink } from './candle-sink.ts';
import { pageDeps, type ExchangeAccess } from '../exchanges/access.ts';
import { bucketAtOrAfter, splitRange, type Range } from './ranges.ts';
import { adapterFor, servableFrom } from './servable.ts';

/** Pages one scheduled pull fetches inline; a longer hole becomes a backfill. */
export const DEFAULT_PULL_MAX_PAGES = 5;

export interface PullDeps {
  db: Queryable;
  access: ExchangeAccess;
  sink: CandleSink;
  registry?: SeriesRegistry;
  /** Pages fetched inline per pull (and per window of a long range). Default 5. */
  maxPages?: number;
  /**
   * Hands a hole larger than one pull can cover to the backfill path. Without it (the CLI) the
   * whole hole is fetched inline, window by window.
   */
  requestBackfill?: (req: BackfillRequest) => Promise<void>;
  /** Called after each written window of a long range. */
  onProgress?: (p: PullProgress) => void;
}

export interface PullProgress {
  series: SeriesKey;
  range: Range;
  /** The range's end that is now written. */
  through: number;
  candles: number;
}

export interface PullResult {
  series: SeriesKey;
  /** What was fetched inline: [from, to). */
  range: Range;
  candles: number;
  closed: number;
  /** The forming candle, stored open until a later pull closes it. */
  open: number;
  pages: number;
  weight: number;
  messages: number;
  written?: number | undefined;
  /** The older part of the hole, handed to the backfill path. */
  backfill?: Range | undefined;
  /** When the last window was handed to the sink (the clock of `access`). */
  queuedAt?: number | undefined;
}

const registries = new WeakMap<object, SeriesRegistry>();
function registryFor(deps: PullDeps): SeriesRegistry {
  if (deps.registry) return deps.registry;
  let r = registries.get(deps.db);
  if (!r) registries.set(deps.db, (r = new SeriesRegistry()));
  return r;
}

/**
 * One scheduled tick for one series: from the bucket after the watermark (the newest stored closed
 * candle; the market's start for a new series) to now, forming candle included as open. A hole
 * longer than `maxPages` pages is split: its newest part is fetched now so the series stays
 * current, the rest goes to `requestBackfill`.
 */
export async function pullLatest(series: SeriesKey, opts: { start?: number | undefined }, deps: PullDeps): Promise<PullResult> {
  const adapter = adapterFor(series);
  const step = INTERVAL_MS[series.interval];
  const maxPages = deps.maxPages ?? DEFAULT_PULL_MAX_PAGES;
  const seriesId = await seriesIdOf(series, deps);
  const watermark = await readWatermark(deps.db, seriesId);
  const now = deps.access.now();
  const forming = bucketStart(now, series.interval);
  const from =
    watermark !== undefined
      ? watermark + step
      : opts.start !== undefined
        ? bucketAtOrAfter(opts.start, series.interval)
        : forming - (adapter.maxPageSize - 1) * step;
  const end = forming + step;
  if (from >= end) return emptyResult(series, { start: from, end: from });
  if (!deps.requestBackfill) return pullRange(series, { start: from, end }, deps);

  // An exchange with limited depth cannot serve the older part at all: that goes to the backfill
  // path too, which ends it with status `unsupported` and says why, instead of a silent hole.
  const inlineFrom = Math.max(from, end - maxPages * adapter.maxPageSize * step, servableFrom(adapter, series.interval, now));
  let backfill: Range | undefined;
  if (inlineFrom > from) {
    backfill = { start: from, end: inlineFrom };
    await deps.requestBackfill({ ...series, from, to: inlineFrom, requestedBy: 'pull' });
  }
  const result = await pullRange(series, { start: inlineFrom, end }, deps);
  return { ...result, backfill };
}

/**
 * Fetches [range.start, range.end) window by window (maxPages pages each), writing each window to
 * the sink before fetching the next. The closed part of each window travels with its candles as
 * the range asked for; the writer records it in the coverage ledger when it stores them.
 */
export async function pullRange(series: SeriesKey, range: Range, deps: PullDeps): Promise<PullResult> {
  const adapter = adapterFor(series);
  const step = INTERVAL_MS[series.interval];
  const windowSpan = (deps.maxPages ?? DEFAULT_PULL_MAX_PAGES) * adapter.maxPageSize * step;
  const start = bucketAtOrAfter(range.start, series.interval);
  const end = Math.min(bucketAtOrAfter(range.end, series.interval), bucketStart(deps.access.now(), series.interval) + step);
  const result = emptyResult(series, { start, end: Math.max(start, end) });
  const windowPages = Math.ceil(windowSpan / step / adapter.maxPageSize);

  for (const window of splitRange({ start, end: Math.max(start, end) }, windowSpan)) {
    const now = deps.access.now();
    const to = Math.min(window.end, bucketStart(now, series.interval) + step) - 1;
    if (to < window.start) break;
    const fetched = await fetchRange(
      adapter,
      { symbol: series.symbol, interval: series.interval, from: window.start, to, now },
      pageDeps(deps.access, series.exchange),
      // Slack for pages an exchange cuts short; a cursor that never ends still stops.
      { maxPages: windowPages + 3 },
    );
    // The forming bucket stays out of the range: it may still gain trades, so "no candle" there
    // is no confirmation that it is empty.
    const closedEnd = Math.min(window.end, bucketStart(now, series.interval));
    const coverageStart = Math.max(window.start, servableFrom(adapter, series.interval, now));
    const asked = coverageStart < closedEnd ? { start: coverageStart, end: closedEnd } : undefined;
    const written = await deps.sink.write(series, fetched.candles, now, asked);
    accumulate(result, fetched.candles, fetched.pages, fetched.weight, written.messages, written.written);
    result.queuedAt = deps.access.now();
    deps.onProgress?.({ series, range: result.range, through: Math.min(window.end, to + 1), candles: result.candles });
  }
  return result;
}

export interface MarketPullOutcome {
  results: PullResult[];
  failures: { series: SeriesKey; error: Error }[];
  /** Series not started because `shouldStop` said so (the next tick pulls them). */
  skipped: SeriesKey[];
}

/** One series a tick pulls, and the start of its market (undefined: the newest page only). */
export interface PullJob {
  series: SeriesKey;
  start?: number | undefined;
}

export interface PullSeriesOptions {
  /** Series pulled at once. Default 8. */
  concurrency?: number;
  /** Checked before each series starts: true leaves the rest unpulled (an invocation near its end). */
  shouldStop?: () => boolean;
}

/**
 * Pulls every job, a few at a time: the governor paces each exchange, so concurrency only overlaps
 * waiting. One failing series does not stop the others; failures are returned for the caller to
 * report.
 */
export async function pullSeries(jobs: readonly PullJob[], deps: PullDeps, options: PullSeriesOptions = {}): Promise<MarketPullOutcome> {
  const outcome: MarketPullOutcome = { results: [], failures: [], skipped: [] };
  let next = 0;
  const worker = async () => {
    for (let job = jobs[next++]; job; job = jobs[next++]) {
      if (options.shouldStop?.()) {
        outcome.skipped.push(job.series);
        continue;
      }
      try {
        outcome.results.push(await pullLatest(job.series, { start: job.start }, deps));
      } catch (err) {
        outcome.failures.push({ series: job.series, error: err instanceof Error ? err : new Error(String(err)) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 8, jobs.length)) }, worker));
  return outcome;
}

async function seriesIdOf(series: SeriesKey, deps: PullDeps): Promise<number> {
  const ids = await registryFor(deps).resolve(deps.db, [series]);
  const id = ids.get(SeriesRegistry.key(series));
  if (id === undefined) throw new Error(`no series id for ${SeriesRegistry.key(series)}`);
  return id;
}

function emptyResult(series: SeriesKey, range: Range): PullResult {
  return { series, range, candles: 0, closed: 0, open: 0, pages: 0, weight: 0, messages: 0 };
}

function accumulate(r: PullResult, candles: readonly Candle[], pages: number, weight: number, messages: number, written: number | undefined): void {
  r.candles += candles.length;
  for (const c of candles) {
    if (c.closed) r.closed += 1;
    else r.open += 1;
  }
  r.pages += pages;
  r.weight += weight;
  r.messages += messages;
  if (written !== undefined) r.written = (r.written ?? 0) + written;
}
