import { readCandles } from '../api/candles/read-candles.ts';
import type { CandleOut } from '../api/schemas.ts';
import type { Queryable } from '../store/db.ts';
import { storedCandleText } from '../store/exports.ts';
import { storedBounds, type ExportPlan, type PlannedSeries } from './plan.ts';

/** Candles per read: large enough that round trips do not count, small enough to bound memory. */
export const EXPORT_PAGE = 25_000;

/**
 * A page of one series: stored candles as the text block of `storedCandleText` (the bulk path),
 * or candles as GET /v1/candles returns them (resampled, or with gaps filled).
 */
export type ExportPage = { series: PlannedSeries; rows: number; sourceCandles: number } & (
  | { kind: 'text'; text: string }
  | { kind: 'candles'; candles: CandleOut[] }
);

type Read = { page: ExportPage | null; next: number | null };

/**
 * The export's candles, series after series, in pages keyset by open time, read as GET
 * /v1/candles reads them: a stored interval with gaps omitted is a primary-key range scan of
 * [start, end) in whole buckets, and anything else goes through readCandles itself (same
 * resampling and gap policy). The next page is requested while the caller encodes this one, and
 * never more than that, so memory stays bounded whatever the range.
 */
export async function* exportPages(db: Queryable, plan: ExportPlan, pageSize = EXPORT_PAGE): AsyncGenerator<ExportPage> {
  const { start, end, gaps } = plan.request;
  const asOf = plan.request.asOf === undefined ? undefined : { at: plan.request.asOf, mark: plan.asOfMark };
  for (const series of plan.series) {
    if (series.stats.candles === 0) continue;
    const [lo, hi] = storedBounds(series.key.interval, start, end);
    const bulk = !series.source.resampled && gaps === 'omit';
    const read = async (from: number | undefined): Promise<Read> => {
      if (bulk) {
        const t = await storedCandleText(db, series.source.seriesId, from ?? lo, hi, pageSize, asOf);
        const page: ExportPage = { series, rows: t.rows, sourceCandles: t.rows, kind: 'text', text: t.text };
        return { page: t.rows ? page : null, next: t.rows === pageSize && t.last !== null ? t.last + 1 : null };
      }
      const r = await readCandles(db, series.source, { start, end, limit: pageSize, from, gaps, asOf });
      let sourceCandles = 0;
      for (const c of r.candles) sourceCandles += c.gap ? 0 : (c.sourceCandles ?? 1);
      const page: ExportPage = { series, rows: r.candles.length, sourceCandles, kind: 'candles', candles: r.candles };
      return { page: r.candles.length ? page : null, next: r.next };
    };
    let pending = read(undefined);
    // A caller that stops early leaves the prefetched read behind: its failure is nobody's to see.
    try {
      for (;;) {
        const { page, next } = await pending;
        if (next !== null) {
          pending = read(next);
          // The caller encodes a page synchronously, holding the event loop, and the read's promise
          // chain (pool checkout, then the write to the socket) only runs once the loop is free: one
          // turn of the loop first lets the next page's statement leave, so the database produces
          // it while this one is encoded instead of after.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        if (page) yield page;
        if (next === null) break;
      }
    } finally {
      pending.catch(() => {});
    }
  }
}
