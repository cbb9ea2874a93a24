import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeCsvGz } from '../../../functions/exports/csv.ts';
import type { ExportPage } from '../../../functions/exports/pages.ts';
import { writeParquet } from '../../../functions/exports/parquet.ts';
import type { ExportPlan, PlannedSeries } from '../../../functions/exports/plan.ts';
import { DECIMAL_COLUMNS } from '../../../functions/store/exports.ts';

/*
 * A read that fails halfway through an export (the database went away, the worker ran out of time)
 * must fail the export: a file cut short must never pass for a complete one.
 */

const series = { key: { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' }, source: { resampled: false } } as unknown as PlannedSeries;
const plan = (format: 'parquet' | 'csv.gz') =>
  ({
    request: { format, gaps: 'omit' },
    series: [series],
    skipped: [],
    resampled: false,
    sourceCandles: 2,
    decimals: Object.fromEntries(DECIMAL_COLUMNS.map((c) => [c, { scale: 2, precision: 18 }])),
  }) as unknown as ExportPlan;

async function* failingPages(): AsyncGenerator<ExportPage> {
  yield { series, rows: 1, sourceCandles: 1, kind: 'text', text: '1700000000000,1.00,1.50,0.50,1.20,3.00,,,1,,,' };
  throw new Error('the database went away');
}

const sink = () => {
  const out = new PassThrough();
  out.resume();
  return out;
};

describe('an export whose pages fail', () => {
  it('rejects in Parquet instead of ending the file early', async () => {
    const pages: number[] = [];
    await expect(writeParquet(plan('parquet'), failingPages(), sink(), (p) => pages.push(p.rows))).rejects.toThrow('the database went away');
    expect(pages).toEqual([1]);
  });

  it('rejects in Parquet when the progress callback stops it', async () => {
    await expect(
      writeParquet(plan('parquet'), failingPages(), sink(), () => {
        throw new Error('out of time');
      }),
    ).rejects.toThrow('out of time');
  });

  it('rejects in csv.gz', async () => {
    await expect(writeCsvGz(plan('csv.gz'), failingPages(), sink(), () => {})).rejects.toThrow('the database went away');
  });
});
