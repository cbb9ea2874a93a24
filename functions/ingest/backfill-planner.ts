import type { SeriesKey } from '../candles/candle.ts';
import { bucketStart, INTERVAL_MS, INTERVALS } from '../candles/intervals.ts';
import { UnknownSymbolError } from '../exchanges/errors.ts';
import { adapters } from '../exchanges/index.ts';
import { activeChunkRanges, findBackfillByRequestId, insertBackfill, lockSeriesPlanning, type BackfillStatus, type NewBackfill } from '../store/backfills.ts';
import { loadCoverage, recordCoverage } from '../store/coverage.ts';
import { inTransaction, type Db, type Queryable } from '../store/db.ts';
import { SeriesRegistry } from '../store/series.ts';
import type { BackfillRequest } from './backfill-request.ts';
import { pageDeps, type ExchangeAccess } from '../exchanges/access.ts';
import { findFirstCandle } from './listing.ts';
import { bucketAtOrAfter, describeRange, iso, splitRange, subtractRanges, type Range } from './ranges.ts';
import { servableFrom } from './servable.ts';
import { seriesExpiry } from '../store/retention.ts';

/** Pages per chunk: small enough that a chunk finishes well inside its lease, large enough to keep the ledger short. */
export const DEFAULT_CHUNK_PAGES = 10;

export interface PlanDeps {
  db: Queryable;
  access: ExchangeAccess;
  registry?: SeriesRegistry;
  chunkPages?: number;
}

export interface PlanResult {
  backfillId: number;
  status: BackfillStatus;
  chunks: number;
  message: string | undefined;
  /** False when a request with the same id was already planned (a redelivered event). */
  created: boolean;
  /** Set when the request cannot be served at all: a typo rather than an exchange problem. */
  problem?: 'unknown-symbol' | 'unsupported-interval' | undefined;
  /** Requests spent discovering where the market's history starts. */
  probes: number;
}

/**
 * Turns a backfill request into chunks in the ledger, fetching nothing but the few probes that find
 * where the market's history starts:
 *
 * - only closed buckets are planned (the forming one is the live pull's);
 * - the part an exchange with limited depth (Kraken) cannot serve is not planned, and the backfill
 *   ends `unsupported` with a message naming it;
 * - ranges the coverage ledger already holds, or that another active backfill has in its chunks,
 *   are skipped, so re-sending a request resumes rather than repeats;
 * - before the listing nothing is planned; where the exchange answered that exactly, the empty
 *   stretch is recorded as confirmed empty;
 * - before the series' retention horizon nothing is planned: those candles are expired on purpose.
 */
