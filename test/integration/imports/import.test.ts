import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { parseJsonNumbersAsText } from '../../../functions/exchanges/normalise.ts';
import { toPlainDecimal } from '../../../functions/exchanges/decimal.ts';
import { loadCoverage } from '../../../functions/store/coverage.ts';
import type { Db } from '../../../functions/store/db.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { runCli, runProcess } from '../../support/cli.ts';
import { testPool } from '../../support/db.ts';
import { readStored } from '../../support/stored-candles.ts';

/*
 * `candlekeep import` on the sample files in test/fixtures/imports (made as freqtrade, CCXT and
 * Binance's public data make them; make_samples.py says how), copied under symbols no other test
 * uses. Every stored value is compared with the file's own text.
 */

const FIXTURES = projectPath('test/fixtures/imports');
let db: Db;
let dir: string;
const base = () => `I${randomBytes(3).toString('hex').toUpperCase()}`;
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as { files: { format: string; candles: number; timeUnit: string; checksum?: string }[]; written: number; received: number };

/** A fixture copied to `name` in a folder of the temporary directory (with its CHECKSUM, renamed alike). */
async function fixture(from: string, folder: string, name: string): Promise<string> {
  await mkdir(join(dir, folder), { recursive: true });
  const to = join(dir, folder, name);
  await copyFile(join(FIXTURES, from), to);
  const sum = await readFile(join(FIXTURES, `${from}.CHECKSUM`), 'utf8').catch(() => undefined);
  if (sum !== undefined) await writeFile(`${to}.CHECKSUM`, sum);
  return to;
}

const plain = (v: string) => toPlainDecimal(v)!;

