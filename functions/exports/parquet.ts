import type { Writable } from 'node:stream';
import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm/node';
import type { CandleOut } from '../api/schemas.ts';
import { DECIMAL_COLUMNS, type DecimalColumn } from '../store/exports.ts';
import { putDecimal } from './decimal.ts';
import type { ExportPage } from './pages.ts';
import type { ExportPlan } from './plan.ts';
import { writeChunk } from './sink.ts';

/*
 * Parquet through parquet-wasm: the Rust `parquet` crate's ArrowWriter (the writer behind
 * arrow-rs, DataFusion and delta-rs) compiled to WebAssembly, fed Arrow record batches built with
 * apache-arrow. It writes DECIMAL with INT64 storage up to 18 digits and a UTC-adjusted
 * TIMESTAMP(MILLIS), ZSTD pages, and streams: each row group is flushed as soon as it is full.
 */

/** Rows per row group: half a year of 1m candles, a few MB compressed; the writer holds one in memory. */
export const ROW_GROUP_ROWS = 262_144;

const TWO32 = 4294967296;
/** Decimal columns every stored candle has: quote volume and the optional fields may be null. */
const BASE_REQUIRED = new Set<DecimalColumn>(['open', 'high', 'low', 'close', 'volume']);
const utf8Dict = () => new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32());

/** The file's schema: documented in the README's Exports section. */
export function exportSchema(plan: ExportPlan): arrow.Schema {
  const decimal = (c: DecimalColumn) => new arrow.Decimal(plan.decimals[c].scale, plan.decimals[c].precision, 128);
  const nullablePrices = plan.request.gaps === 'null';
  const fields = [
    new arrow.Field('exchange', utf8Dict(), false),
    new arrow.Field('symbol', utf8Dict(), false),
    new arrow.Field('interval', utf8Dict(), false),
    new arrow.Field('open_time', new arrow.TimestampMillisecond('UTC'), false),
    ...DECIMAL_COLUMNS.map((c) => new arrow.Field(c, decimal(c), !BASE_REQUIRED.has(c) || nullablePrices)),
    new arrow.Field('trades', new arrow.Int64(), true),
    new arrow.Field('closed', new arrow.Bool(), false),
    new arrow.Field('gap', new arrow.Bool(), false),
    ...(plan.resampled ? [new arrow.Field('source_candles', new arrow.Int32(), true)] : []),
  ];
  return new arrow.Schema(fields);
}

const bitmap = (n: number) => new Uint8Array((n + 7) >> 3);
const setBit = (b: Uint8Array, i: number) => {
  b[i >> 3]! |= 1 << (i & 7);
};

/** The columns of one page, filled row by row, then handed to Arrow without copying. */
class PageColumns {
  readonly times: Uint32Array;
  readonly trades: Uint32Array;
  readonly tradesValid: Uint8Array;
  readonly closed: Uint8Array;
  readonly gap: Uint8Array;
  readonly source: Int32Array;
  readonly sourceValid: Uint8Array;
  readonly decimals: Uint32Array[];
  readonly valid: Uint8Array[];
  readonly nulls = DECIMAL_COLUMNS.map(() => 0);
  tradeNulls = 0;
  sourceNulls = 0;

  readonly n: number;
  readonly scales: number[];

  constructor(n: number, scales: number[]) {
    this.n = n;
    this.scales = scales;
    this.times = new Uint32Array(n * 2);
    this.trades = new Uint32Array(n * 2);
    this.tradesValid = bitmap(n);
    this.closed = bitmap(n);
    this.gap = bitmap(n);
    this.source = new Int32Array(n);
    this.sourceValid = bitmap(n);
    this.decimals = DECIMAL_COLUMNS.map(() => new Uint32Array(n * 4));
    this.valid = DECIMAL_COLUMNS.map(() => bitmap(n));
  }

  time(i: number, t: number) {
    this.times[2 * i] = t >>> 0;
    this.times[2 * i + 1] = (t - (t >>> 0)) / TWO32;
  }

  trade(i: number, v: number | null) {
    if (v === null) this.tradeNulls++;
    else {
      this.trades[2 * i] = v >>> 0;
      this.trades[2 * i + 1] = (v - (v >>> 0)) / TWO32;
      setBit(this.tradesValid, i);
    }
  }

  decimal(i: number, k: number, text: string, start: number, end: number) {
    putDecimal(text, start, end, this.scales[k]!, this.decimals[k]!, i);
    setBit(this.valid[k]!, i);
  }

  /** Stored candles as lines of storedCandleText, parsed in place: no string per value. */
  fromText(text: string) {
    let pos = 0;
    for (let i = 0; i < this.n; i++) {
      let e = text.indexOf(',', pos);
      this.time(i, digits(text, pos, e));
      pos = e + 1;
      for (let k = 0; k < 6; k++) {
        e = text.indexOf(',', pos);
        if (e === pos) this.nulls[k]!++;
        else this.decimal(i, k, text, pos, e);
        pos = e + 1;
      }
      e = text.indexOf(',', pos);
      this.trade(i, e === pos ? null : digits(text, pos, e));
      if (text.charCodeAt(e + 1) === 49) setBit(this.closed, i);
      pos = e + 3;
      // The optional fields: the last ends the line (or the text).
      for (let k = 6; k < 9; k++) {
        e = k < 8 ? text.indexOf(',', pos) : text.indexOf('\n', pos);
        if (e < 0) e = text.length;
        if (e === pos) this.nulls[k]!++;
        else this.decimal(i, k, text, pos, e);
        pos = e + 1;
      }
      this.sourceNulls++;
    }
  }

