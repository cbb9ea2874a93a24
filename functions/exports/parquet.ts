import type { Writable } from 'node:stream';
import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm/node';
import type { CandleOut } from '../api/schemas.ts';
import { DECIMAL_COLUMNS, type DecimalColumn } from '../store/exports.ts';
import { INT64_PRECISION, putDecimal } from './decimal.ts';
import { EXPORT_PAGE, type ExportPage } from './pages.ts';
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
const POW10 = Array.from({ length: 39 }, (_, k) => 10 ** k);
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

/**
 * The columns of a page, filled row by row, then handed to Arrow without copying. One set is
 * allocated per export (for the largest page) and refilled page after page: the batch is copied
 * into the writer's memory before the next page is read into it, and a fresh set per page made the
 * garbage collector run a full collection for nearly every page.
 */
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
  /**
   * Dictionary keys of the exchange, symbol and interval columns: all zero (one word each). One
   * array per column: Arrow's IPC writer wrote a stream parquet-wasm could not read when the
   * three columns shared theirs.
   */
  readonly keys: Int32Array[];
  readonly nulls = DECIMAL_COLUMNS.map(() => 0);
  tradeNulls = 0;
  sourceNulls = 0;
  n = 0;

  readonly capacity: number;
  readonly scales: number[];

  constructor(capacity: number, scales: number[]) {
    this.capacity = capacity;
    this.scales = scales;
    this.times = new Uint32Array(capacity * 2);
    this.trades = new Uint32Array(capacity * 2);
    this.tradesValid = bitmap(capacity);
    this.closed = bitmap(capacity);
    this.gap = bitmap(capacity);
    this.source = new Int32Array(capacity);
    this.sourceValid = bitmap(capacity);
    this.decimals = DECIMAL_COLUMNS.map(() => new Uint32Array(capacity * 4));
    this.valid = DECIMAL_COLUMNS.map(() => bitmap(capacity));
    this.keys = [0, 1, 2].map(() => new Int32Array(capacity));
  }

  /** Starts a page of `n` rows: clears the bitmaps and counts. */
  reset(n: number) {
    if (n > this.capacity) throw new Error(`a page of ${n} rows exceeds the ${this.capacity} the export allocated`);
    this.n = n;
    const bytes = (n + 7) >> 3;
    for (const b of [this.tradesValid, this.closed, this.gap, this.sourceValid, ...this.valid]) b.fill(0, 0, bytes);
    this.nulls.fill(0);
    this.tradeNulls = 0;
    this.sourceNulls = 0;
  }

  time(i: number, t: number) {
    this.times[2 * i] = t >>> 0;
    this.times[2 * i + 1] = (t - (t >>> 0)) / TWO32;
  }

  trade(i: number, v: number | null) {
    if (v === null) {
      this.tradeNulls++;
      this.trades[2 * i] = 0;
      this.trades[2 * i + 1] = 0;
    } else {
      this.trades[2 * i] = v >>> 0;
      this.trades[2 * i + 1] = (v - (v >>> 0)) / TWO32;
      setBit(this.tradesValid, i);
    }
  }

  decimal(i: number, k: number, text: string, start: number, end: number) {
    putDecimal(text, start, end, this.scales[k]!, this.decimals[k]!, i);
    setBit(this.valid[k]!, i);
  }

  /** A null decimal: its words are zeroed (a refilled buffer holds the previous page's value). */
  nullDecimal(i: number, k: number) {
    this.nulls[k]!++;
    const out = this.decimals[k]!;
    const o = 4 * i;
    out[o] = 0;
    out[o + 1] = 0;
    out[o + 2] = 0;
    out[o + 3] = 0;
  }

  /**
   * The decimal field of the text at `pos`, up to the next ',' or newline or the end, in one pass:
   * returns the terminator's position. Digits accumulate in a float while the value stays a safe
   * integer; anything else (a longer value, a sign, more digits after the point than the scale)
   * goes to putDecimal, which takes it through BigInt or says what is wrong.
   */
  field(i: number, k: number, text: string, pos: number): number {
    let v = 0;
    let frac = -1;
    let e = pos;
    let odd = false;
    for (const len = text.length; e < len; e++) {
      const c = text.charCodeAt(e);
      if (c === 44 || c === 10) break;
      if (c >= 48 && c <= 57) {
        v = v * 10 + (c - 48);
        if (frac >= 0) frac++;
      } else if (c === 46 && frac < 0) frac = 0;
      else odd = true;
    }
    if (e === pos) {
      this.nullDecimal(i, k);
      return e;
    }
    const scale = this.scales[k]!;
    if (frac < 0) frac = 0;
    if (!odd && frac <= scale) v *= POW10[scale - frac]!;
    if (odd || frac > scale || v > Number.MAX_SAFE_INTEGER) {
      this.decimal(i, k, text, pos, e);
      return e;
    }
    const out = this.decimals[k]!;
    const o = 4 * i;
    const lo = v >>> 0;
    out[o] = lo;
    out[o + 1] = (v - lo) / TWO32;
    out[o + 2] = 0;
    out[o + 3] = 0;
    setBit(this.valid[k]!, i);
    return e;
  }

  /** Stored candles as lines of storedCandleText, parsed in place in one pass: no string per value. */
  fromText(text: string) {
    let pos = 0;
    for (let i = 0; i < this.n; i++) {
      let v = 0;
      let c = text.charCodeAt(pos);
      for (; c !== 44; c = text.charCodeAt(++pos)) v = v * 10 + (c - 48);
      this.time(i, v);
      for (let k = 0; k < 6; k++) pos = this.field(i, k, text, pos + 1);
      pos++;
      if (text.charCodeAt(pos) === 44) {
        this.trade(i, null);
      } else {
        v = 0;
        for (c = text.charCodeAt(pos); c !== 44; c = text.charCodeAt(++pos)) v = v * 10 + (c - 48);
        this.trade(i, v);
      }
      if (text.charCodeAt(pos + 1) === 49) setBit(this.closed, i);
      pos += 2;
      // The optional fields: the last ends the line (or the text).
      for (let k = 6; k < 9; k++) pos = this.field(i, k, text, pos + 1);
      pos++;
      this.sourceNulls++;
      this.source[i] = 0;
    }
  }

  fromCandles(candles: readonly CandleOut[]) {
    for (let i = 0; i < this.n; i++) {
      const c = candles[i]!;
      this.time(i, c.openTime);
      const values = [c.open, c.high, c.low, c.close, c.volume, c.quoteVolume, c.takerBuyVolume, c.takerBuyQuoteVolume, c.vwap];
      for (let k = 0; k < 9; k++) {
        const v = values[k];
        if (v === null || v === undefined) this.nullDecimal(i, k);
        else this.decimal(i, k, v, 0, v.length);
      }
      this.trade(i, c.trades ?? null);
      if (c.closed) setBit(this.closed, i);
      if (c.gap) setBit(this.gap, i);
      if (c.sourceCandles === undefined) {
        this.sourceNulls++;
        this.source[i] = 0;
      } else {
        this.source[i] = c.sourceCandles;
        setBit(this.sourceValid, i);
      }
    }
  }
}

