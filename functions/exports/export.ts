import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import type { SeriesKey } from '../candles/candle.ts';
import type { Queryable } from '../store/db.ts';
import { writeCsvGz } from './csv.ts';
import { exportPages, type ExportPage } from './pages.ts';
import { writeParquet } from './parquet.ts';
import { planExport, type ExportPlan } from './plan.ts';
import type { ExportRequest } from './request.ts';

export interface ExportProgress {
  /** Stored candles read so far, and in all. */
  sourceCandles: number;
  totalSourceCandles: number;
  /** Rows written so far. */
  rows: number;
}

export interface ExportResult {
  format: ExportRequest['format'];
  rows: number;
  sourceCandles: number;
  series: (SeriesKey & { rows: number; resampledFrom: string | null })[];
  skipped: ExportPlan['skipped'];
}

export interface ExportOptions {
  onProgress?: ((p: ExportProgress) => void) | undefined;
  /** Candles per read (tests make it small to cross many page boundaries). */
  pageSize?: number | undefined;
  /** With `asOf`: restatements with a larger id are after the point (see ExportPlan.asOfMark). */
  asOfMark?: number | undefined;
}

/** Writes the planned export into `out` (left open), reporting progress after each page. */
export async function writeExport(db: Queryable, plan: ExportPlan, out: Writable, opts: ExportOptions = {}): Promise<ExportResult> {
  const { onProgress } = opts;
  const progress: ExportProgress = { sourceCandles: 0, totalSourceCandles: plan.sourceCandles, rows: 0 };
  const perSeries = new Map(plan.series.map((s) => [s, 0]));
  const onPage = (p: ExportPage) => {
    progress.rows += p.rows;
    progress.sourceCandles += p.sourceCandles;
    perSeries.set(p.series, perSeries.get(p.series)! + p.rows);
    onProgress?.(progress);
  };
  const pages = exportPages(db, plan, opts.pageSize);
  if (plan.request.format === 'parquet') await writeParquet(plan, pages, out, onPage);
  else await writeCsvGz(plan, pages, out, onPage);
  return {
    format: plan.request.format,
    rows: progress.rows,
    sourceCandles: progress.sourceCandles,
    series: plan.series.map((s) => ({ ...s.key, rows: perSeries.get(s)!, resampledFrom: s.source.resampled ? s.source.source : null })),
    skipped: plan.skipped,
  };
}

/**
 * Plans and writes an export to `path`: into `path.partial` first, renamed when complete, so a
 * failed or interrupted export never leaves a file that looks finished.
 */
export async function exportToFile(
  db: Queryable,
  req: ExportRequest,
  path: string,
  opts: ExportOptions = {},
): Promise<ExportResult & { bytes: number }> {
  const plan = await planExport(db, req, opts.asOfMark);
  const partial = `${path}.partial`;
  const out = createWriteStream(partial);
  try {
    const result = await writeExport(db, plan, out, opts);
    out.end();
    await finished(out);
    await rename(partial, path);
    return { ...result, bytes: out.bytesWritten };
  } catch (err) {
    out.destroy();
    await rm(partial, { force: true });
    throw err;
  }
}
