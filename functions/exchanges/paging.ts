import type { Candle } from '../candles/candle.ts';
import type { ExchangeAdapter, FetchDeps, PageCursor, PageRequest } from './types.ts';

export interface RangeResult {
  candles: Candle[];
  pages: number;
  weight: number;
}

/**
 * Follows `next` until the range is exhausted and returns the candles ascending and unique.
 * `maxPages` bounds a misbehaving exchange that never stops paging.
 */
export async function fetchRange(
  adapter: ExchangeAdapter,
  req: PageRequest,
  deps: FetchDeps,
  options: { maxPages?: number } = {},
): Promise<RangeResult> {
  const maxPages = options.maxPages ?? 1000;
  const byTime = new Map<number, Candle>();
  let current: PageRequest = req;
  let pages = 0;
  let weight = 0;
  for (;;) {
    if (pages >= maxPages) throw new Error(`${adapter.id}: range ${req.from}..${req.to} still unfinished after ${maxPages} pages`);
    const page = await adapter.fetchPage(current, deps);
    pages += 1;
    weight += page.weight;
    for (const c of page.candles) if (!byTime.get(c.openTime)?.closed || c.closed) byTime.set(c.openTime, c);
    if (!page.next) break;
    const following: PageRequest = { ...current, ...page.next };
    // A cursor that does not move would loop forever; treat it as the end.
    if (following.from === current.from && following.to === current.to) break;
    current = following;
  }
  return { candles: [...byTime.values()].sort((a, b) => a.openTime - b.openTime), pages, weight };
}

/**
 * The page before one whose oldest row opens at `oldest`, for exchanges that answer newest first.
 * Any page with rows may have older ones behind it, full or not (a page shorter than asked for must
 * not end the range silently); a page without rows, or one reaching `from`, ends it.
 */
export function olderPage(oldest: number | undefined, req: Pick<PageRequest, 'from'>, step: number): PageCursor {
  return oldest !== undefined && oldest - step >= req.from ? { to: oldest - 1 } : undefined;
}

/** The page after one whose newest row opens at `newest`, for exchanges that answer oldest first; the forming candle ends the range. */
export function newerPage(newest: number | undefined, req: Pick<PageRequest, 'to' | 'now'>, step: number): PageCursor {
  return newest !== undefined && newest + step <= Math.min(req.to, req.now) ? { from: newest + step } : undefined;
}

/** The earliest open time among `candles`; undefined when there are none. */
export function oldestOpenTime(candles: readonly Candle[]): number | undefined {
  return candles.length === 0 ? undefined : candles.reduce((min, c) => Math.min(min, c.openTime), Number.POSITIVE_INFINITY);
}
