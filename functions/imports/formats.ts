import { createHash } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { unzipSync } from 'fflate';
import lz4 from 'lz4js';
import { readParquet } from 'parquet-wasm/node';
import { exchangeSchema, type Candle, type Exchange, type SeriesKey } from '../candles/candle.ts';
import { INTERVAL_MS, intervalSchema, type Interval } from '../candles/intervals.ts';
import { toPlainDecimal } from '../exchanges/decimal.ts';
import { parseJsonNumbersAsText } from '../exchanges/normalise.ts';
import { Unprocessable } from '../errors.ts';

/**
 * Candle files other tools write, read into candles of one series each:
 * - freqtrade's data files `BASE_QUOTE-<timeframe>.json` (or `.json.gz`, its `jsongz` format) under
 *   `<datadir>/<exchange>/`: `[[ms, open, high, low, close, volume], ...]` as pandas writes them,
 *   its `parquet` format (a UTC `date` column and float64 prices, written by pandas), and its
 *   `feather` format (the default: the same frame as Arrow IPC, LZ4-compressed by pyarrow);
 * - CCXT `fetch_ohlcv` arrays dumped as JSON, or as CSV `timestamp,open,high,low,close,volume`
 *   (header optional): the file names no series, so exchange, symbol and interval are given;
 * - Binance public-data kline archives `SYMBOL-<interval>-YYYY-MM(-DD).zip`, checked against the
 *   `.CHECKSUM` file beside them, with their quote volume, trade count and taker-buy base and quote
 *   volumes, and open times in microseconds in spot files from 2025 on.
 * freqtrade and CCXT rows carry only time and OHLCV: columns after those are not taken as fields.
 * A file whose series or time unit cannot be determined is refused with the reason.
 */

export type ImportFormat = 'freqtrade-json' | 'freqtrade-jsongz' | 'freqtrade-parquet' | 'freqtrade-feather' | 'ccxt-json' | 'ccxt-csv' | 'binance-zip';

/** What the command line says about a file; anything the file says too must agree. */
export interface ImportHints {
  exchange?: Exchange | undefined;
  symbol?: string | undefined;
  interval?: Interval | undefined;
}

export interface ParsedFile {
  path: string;
  format: ImportFormat;
  series: SeriesKey;
  candles: Candle[];
  /** The span the file accounts for in full (a Binance archive's day or month), for the coverage ledger. */
  range?: { start: number; end: number } | undefined;
  timeUnit: 'ms' | 'us';
  /** Checked against its .CHECKSUM file (Binance archives). */
  checksum?: 'verified' | 'absent';
}

const refuse = (path: string, reason: string) => new Unprocessable(`${basename(path)}: ${reason}`, 'file');

/** Quote assets Binance symbols end with, longest first, to split BTCUSDT into BTC/USDT. */
const BINANCE_QUOTES = ['FDUSD', 'USDT', 'USDC', 'TUSD', 'BUSD', 'DAI', 'BTC', 'ETH', 'BNB', 'EUR', 'TRY', 'BRL', 'JPY', 'GBP', 'AUD', 'USD'];

function pick<T>(path: string, what: string, fromFile: T | undefined, hint: T | undefined, how: string): T {
  if (fromFile !== undefined && hint !== undefined && fromFile !== hint) {
    throw refuse(path, `the file says ${what} ${String(fromFile)} but --${what} says ${String(hint)}`);
  }
  const v = fromFile ?? hint;
  if (v === undefined) throw refuse(path, `cannot determine the ${what}: ${how}`);
  return v;
}

/** Epoch time text in ms or µs by its magnitude (2001..2286); seconds and nanoseconds are refused. */
function timeUnitOf(path: string, text: string): 'ms' | 'us' {
  if (!/^\d+$/.test(text)) throw refuse(path, `open time ${JSON.stringify(text)} is not an integer epoch time`);
  if (text.length === 13) return 'ms';
  if (text.length === 16) return 'us';
  const unit = text.length === 10 ? 'seconds' : text.length === 19 ? 'nanoseconds' : `an unknown unit (${text.length} digits)`;
  throw refuse(path, `open time ${text} looks like ${unit}; the time unit cannot be determined (expected epoch milliseconds or microseconds)`);
}

