import type { Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { CandleOut } from '../api/schemas.ts';
import { csvRows, toCsv, type CsvValue } from '../http/csv.ts';
import { iso } from '../http/time.ts';
import type { ExportPage } from './pages.ts';
import type { ExportPlan } from './plan.ts';

/** The CSV columns: the series, then the candle columns of GET /v1/candles as CSV. */
export function csvColumns(plan: ExportPlan): string[] {
  return [
    'exchange', 'symbol', 'interval', 'time', 'open_time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades', 'closed', 'gap',
    'taker_buy_volume', 'taker_buy_quote_volume', 'vwap',
    ...(plan.resampled ? ['source_candles'] : []),
  ];
}

/** Stored candles from the lines of storedCandleText, as reads return them. */
function fromText(text: string): CandleOut[] {
  return text.split('\n').map((line) => {
    const f = line.split(',');
    const opt = (v: string) => (v === '' ? null : v);
    const c: CandleOut = {
      openTime: Number(f[0]), open: f[1]!, high: f[2]!, low: f[3]!, close: f[4]!, volume: f[5]!, quoteVolume: opt(f[6]!),
      trades: f[7] === '' ? null : Number(f[7]), closed: f[8] === '1', gap: false,
    };
    if (f[9]) c.takerBuyVolume = f[9];
    if (f[10]) c.takerBuyQuoteVolume = f[10];
    if (f[11]) c.vwap = f[11];
    return c;
  });
}

function rows(plan: ExportPlan, page: ExportPage): CsvValue[][] {
  const { exchange, symbol, interval } = page.series.key;
  const candles = page.kind === 'text' ? fromText(page.text) : page.candles;
  return candles.map((c) => {
    const row: CsvValue[] = [
      exchange, symbol, interval, iso(c.openTime), c.openTime, c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.trades, c.closed, c.gap,
      c.takerBuyVolume ?? null, c.takerBuyQuoteVolume ?? null, c.vwap ?? null,
    ];
    if (plan.resampled) row.push(c.sourceCandles ?? null);
    return row;
  });
}

/** Streams the pages into `out` as gzip-compressed CSV with a header row; decimals stay the stored text. */
export async function writeCsvGz(plan: ExportPlan, pages: AsyncIterable<ExportPage>, out: Writable, onPage: (p: ExportPage) => void): Promise<void> {
  async function* text() {
    yield toCsv(csvColumns(plan), []);
    for await (const page of pages) {
      yield csvRows(rows(plan, page));
      onPage(page);
    }
  }
  await pipeline(Readable.from(text()), createGzip({ level: 6 }), out, { end: false });
}
