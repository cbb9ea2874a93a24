import { encodeCandleBatches, parseCandleBatch, type CandleBatch } from '../candles/candle-batch.ts';
import { Unprocessable } from '../errors.ts';
import type { CandleStore, UpsertResult } from '../store/candles.ts';
import type { Db } from '../store/db.ts';
import type { ParsedFile } from './formats.ts';

/** Candles per write statement inside the import's transaction. */
const CHUNK_MESSAGES = 8;

export interface ImportProgress {
  candles: number;
  total: number;
}

/**
 * Stores parsed files through the writer's own path: each file becomes the CandleBatch v1 messages
 * a pull would send (the same encoder and parser, so every row is checked as the writer checks
 * it), and CandleStore applies them with the finality rules, dedup and the coverage ledger (the
 * range of a Binance archive). All files go in one transaction: a failure stores nothing.
 * `fetchedAt` orders these versions against stored ones (a restatement needs a later fetch).
 */
export async function importFiles(
  db: Db,
  store: CandleStore,
  files: readonly ParsedFile[],
  fetchedAt: (f: ParsedFile) => number,
  onProgress?: (p: ImportProgress) => void,
): Promise<UpsertResult> {
  const batches: CandleBatch[] = [];
  for (const f of files) {
    for (const body of encodeCandleBatches(f.series, f.candles, fetchedAt(f), f.range)) {
      const parsed = parseCandleBatch(body);
      if (!parsed.ok) throw new Unprocessable(`${f.path}: ${parsed.reason}`, 'file');
      batches.push(parsed.batch);
    }
  }
  const chunks: CandleBatch[][] = [];
  for (let i = 0; i < batches.length; i += CHUNK_MESSAGES) chunks.push(batches.slice(i, i + CHUNK_MESSAGES));
  const total = batches.reduce((n, b) => n + b.rows.length, 0);
  let done = 0;
  return store.writeAll(db, chunks, (chunk) => {
    done += chunk.reduce((n, b) => n + b.rows.length, 0);
    onProgress?.({ candles: done, total });
  });
}