function toMs(path: string, text: string, unit: 'ms' | 'us'): number {
  const got = timeUnitOf(path, text);
  if (got !== unit) throw refuse(path, `open times mix milliseconds and microseconds (${text})`);
  const n = Number(text);
  if (unit === 'ms') return n;
  if (n % 1000 !== 0) throw refuse(path, `open time ${text} µs is not a whole millisecond`);
  return n / 1000;
}

function decimal(path: string, line: number, name: string, text: unknown): string {
  const plain = typeof text === 'string' ? toPlainDecimal(text.trim()) : undefined;
  if (plain === undefined) throw refuse(path, `row ${line}: ${name} ${JSON.stringify(text)} is not a non-negative decimal`);
  return plain;
}

/**
 * Rows [time, open, high, low, close, volume, quoteVolume?, trades?, takerBuyVolume?,
 * takerBuyQuoteVolume?] as text, to candles. Callers pass only the columns their format defines:
 * a value beyond them would be claimed as a field the file does not have.
 */
function toCandles(path: string, rows: readonly (readonly unknown[])[], interval: Interval, now: number, firstLine = 1): { candles: Candle[]; unit: 'ms' | 'us' } {
  if (rows.length === 0) throw refuse(path, 'the file holds no candles');
  const unit = timeUnitOf(path, String(rows[0]![0]));
  const step = INTERVAL_MS[interval];
  const candles = rows.map((r, k): Candle => {
    const line = k + firstLine;
    if (r.length < 6) throw refuse(path, `row ${line} has ${r.length} values; expected time, open, high, low, close, volume`);
    const openTime = toMs(path, String(r[0]), unit);
    const c: Candle = {
      openTime,
      open: decimal(path, line, 'open', r[1]),
      high: decimal(path, line, 'high', r[2]),
      low: decimal(path, line, 'low', r[3]),
      close: decimal(path, line, 'close', r[4]),
      volume: decimal(path, line, 'volume', r[5]),
      closed: openTime + step <= now,
    };
    if (r[6] !== undefined) c.quoteVolume = decimal(path, line, 'quote volume', r[6]);
    if (r[7] !== undefined) {
      const t = Number(r[7]);
      if (!Number.isSafeInteger(t) || t < 0) throw refuse(path, `row ${line}: trade count ${JSON.stringify(r[7])} is not a non-negative integer`);
      c.trades = t;
    }
    if (r[8] !== undefined) c.takerBuyVolume = decimal(path, line, 'taker buy base volume', r[8]);
    if (r[9] !== undefined) c.takerBuyQuoteVolume = decimal(path, line, 'taker buy quote volume', r[9]);
    return c;
  });
  return { candles, unit };
}

/** The six OHLCV columns of freqtrade and CCXT rows: neither defines a quote volume, trade count or taker volumes. */
const ohlcv = (rows: readonly (readonly unknown[])[]): unknown[][] => rows.map((r) => r.slice(0, 6));

