import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFound } from '../errors.ts';
import { exportToFile, type ExportOptions } from '../exports/export.ts';
import { exportRequestSchema } from '../exports/request.ts';
import type { AsOf } from '../store/as-of.ts';
import { digestRange, getRun, runFingerprint } from '../store/backtests.ts';
import type { Queryable } from '../store/db.ts';
import { expiredSince } from '../store/retention.ts';
import { fingerprintValue, type Fingerprint, type InstrumentPrint } from './fingerprint.ts';
import type { Backtest } from './record.ts';

/** The files `reproduce` writes into its folder. */
export const RUN_FILE = 'run.json';
export const CANDLES_FILE = 'candles.parquet';
export const RERUN_FILE = 'rerun.json';

export interface FingerprintCheck {
  /** The fingerprint the run stored. */
  stored: string;
  /** The fingerprint of the candles as of the run (what the Parquet file holds). */
  asOfRun: string;
  /** The fingerprint of the candles stored now. */
  current: string;
  matches: boolean;
  /** Candles as of the run, and now. */
  candles: number;
  currentCandles: number;
  /** Per instrument whose as-of candles differ from the print: why, in words. */
  mismatches: string[];
  /**
   * The instruments whose run range lost candles to retention since the run: their candles are
   * deleted on purpose (and their history with them), so no read of the database gives them back.
   */
  expired: ExpiredInstrument[];
}

export interface ExpiredInstrument {
  exchange: string;
  symbol: string;
  source: string;
  /** Candles of the run's range the database no longer holds, as of the run. */
  missing: number;
  /** Retention has deleted every candle of the series before this open time (ISO). */
  expiredBefore: string;
}

export interface Reproduction {
  run: Backtest;
  asOf: string;
  files: { run: string; candles: string; rerun: string };
  rows: number;
  check: FingerprintCheck;
}

/** The point a run's fingerprint was taken at: its time, and the newest restatement it had seen. */
export const pointOf = (fp: Fingerprint): AsOf => ({ at: Date.parse(fp.computedAt), mark: fp.instruments[0]?.restatementMark ?? 0 });

/**
 * Recomputes a run's fingerprint over the candles as of the run (from the restatement history) and
 * over the candles stored now: the first matching the stored value means the data the run saw is
 * exactly what `asOf` reads give back.
 */
export async function checkRunData(db: Queryable, fp: Fingerprint): Promise<FingerprintCheck> {
  const point = pointOf(fp);
  const then: InstrumentPrint[] = [];
  const now: InstrumentPrint[] = [];
  const mismatches: string[] = [];
  const expired: ExpiredInstrument[] = [];
  for (const p of fp.instruments) {
    const a = await digestRange(db, p.seriesId, p.start, p.end, point);
    const c = await digestRange(db, p.seriesId, p.start, p.end);
    then.push({ ...p, ...a });
    now.push({ ...p, ...c });
    if (a.candles === p.candles && a.digest === p.digest) continue;
    const cut = a.candles < p.candles ? await expiredSince(db, p.seriesId, p.start, fp.computedAt) : undefined;
    if (cut !== undefined) {
      // Retention deleted candles the run read (and their restatement history with them): not a
      // restatement, and nothing in the database can give them back.
      const e = { exchange: p.exchange, symbol: p.symbol, source: p.source, missing: p.candles - a.candles, expiredBefore: new Date(cut).toISOString() };
      expired.push(e);
      mismatches.push(
        `${p.exchange} ${p.symbol} ${p.source}: ${e.missing} of the ${p.candles} candles the run read were deleted by retention ` +
          `since it ran (the series keeps no candles before ${e.expiredBefore}); the database cannot give them back, so the run ` +
          'cannot be reproduced from it (see `candlekeep markets list --followed` for the retention in force)',
      );
    } else {
      mismatches.push(
        `${p.exchange} ${p.symbol} ${p.source}: ${a.candles} candles as of the run where the run saw ${p.candles}` +
          (a.candles === p.candles ? ' (same count, different values: a candle still open then has changed since, and its earlier versions are not kept)' : ''),
      );
    }
  }
  const asOfRun = fingerprintValue(then);
  return {
    stored: fp.value,
    asOfRun,
    current: fingerprintValue(now),
    matches: asOfRun === fp.value,
    candles: then.reduce((n, p) => n + p.candles, 0),
    currentCandles: now.reduce((n, p) => n + p.candles, 0),
    mismatches,
    expired,
  };
}

/**
 * Writes what a stored run needs to be re-run exactly into `dir`: `run.json` (its stored
 * configuration and fingerprint), `candles.parquet` (its instruments' source candles in its range,
 * as stored when the run was recorded) and `rerun.json` (the body to record the re-run with, its
 * metrics left to fill in), then checks those candles against the stored fingerprint.
 */
export async function reproduceRun(db: Queryable, id: string, dir: string, opts: Pick<ExportOptions, 'onProgress'> = {}): Promise<Reproduction> {
  const run = await getRun(db, id, { equityCurve: false, trades: false });
  const fp = run && (await runFingerprint(db, id));
  if (!run || !fp) throw new NotFound(`no backtest run ${id}`, 'id');
  const point = pointOf(fp);
  const asOf = new Date(point.at).toISOString();
  await mkdir(dir, { recursive: true });

  // The series the fingerprint read (the stored interval each instrument came from), once each.
  const series = [...new Set(fp.instruments.map((p) => `${p.exchange}:${p.symbol}:${p.source}`))];
  const request = exportRequestSchema.parse({ series, start: run.start, end: run.end, asOf, format: 'parquet' });
  const candlesPath = join(dir, CANDLES_FILE);
  const exported = await exportToFile(db, request, candlesPath, { asOfMark: point.mark, onProgress: opts.onProgress });
  const check = await checkRunData(db, fp);

  const runPath = join(dir, RUN_FILE);
  const config = {
    run,
    fingerprint: fp,
    candles: { file: CANDLES_FILE, asOf, restatementMark: point.mark, series, rows: exported.rows },
  };
  await writeFile(runPath, `${JSON.stringify(config, null, 2)}\n`);
  // POST /v1/backtests (or `candlekeep backtests put`) this once the re-run's metrics are filled in.
  const rerunPath = join(dir, RERUN_FILE);
  const rerun = {
    strategy: run.strategy,
    strategyVersion: run.strategyVersion,
    parameters: run.parameters,
    instruments: run.instruments,
    start: run.start,
    end: run.end,
    metrics: {},
    tags: run.tags,
    reproducedFrom: run.id,
  };
  await writeFile(rerunPath, `${JSON.stringify(rerun, null, 2)}\n`);
  return { run, asOf, files: { run: runPath, candles: candlesPath, rerun: rerunPath }, rows: exported.rows, check };
}