beforeAll(async () => {
  db = testPool(2);
  dir = await mkdtemp(join(tmpdir(), 'candlekeep-import-'));
});
afterAll(async () => {
  await db?.end();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('candlekeep import', () => {
  it('stores a Binance monthly and a daily (µs) archive exactly, taker-buy volumes included, checked against their CHECKSUM, and claims their periods in the ledger', async () => {
    const b = base();
    const monthly = await fixture('binance/BTCUSDT-1h-2024-12.zip', 'binance', `${b}USDT-1h-2024-12.zip`);
    const daily = await fixture('binance/BTCUSDT-1m-2025-01-02.zip', 'binance', `${b}USDT-1m-2025-01-02.zip`);
    const r = await runCli(['import', monthly, daily, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('import [');
    const out = lastJson(r.stdout);
    expect(out.files.map((f) => [f.format, f.candles, f.timeUnit, f.checksum])).toEqual([
      ['binance-zip', 744, 'ms', 'verified'],
      ['binance-zip', 1440, 'us', 'verified'],
    ]);
    expect(out.written).toBe(744 + 1440);

    for (const [file, interval, unit] of [[monthly, '1h', 1], [daily, '1m', 1000]] as const) {
      const csv = new TextDecoder().decode(Object.values(unzipSync(await readFile(file)))[0]!).trim().split('\n').map((l) => l.split(','));
      const series: SeriesKey = { exchange: 'binance', symbol: `${b}/USDT`, interval };
      const stored = await readStored(db, series);
      expect(stored).toEqual(
        csv.map((c) => ({
          openTime: Number(c[0]) / unit, open: c[1], high: c[2], low: c[3], close: c[4], volume: c[5], quoteVolume: c[7], trades: Number(c[8]), closed: true,
          takerBuyVolume: c[9], takerBuyQuoteVolume: c[10],
        })),
      );
      const id = (await findSeriesId(db, series))!;
      const first = stored[0]!.openTime;
      const end = interval === '1h' ? Date.UTC(2025, 0, 1) : Date.UTC(2025, 0, 3);
      expect(await loadCoverage(db, id, { start: first - 86_400_000, end: end + 86_400_000 })).toEqual([{ start: first, end, candles: stored.length }]);
    }

    const again = await runCli(['import', monthly, '--json', '-q']);
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again.stdout)).toMatchObject({ received: 744, written: 0 });
  });

  it('stores freqtrade json, jsongz and parquet files under their exchange folder, and CCXT arrays with the series given', async () => {
    const b = base();
    const json = await fixture('freqtrade/binance/ETH_USDT-5m.json', 'binance', `${b}_USDT-5m.json`);
    const gz = await fixture('freqtrade/okx/SOL_USDT-1h.json.gz', 'okx', `${b}_USDT-1h.json.gz`);
    const r = await runCli(['import', json, gz, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).files.map((f) => f.format)).toEqual(['freqtrade-json', 'freqtrade-jsongz']);
    for (const [file, series, text] of [
      [json, { exchange: 'binance', symbol: `${b}/USDT`, interval: '5m' }, (await readFile(json)).toString()],
      [gz, { exchange: 'okx', symbol: `${b}/USDT`, interval: '1h' }, gunzipSync(await readFile(gz)).toString()],
    ] as const) {
      const rows = parseJsonNumbersAsText(text) as string[][];
      expect(await readStored(db, series as SeriesKey), file).toEqual(
        rows.map((c) => ({ openTime: Number(c[0]), open: plain(c[1]!), high: plain(c[2]!), low: plain(c[3]!), close: plain(c[4]!), volume: plain(c[5]!), quoteVolume: null, trades: null, closed: true })),
      );
    }

    // pyarrow reads the parquet sample's first and last volumes as 14.80085 and 15.09237.
    const pq = await fixture('freqtrade/bybit/XRP_USDT-15m.parquet', 'bybit', `${b}_USDT-15m.parquet`);
    const p = await runCli(['import', pq, '--json']);
    expect(p.code, p.stderr).toBe(0);
    expect(lastJson(p.stdout).files[0]).toMatchObject({ format: 'freqtrade-parquet', candles: 96, timeUnit: 'ms' });
    const parquetRows = await readStored(db, { exchange: 'bybit', symbol: `${b}/USDT`, interval: '15m' });
    expect(parquetRows.map((x) => x.openTime)).toEqual(Array.from({ length: 96 }, (_, i) => 1717200000000 + i * 900_000));
    expect([parquetRows[0]!.open, parquetRows[0]!.volume, parquetRows[95]!.volume]).toEqual(['0.52', '14.80085', '15.09237']);

    const csvSeries: SeriesKey = { exchange: 'kraken', symbol: `${b}/USD`, interval: '15m' };
    const csv = join(FIXTURES, 'ccxt/kraken-ada-usd-15m.csv');
    const refused = await runCli(['import', csv]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('cannot determine the exchange');
    const c = await runCli(['import', csv, '-e', 'kraken', '-s', csvSeries.symbol, '-i', '15m', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const lines = (await readFile(csv, 'utf8')).trim().split('\n').slice(1).map((l) => l.split(','));
    expect((await readStored(db, csvSeries)).map((s) => [s.openTime, s.open, s.close, s.volume])).toEqual(lines.map((l) => [Number(l[0]), l[1], l[4], l[5]]));
    const j = await runCli(['import', join(FIXTURES, 'ccxt/kraken-ada-usd-15m.json'), '-e', 'kraken', '-s', csvSeries.symbol, '-i', '15m', '--json']);
    expect(j.code, j.stderr).toBe(0);
    expect(lastJson(j.stdout)).toMatchObject({ received: lines.length, written: 0 });
  });

  it('stores freqtrade feather files (Arrow IPC, LZ4-compressed by pyarrow as freqtrade writes them) with every value pyarrow reads', async () => {
    const b = base();
    const file = await fixture('freqtrade/kraken/DOT_USD-30m.feather', 'kraken', `${b}_USD-30m.feather`);
    const r = await runCli(['import', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).files[0]).toMatchObject({ format: 'freqtrade-feather', candles: 96, timeUnit: 'ms' });
    // What pyarrow reads, each float as its shortest round-trip text (Python's repr, as JavaScript's String).
    const read = await runProcess(process.env.CANDLEKEEP_TEST_PYTHON!, [
      '-c',
      'import json, sys, pyarrow.feather as f\n' +
        't = f.read_table(sys.argv[1]).to_pydict()\n' +
        'print(json.dumps([[int(d.timestamp() * 1000)] + [repr(t[c][i]) for c in ("open", "high", "low", "close", "volume")] for i, d in enumerate(t["date"])]))',
      file,
    ]);
    expect(read.code, read.stderr).toBe(0);
    const want = JSON.parse(read.stdout) as [number, string, string, string, string, string][];
    expect(want).toHaveLength(96);
    const stored = await readStored(db, { exchange: 'kraken', symbol: `${b}/USD`, interval: '30m' });
    expect(stored.map((s) => [s.openTime, s.open, s.high, s.low, s.close, s.volume])).toEqual(want.map(([t, ...v]) => [t, ...v.map(plain)]));
  });

  it('refuses what it cannot determine or trust, with the reason, and stores nothing of any file named with it', async () => {
    const b = base();
    const good = await fixture('binance/BTCUSDT-1h-2024-12.zip', 'binance', `${b}USDT-1h-2024-12.zip`);
    const damaged = await fixture('binance/BTCUSDT-1m-2025-01-02.zip', 'binance', `${b}USDT-1m-2025-01-02.zip`);
    await writeFile(`${damaged}.CHECKSUM`, `${'0'.repeat(64)}  ${b}USDT-1m-2025-01-02.zip\n`);
    const r = await runCli(['import', good, damaged]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('does not match its .CHECKSUM');

    const seconds = join(dir, 'seconds.json');
    await writeFile(seconds, JSON.stringify([[1719792000, 1, 1, 1, 1, 1]]));
    const s = await runCli(['import', seconds, '-e', 'kraken', '-s', `${b}/USD`, '-i', '15m']);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain('looks like seconds; the time unit cannot be determined');

    const unknownQuote = await fixture('binance/BTCUSDT-1h-2024-12.zip', 'binance', `${b}XYZ-1h-2024-12.zip`);
    const q = await runCli(['import', unknownQuote]);
    expect(q.code).toBe(1);
    expect(q.stderr).toContain('give --symbol BASE/QUOTE');

    const badRow = join(dir, 'binance', `${b}_USDT-1h.json`);
    await writeFile(badRow, '[[1733011200000, 10.5, 10.0, 11.0, 10.2, 3.0]]'); // high below low
    const w = await runCli(['import', good, badRow]);
    expect(w.code).toBe(1);
    expect(w.stderr).toContain(`${b}_USDT-1h.json`);

    expect(await readStored(db, { exchange: 'binance', symbol: `${b}/USDT`, interval: '1h' })).toEqual([]);
  });
});