function jsonRows(path: string, text: string): unknown[][] {
  let value: unknown;
  try {
    value = parseJsonNumbersAsText(text);
  } catch (err) {
    throw refuse(path, `not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(value) || !value.every((r) => Array.isArray(r))) throw refuse(path, 'expected a JSON array of [time, open, high, low, close, volume] arrays');
  return value as unknown[][];
}

/** Per Arrow time unit (SECOND, MILLISECOND, MICROSECOND, NANOSECOND): how many make a millisecond. */
const PER_MS = [0n, 1n, 1000n, 1_000_000n];

/**
 * freqtrade's parquet frame as text rows: `date` to epoch ms, each float64 as its shortest
 * round-trip text (what pandas printed when it wrote the file's JSON twin).
 */
function parquetRows(path: string, bytes: Uint8Array): string[][] {
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(readParquet(bytes).intoIPCStream());
  } catch (err) {
    throw refuse(path, `not a readable Parquet file (${(err as Error).message})`);
  }
  return frameRows(path, table);
}

// pyarrow compresses each buffer of a feather file with LZ4 (frame format) unless told otherwise;
// apache-arrow reads compressed IPC once it has a codec, and lz4js decodes the frame format in JavaScript.
let lz4Registered = false;
function registerLz4(): void {
  if (lz4Registered) return;
  arrow.compressionRegistry.set(arrow.CompressionType.LZ4_FRAME, { decode: (data) => Uint8Array.from(lz4.decompress(data)) });
  lz4Registered = true;
}

/** freqtrade's feather file (Arrow IPC file format, LZ4- or ZSTD-compressed or not) as text rows. */
function featherRows(path: string, bytes: Uint8Array): string[][] {
  registerLz4();
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(bytes);
  } catch (err) {
    throw refuse(path, `not a readable feather (Arrow IPC) file (${(err as Error).message})`);
  }
  return frameRows(path, table);
}

/** The frame freqtrade stores (`date`, open, high, low, close, volume) as text rows. */
function frameRows(path: string, table: arrow.Table): string[][] {
  const date = table.getChild('date');
  const type = date?.type;
  if (!date || !arrow.DataType.isTimestamp(type) || !PER_MS[type.unit]) throw refuse(path, 'expected a `date` timestamp column; the time unit cannot be determined');
  const per = PER_MS[type.unit]!;
  const cols = ['open', 'high', 'low', 'close', 'volume'].map((c) => {
    const v = table.getChild(c);
    if (!v) throw refuse(path, `no ${c} column`);
    return v;
  });
  const raw = date.data.flatMap((d) => Array.from(d.values as BigInt64Array));
  return raw.map((t, i) => {
    if (t % per !== 0n) throw refuse(path, `row ${i + 1}: date is not a whole millisecond`);
    return [String(t / per), ...cols.map((c) => String(c.get(i)))];
  });
}

function csvRows(path: string, text: string): { rows: string[][]; firstLine: number } {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0] !== undefined && /[a-z]/i.test(lines[0].split(',')[0] ?? '');
  if (header && !/^(timestamp|time|date|open_time)$/i.test(lines[0]!.split(',')[0]!.trim())) {
    throw refuse(path, `unknown CSV header ${JSON.stringify(lines[0])}; expected timestamp,open,high,low,close,volume`);
  }
  return { rows: lines.slice(header ? 1 : 0).map((l) => l.split(',')), firstLine: header ? 2 : 1 };
}

const FREQTRADE_NAME = /^([A-Z0-9]+)_([A-Z0-9]+)(?:_[A-Z0-9]+)?-(\d+[mhdw])(?:-(futures|mark|index|premiumIndex|funding_rate))?\.(json|json\.gz|parquet|feather)$/;
const BINANCE_NAME = /^([A-Z0-9]+)-(\d+[smhdw])-(\d{4})-(\d{2})(?:-(\d{2}))?\.zip$/;

function interval(path: string, text: string | undefined): Interval | undefined {
  if (text === undefined) return undefined;
  const r = intervalSchema.safeParse(text);
  if (!r.success) throw refuse(path, `interval ${text} is not one candlekeep stores`);
  return r.data;
}

function exchangeOfFolder(path: string): Exchange | undefined {
  const r = exchangeSchema.safeParse(basename(dirname(path)));
  return r.success ? r.data : undefined;
}

/** Reads one file; `checksumText` is the content of its .CHECKSUM file when one is beside it. */
export function parseImportFile(path: string, bytes: Uint8Array, hints: ImportHints, now: number, checksumText?: string): ParsedFile {
  const name = basename(path);
  const seriesOf = (fromName: Partial<SeriesKey>, how: string): SeriesKey => ({
    exchange: pick(path, 'exchange', fromName.exchange, hints.exchange, how),
    symbol: pick(path, 'symbol', fromName.symbol, hints.symbol, how),
    interval: pick(path, 'interval', fromName.interval, hints.interval, how),
  });

  const binance = BINANCE_NAME.exec(name);
  if (binance) {
    const [, native, iv, y, m, d] = binance;
    const quote = BINANCE_QUOTES.find((q) => native!.endsWith(q) && native!.length > q.length);
    const series = seriesOf(
      { exchange: 'binance', symbol: quote ? `${native!.slice(0, -quote.length)}/${quote}` : undefined, interval: interval(path, iv) },
      `${native} ends with no quote asset candlekeep knows; give --symbol BASE/QUOTE`,
    );
    let checksum: ParsedFile['checksum'] = 'absent';
    if (checksumText !== undefined) {
      const want = /^([0-9a-f]{64})\s/i.exec(checksumText.trim() + ' ')?.[1]?.toLowerCase();
      if (!want) throw refuse(path, 'its .CHECKSUM file holds no SHA-256');
      const got = createHash('sha256').update(bytes).digest('hex');
      if (got !== want) throw refuse(path, `SHA-256 ${got} does not match its .CHECKSUM (${want}): the download is damaged`);
      checksum = 'verified';
    }
    let entries: Record<string, Uint8Array>;
    try {
      entries = unzipSync(bytes);
    } catch (err) {
      throw refuse(path, `not a readable zip (${(err as Error).message})`);
    }
    const csv = Object.entries(entries).filter(([n]) => n.endsWith('.csv'));
    if (csv.length !== 1) throw refuse(path, `expected one CSV in the archive, found ${csv.length}`);
    const { rows, firstLine } = csvRows(path, new TextDecoder().decode(csv[0]![1]));
    // open_time, open, high, low, close, volume, close_time, quote_volume, count, taker_buy_base, taker_buy_quote, ignore
    const bad = rows.findIndex((r) => r.length < 11);
    if (bad >= 0) throw refuse(path, `row ${bad + firstLine} has ${rows[bad]!.length} values; a Binance kline CSV has 12`);
    const { candles, unit } = toCandles(path, rows.map((r) => [r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9], r[10]]), series.interval, now, firstLine);
    const start = Date.UTC(Number(y), Number(m) - 1, d ? Number(d) : 1);
    const end = d ? start + 86_400_000 : Date.UTC(Number(y), Number(m), 1);
    const outside = candles.find((c) => c.openTime < start || c.openTime >= end);
    if (outside) throw refuse(path, `candle at ${new Date(outside.openTime).toISOString()} lies outside the archive's period`);
    return { path, format: 'binance-zip', series, candles, range: { start, end }, timeUnit: unit, checksum };
  }

  const freqtrade = FREQTRADE_NAME.exec(name);
  if (freqtrade) {
    const [, base, quote, iv, kind, ext] = freqtrade;
    if (kind) throw refuse(path, `freqtrade ${kind} data is not spot candles`);
    const series = seriesOf(
      { exchange: exchangeOfFolder(path), symbol: `${base}/${quote}`, interval: interval(path, iv) },
      'freqtrade keeps files in <datadir>/<exchange>/; give --exchange',
    );
    if (ext === 'parquet') {
      const { candles, unit } = toCandles(path, parquetRows(path, bytes), series.interval, now);
      return { path, format: 'freqtrade-parquet', series, candles, timeUnit: unit };
    }
    if (ext === 'feather') {
      const { candles, unit } = toCandles(path, featherRows(path, bytes), series.interval, now);
      return { path, format: 'freqtrade-feather', series, candles, timeUnit: unit };
    }
    const text = ext === 'json.gz' ? gunzipSync(bytes).toString('utf8') : new TextDecoder().decode(bytes);
    // freqtrade's frame has six columns: anything after them is not a field it defines.
    const { candles, unit } = toCandles(path, ohlcv(jsonRows(path, text)), series.interval, now);
    return { path, format: ext === 'json.gz' ? 'freqtrade-jsongz' : 'freqtrade-json', series, candles, timeUnit: unit };
  }

  const how = 'a CCXT OHLCV file names no series; give --exchange, --symbol and --interval';
  if (name.endsWith('.json')) {
    const series = seriesOf({}, how);
    const { candles, unit } = toCandles(path, ohlcv(jsonRows(path, new TextDecoder().decode(bytes))), series.interval, now);
    return { path, format: 'ccxt-json', series, candles, timeUnit: unit };
  }
  if (name.endsWith('.csv')) {
    const series = seriesOf({}, how);
    const { rows, firstLine } = csvRows(path, new TextDecoder().decode(bytes));
    const { candles, unit } = toCandles(path, rows.map((r) => r.slice(0, 6)), series.interval, now, firstLine);
    return { path, format: 'ccxt-csv', series, candles, timeUnit: unit };
  }
  throw refuse(path, 'unknown kind of file: expected freqtrade .json/.json.gz/.parquet/.feather, CCXT .json/.csv or a Binance kline .zip');
}