  fromCandles(candles: readonly CandleOut[]) {
    for (let i = 0; i < this.n; i++) {
      const c = candles[i]!;
      this.time(i, c.openTime);
      const values = [c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.takerBuyVolume, c.takerBuyQuoteVolume, c.vwap];
      for (let k = 0; k < 9; k++) {
        const v = values[k];
        if (v === null || v === undefined) this.nulls[k]!++;
        else this.decimal(i, k, v, 0, v.length);
      }
      this.trade(i, c.trades ?? null);
      if (c.closed) setBit(this.closed, i);
      if (c.gap) setBit(this.gap, i);
      if (c.sourceCandles === undefined) this.sourceNulls++;
      else {
        this.source[i] = c.sourceCandles;
        setBit(this.sourceValid, i);
      }
    }
  }
}

/** A non-negative integer written in text[start, end). */
function digits(text: string, start: number, end: number): number {
  let v = 0;
  for (let k = start; k < end; k++) v = v * 10 + (text.charCodeAt(k) - 48);
  return v;
}

/** One page as an Arrow record batch (one series, so each text column is a one-word dictionary). */
function toRecordBatch(plan: ExportPlan, schema: arrow.Schema, page: ExportPage): arrow.RecordBatch {
  const n = page.rows;
  const cols = new PageColumns(n, DECIMAL_COLUMNS.map((c) => plan.decimals[c].scale));
  if (page.kind === 'text') cols.fromText(page.text);
  else cols.fromCandles(page.candles);
  const text = (value: string) =>
    arrow.makeData({ type: utf8Dict(), length: n, data: new Int32Array(n), dictionary: arrow.vectorFromArray([value], new arrow.Utf8()) });
  const optional = (nulls: number, valid: Uint8Array) => ({ nullCount: nulls, nullBitmap: nulls ? valid : null });
  const f = schema.fields;
  const children: arrow.Data[] = [
    text(page.series.key.exchange),
    text(page.series.key.symbol),
    text(page.series.key.interval),
    arrow.makeData({ type: new arrow.TimestampMillisecond('UTC'), length: n, data: new BigInt64Array(cols.times.buffer) }),
    ...cols.decimals.map((data, k) =>
      arrow.makeData({ type: f[4 + k]!.type as arrow.Decimal, length: n, data, ...optional(cols.nulls[k]!, cols.valid[k]!) }),
    ),
    arrow.makeData({ type: new arrow.Int64(), length: n, data: new BigInt64Array(cols.trades.buffer), ...optional(cols.tradeNulls, cols.tradesValid) }),
    arrow.makeData({ type: new arrow.Bool(), length: n, data: cols.closed }),
    arrow.makeData({ type: new arrow.Bool(), length: n, data: cols.gap }),
  ];
  if (plan.resampled) {
    children.push(arrow.makeData({ type: new arrow.Int32(), length: n, data: cols.source, ...optional(cols.sourceNulls, cols.sourceValid) }));
  }
  return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: n, children }));
}

/** Arrow JS batch to a batch in the writer's WebAssembly memory, through one IPC message. */
function toWasm(batch: arrow.RecordBatch): pq.RecordBatch {
  const table = pq.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table([batch]), 'stream'));
  try {
    return table.recordBatches()[0]!;
  } finally {
    table.free();
  }
}

function writerProperties(plan: ExportPlan): pq.WriterProperties {
  const meta = new Map([
    ['candlekeep', JSON.stringify({ request: plan.request, series: plan.series.map((s) => ({ ...s.key, resampledFrom: s.source.resampled ? s.source.source : null })) })],
  ]);
  let b = new pq.WriterPropertiesBuilder()
    .setCompression(pq.Compression.ZSTD)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setCreatedBy('candlekeep export (parquet-wasm)')
    .setKeyValueMetadata(meta);
  // Prices and volumes rarely repeat: a dictionary would be built and then abandoned page after page.
  for (const c of DECIMAL_COLUMNS) b = b.setColumnDictionaryEnabled(c, false);
  return b.build();
}

/** Streams the pages into `out` as one Parquet file; resolves once the footer is written. */
export async function writeParquet(plan: ExportPlan, pages: AsyncIterable<ExportPage>, out: Writable, onPage: (p: ExportPage) => void): Promise<void> {
  const schema = exportSchema(plan);
  const it = pages[Symbol.asyncIterator]();
  // parquet-wasm ends its output normally when its input stream errors, which would pass a file cut
  // short for a complete one: the failure is kept here and thrown once the output ends.
  let failure: { error: unknown } | undefined;
  const batches = new ReadableStream<pq.RecordBatch>(
    {
      async pull(controller) {
        try {
          const next = await it.next();
          if (next.done) return controller.close();
          controller.enqueue(toWasm(toRecordBatch(plan, schema, next.value)));
          onPage(next.value);
        } catch (error) {
          failure = { error };
          controller.error(error);
        }
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  const bytes = await pq.transformParquetStream(batches, writerProperties(plan));
  // An export with no candles still gets a file with the schema: readers then see the columns.
  let wrote = false;
  for await (const chunk of bytes as unknown as AsyncIterable<Uint8Array>) {
    if (failure) break;
    wrote = true;
    await writeChunk(out, chunk);
  }
  if (failure) throw failure.error;
  if (!wrote) await writeChunk(out, emptyFile(schema));
}

function emptyFile(schema: arrow.Schema): Uint8Array {
  const table = pq.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(schema), 'stream'));
  return pq.writeParquet(table, new pq.WriterPropertiesBuilder().setCompression(pq.Compression.ZSTD).build());
}