export async function planBackfill(req: BackfillRequest & { requestId?: string | undefined }, deps: PlanDeps): Promise<PlanResult> {
  const series: SeriesKey = { exchange: req.exchange, symbol: req.symbol, interval: req.interval };
  const registry = deps.registry ?? new SeriesRegistry();
  const seriesId = (await registry.resolve(deps.db, [series])).get(SeriesRegistry.key(series));
  if (seriesId === undefined) throw new Error(`could not resolve series ${SeriesRegistry.key(series)}`);

  if (req.requestId !== undefined) {
    const existing = await findBackfillByRequestId(deps.db, req.requestId);
    if (existing) return { ...existing, created: false, probes: 0 };
  }

  const adapter = adapters[req.exchange];
  const step = INTERVAL_MS[req.interval];
  const now = deps.access.now();
  const start = bucketAtOrAfter(req.from, req.interval);
  const requestedEnd = bucketAtOrAfter(req.to, req.interval);
  const end = Math.min(requestedEnd, bucketStart(now, req.interval));
  const row: NewBackfill = {
    seriesId,
    range: { start, end: Math.max(requestedEnd, start + step) },
    status: 'planned',
    message: undefined,
    requestedBy: req.requestedBy,
    requestId: req.requestId,
    listedAt: undefined,
    unsupportedEnd: undefined,
    chunks: [],
  };
  const finish = async (status: BackfillStatus, message: string | undefined, problem?: PlanResult['problem'], probes = 0): Promise<PlanResult> => {
    const id = await insertBackfill(deps.db, { ...row, status, message });
    if (id === undefined) {
      const existing = await findBackfillByRequestId(deps.db, req.requestId!);
      return { ...existing!, created: false, probes };
    }
    return { backfillId: id, status, chunks: row.chunks.length, message, created: true, problem, probes };
  };

  if (!adapter.supports(req.interval)) {
    const offered = INTERVALS.filter((i) => adapter.supports(i)).join(' ');
    return finish('unsupported', `${req.exchange} has no ${req.interval} candles (it offers ${offered})`, 'unsupported-interval');
  }
  if (end <= start) return finish('done', `nothing to fetch: ${describeRange({ start, end: requestedEnd })} holds no closed ${req.interval} candle yet`);

  let plan: Range = { start, end };
  // Before the retention horizon candles are deleted on purpose: fetching them would only feed the next retention run.
  const { horizon, retentionDays } = await seriesExpiry(deps.db, seriesId, req.interval, now);
  let expiredNote: string | undefined;
  if (horizon !== undefined && start < horizon) {
    const kept = retentionDays === null ? '' : ` (the series keeps ${retentionDays} days)`;
    expiredNote = `${describeRange({ start, end: Math.min(end, horizon) })} is expired by retention${kept} and not backfilled`;
    if (end <= horizon) return finish('done', `nothing to fetch: ${expiredNote}`);
    plan = { start: horizon, end };
    row.message = expiredNote;
  }
  const servable = servableFrom(adapter, req.interval, now);
  if (plan.start < servable) {
    const depth = adapter.historyDepth === 'full' ? 0 : adapter.historyDepth.maxCandles;
    row.unsupportedEnd = Math.min(end, servable);
    row.message =
      `${req.exchange} serves only its newest ${depth} ${req.interval} candles (from ${iso(servable)}); ` +
      `${describeRange({ start: plan.start, end: row.unsupportedEnd })} cannot be backfilled from this exchange` +
      (expiredNote ? `; ${expiredNote}` : '');
    if (end <= servable) return finish('unsupported', row.message);
    plan = { start: servable, end };
  }

  let wanted = subtractRanges(plan, await knownRanges(deps.db, seriesId, plan));
  const alreadyKnown = wanted.length === 0;
  let probes = 0;
  const first = wanted[0];
  const lastWanted = wanted.at(-1);
  if (first && lastWanted) {
    let found;
    try {
      found = await findFirstCandle(adapter, series, { start: first.start, end: lastWanted.end }, pageDeps(deps.access, req.exchange), now);
    } catch (err) {
      if (err instanceof UnknownSymbolError) return finish('failed', err.message, 'unknown-symbol');
      throw err;
    }
    probes = found.probes;
    const before: Range = { start: first.start, end: found.first ?? lastWanted.end };
    if (before.end > before.start) {
      // Recorded per wanted range, so a range some other fetch already covers is not claimed twice.
      // Recorded here, not by the writer: the listing search's answer is no batch of candles that
      // could be lost on the way, and it is known only once the search has run.
      if (found.exact) {
        for (const r of wanted) {
          const empty = { start: r.start, end: Math.min(r.end, before.end) };
          if (empty.end > empty.start) await recordCoverage(deps.db, seriesId, empty, []);
        }
      }
      wanted = subtractRanges(plan, [...(await knownRanges(deps.db, seriesId, plan)), before]);
    }
    row.listedAt = found.first;
  }

  const chunkSpan = (deps.chunkPages ?? DEFAULT_CHUNK_PAGES) * adapter.maxPageSize * step;
  row.chunks = wanted.flatMap((r) => splitRange(r, chunkSpan));
  if (row.chunks.length === 0) {
    if (row.unsupportedEnd !== undefined) return finish('unsupported', row.message, undefined, probes);
    const why = alreadyKnown ? 'every bucket is already fetched' : `${req.exchange} has no candles in ${describeRange(plan)}`;
    return finish('done', `nothing to fetch: ${why}${expiredNote ? `; ${expiredNote}` : ''}`, undefined, probes);
  }
  return finish('planned', row.message, undefined, probes);
}

/** How long a planner waits for another plan of the same series to finish. */
export const DEFAULT_PLANNING_WAIT_MS = 40_000;

/**
 * planBackfill in one transaction that first waits for its series' turn, so concurrent planners
 * (the Lambda has no reserved concurrency) never plan one range twice: the second sees the first's
 * chunks as active and skips them.
 */
export async function planBackfillInTurn(
  req: BackfillRequest & { requestId?: string | undefined },
  deps: Omit<PlanDeps, 'db'> & { db: Pick<Db, 'connect'>; waitMs?: number },
): Promise<PlanResult> {
  const { waitMs, ...rest } = deps;
  return inTransaction(deps.db, async (tx) => {
    await lockSeriesPlanning(tx, req, waitMs ?? DEFAULT_PLANNING_WAIT_MS);
    return planBackfill(req, { ...rest, db: tx });
  });
}

/** What needs no fetching: ranges in the coverage ledger, and chunks another active backfill holds. */
async function knownRanges(db: Queryable, seriesId: number, within: Range): Promise<Range[]> {
  return [...(await loadCoverage(db, seriesId, within)), ...(await activeChunkRanges(db, seriesId, within))];
}