/** One page as an Arrow record batch over `cols` (one series, so each text column is a one-word dictionary). */
function toRecordBatch(schema: arrow.Schema, cols: PageColumns, page: ExportPage): arrow.RecordBatch {
  const n = page.rows;
  cols.reset(n);
  if (page.kind === 'text') cols.fromText(page.text);
  else cols.fromCandles(page.candles);
  const bits = (b: Uint8Array) => b.subarray(0, (n + 7) >> 3);
  const text = (c: number, value: string) =>
    arrow.makeData({ type: utf8Dict(), length: n, data: cols.keys[c]!.subarray(0, n), dictionary: arrow.vectorFromArray([value], new arrow.Utf8()) });
  const optional = (nulls: number, valid: Uint8Array) => ({ nullCount: nulls, nullBitmap: nulls ? bits(valid) : null });
  const f = schema.fields;
  const children: arrow.Data[] = [
    text(0, page.series.key.exchange),
    text(1, page.series.key.symbol),
    text(2, page.series.key.interval),
    arrow.makeData({ type: new arrow.TimestampMillisecond('UTC'), length: n, data: new BigInt64Array(cols.times.buffer, 0, n) }),
    ...cols.decimals.map((data, k) =>
      arrow.makeData({ type: f[4 + k]!.type as arrow.Decimal, length: n, data: data.subarray(0, 4 * n), ...optional(cols.nulls[k]!, cols.valid[k]!) }),
    ),
    arrow.makeData({ type: new arrow.Int64(), length: n, data: new BigInt64Array(cols.trades.buffer, 0, n), ...optional(cols.tradeNulls, cols.tradesValid) }),
    arrow.makeData({ type: new arrow.Bool(), length: n, data: bits(cols.closed) }),
    arrow.makeData({ type: new arrow.Bool(), length: n, data: bits(cols.gap) }),
  ];
  if (schema.fields.length > children.length) {
    children.push(arrow.makeData({ type: new arrow.Int32(), length: n, data: cols.source.subarray(0, n), ...optional(cols.sourceNulls, cols.sourceValid) }));
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
    // Format 2.0 data pages: integer columns (open time, the decimals' INT64, trades) are
    // DELTA_BINARY_PACKED before ZSTD, which on a year of 1m candles gave a file about a fifth
    // smaller and cut the writer's time by about a fifth. pyarrow, polars and DuckDB read both.
    .setWriterVersion(pq.WriterVersion.V2)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setCreatedBy('candlekeep export (parquet-wasm)')
    .setKeyValueMetadata(meta);
  // Prices and volumes rarely repeat: a dictionary would be built and then abandoned page after page.
  for (const c of DECIMAL_COLUMNS) b = b.setColumnDictionaryEnabled(c, false);
  // Beyond 18 digits a decimal is a 16-byte FIXED_LEN_BYTE_ARRAY, which format 2.0 would write as
  // DELTA_BYTE_ARRAY: polars cannot read that, so those columns stay PLAIN.
  for (const c of DECIMAL_COLUMNS) if (plan.decimals[c].precision > INT64_PRECISION) b = b.setColumnEncoding(c, pq.Encoding.PLAIN);
  return b.build();
}

/** Streams the pages into `out` as one Parquet file; resolves once the footer is written. */
export async function writeParquet(plan: ExportPlan, pages: AsyncIterable<ExportPage>, out: Writable, onPage: (p: ExportPage) => void): Promise<void> {
  const schema = exportSchema(plan);
  const scales = DECIMAL_COLUMNS.map((c) => plan.decimals[c].scale);
  let cols: PageColumns | undefined;
  const it = pages[Symbol.asyncIterator]();
  // An export with no candles (an as-of read of a range since expired, say) still gets a file with
  // the schema, so readers see the columns; parquet-wasm's stream writer fails on no batch at all.
  let held: IteratorResult<ExportPage> | undefined = await it.next();
  if (held.done) return writeChunk(out, emptyFile(schema));
  // parquet-wasm ends its output normally when its input stream errors, which would pass a file cut
  // short for a complete one: the failure is kept here and thrown once the output ends.
  let failure: { error: unknown } | undefined;
  const batches = new ReadableStream<pq.RecordBatch>(
    {
      async pull(controller) {
        try {
          const next = held ?? (await it.next());
          held = undefined;
          if (next.done) return controller.close();
          const page = next.value;
          if (!cols || cols.capacity < page.rows) cols = new PageColumns(Math.max(page.rows, EXPORT_PAGE), scales);
          controller.enqueue(toWasm(toRecordBatch(schema, cols, page)));
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
  for await (const chunk of bytes as unknown as AsyncIterable<Uint8Array>) {
    if (failure) break;
    await writeChunk(out, chunk);
  }
  if (failure) throw failure.error;
}

function emptyFile(schema: arrow.Schema): Uint8Array {
  const table = pq.Table.fromIPCStream(arrow.tableToIPC(new arrow.Table(schema), 'stream'));
  return pq.writeParquet(table, new pq.WriterPropertiesBuilder().setCompression(pq.Compression.ZSTD).build());
}
