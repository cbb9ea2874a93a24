import type { CandleBatch, CandleRow } from '../candles/candle-batch.ts';
import type { SeriesKey } from '../candles/candle.ts';
import { INTERVAL_MS, type Interval } from '../candles/intervals.ts';
import { claimsRecorded, recordClaims, type CoverageClaim } from './coverage.ts';
import { inTransaction, type Db, type Queryable } from './db.ts';
import { CandlePartitions, yearsOf } from './partitions.ts';
import { changedBuckets, markChanged } from './rollups.ts';
import { retentionHorizon } from './retention.ts';
import { SeriesRegistry } from './series.ts';
import { candleColumns, candleJson, fromColumns, type CandleColumns, type StoredCandle } from './candle-columns.ts';
import { ms } from './sql.ts';
import { candlesAt, type AsOf } from './as-of.ts';

export type { StoredCandle } from './candle-columns.ts';

export interface UpsertResult {
  /** Candles in the input after de-duplication. */
  received: number;
  /** Rows inserted or updated. */
  written: number;
  /** Rows left as they were: identical rewrites, open versions of closed candles, stale versions. */
  unchanged: number;
}

interface Version {
  seriesId: number;
  fetchedAt: number;
  row: CandleRow;
}

/** Which of two versions of the same candle wins, by the finality rules. */
function newer(a: Version, b: Version): Version {
  const aClosed = a.row[8] === 1;
  const bClosed = b.row[8] === 1;
  if (aClosed !== bClosed) return aClosed ? a : b;
  return b.fetchedAt >= a.fetchedAt ? b : a;
}

/** `{a,b,NULL}`: decimals and integers need no quoting, which keeps the literal small and cheap to build. */
function arrayLiteral(values: readonly (string | number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    out += v === null || v === undefined ? 'NULL' : String(v);
  }
  return out + '}';
}

/**
 * The finality rules, applied in SQL to an existing row `e` and an incoming row `excluded`:
 * - an identical rewrite (every value and the closed flag equal) changes nothing;
 * - a closed candle is never replaced by an open one;
 * - an open candle is replaced by a closed one, or by an open one fetched no earlier;
 * - a closed candle is replaced by a closed one fetched later (a restatement: the old version is
 *   kept in candle_restatements by a trigger).
 */
const FINALITY_GUARD = `(
  (e.closed, e.open, e.high, e.low, e.close, e.volume, e.quote_volume, e.trades)
    IS DISTINCT FROM (excluded.closed, excluded.open, excluded.high, excluded.low, excluded.close,
                      excluded.volume, excluded.quote_volume, excluded.trades)
  AND (CASE WHEN e.closed THEN excluded.closed AND excluded.fetched_at > e.fetched_at
            ELSE excluded.closed OR excluded.fetched_at >= e.fetched_at END))`;

const COLUMNS = 'series_id, closed, open_time, fetched_at, trades, open, high, low, close, volume, quote_volume';
const FROM_ARRAYS = `
SELECT u.series_id, u.closed, to_timestamp(u.t::float8 / 1000), to_timestamp(u.f::float8 / 1000),
       u.trades, u.open, u.high, u.low, u.close, u.volume, u.quote_volume
FROM unnest($1::integer[], $2::boolean[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])
     AS u(series_id, closed, t, f, trades, open, high, low, close, volume, quote_volume)`;

/** Rows no version of which is stored: a plain insert, which skips ON CONFLICT's speculative insertion. */
const INSERT_SQL = `INSERT INTO candles (${COLUMNS}) ${FROM_ARRAYS}`;

/** Rows that exist in some version: the guard re-checks the finality rules atomically. */
export const UPSERT_SQL = `
INSERT INTO candles AS e (${COLUMNS}) ${FROM_ARRAYS}
ON CONFLICT (series_id, open_time) DO UPDATE SET
  closed = excluded.closed, fetched_at = excluded.fetched_at, trades = excluded.trades,
  open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
  volume = excluded.volume, quote_volume = excluded.quote_volume
WHERE ${FINALITY_GUARD}`;

/**
 * What is stored in each series' time span of the batch: one index range scan per series. Values
 * come back as one signature string, built the same way as `signature()` below; times as float8
 * (`date_part`, exact for milliseconds) because `extract` computes in slow `numeric`.
 */
const PROBE_SQL = `
SELECT p.series_id, date_part('epoch', c.open_time) * 1000 AS t, date_part('epoch', c.fetched_at) * 1000 AS f,
       concat_ws('|', c.closed::int, coalesce(c.trades::text, ''), c.open, c.high, c.low, c.close, c.volume,
                 coalesce(c.quote_volume::text, '')) AS sig,
       concat_ws('|', coalesce(x.taker_buy_volume::text, ''), coalesce(x.taker_buy_quote_volume::text, ''), coalesce(x.vwap::text, '')) AS xsig
FROM unnest($1::integer[], $2::bigint[], $3::bigint[]) AS p(series_id, lo, hi)
JOIN LATERAL (
  SELECT open_time, fetched_at, closed, trades, open, high, low, close, volume, quote_volume
  FROM candles
  WHERE series_id = p.series_id AND open_time BETWEEN to_timestamp(p.lo::float8 / 1000) AND to_timestamp(p.hi::float8 / 1000)
) c ON true
LEFT JOIN candle_extras x ON x.series_id = p.series_id AND x.open_time = c.open_time
  AND x.open_time BETWEEN to_timestamp(p.lo::float8 / 1000) AND to_timestamp(p.hi::float8 / 1000)`;

const signature = (r: CandleRow) => `${r[8]}|${r[7] ?? ''}|${r[1]}|${r[2]}|${r[3]}|${r[4]}|${r[5]}|${r[6] ?? ''}`;
/** The optional fields of a row, as the probe's `xsig` writes those stored: '||' when it has none. */
const extrasSignature = (r: CandleRow) => `${r[9] ?? ''}|${r[10] ?? ''}|${r[11] ?? ''}`;
const NO_EXTRAS = '||';

interface StoredVersion {
  f: number;
  sig: string;
  xsig: string;
}

/** Whether an incoming version is newer than the stored one by the finality rules (values aside). */
function laterVersion(stored: StoredVersion, v: Version): boolean {
  const storedClosed = stored.sig.startsWith('1|');
  const incomingClosed = v.row[8] === 1;
  if (storedClosed && !incomingClosed) return false;
  if (storedClosed === incomingClosed) return incomingClosed ? v.fetchedAt > stored.f : v.fetchedAt >= stored.f;
  return true;
}

/**
 * What becomes of the stored version, by the finality rules: it stays, it is replaced, or only its
 * optional fields change (a restatement of those alone: the candle's row is touched so that the
 * restatement is recorded, then its extras are written). Only certain cases are decided here;
 * replacements go to the guarded upsert, which decides atomically. Skipping on a stale read is
 * safe because versions only move forward (open → closed, older → newer fetch).
 */
function storedVersionFate(stored: StoredVersion, v: Version): 'stays' | 'replace' | 'extras' {
  if (stored.sig === signature(v.row)) {
    if (stored.xsig === extrasSignature(v.row)) return 'stays'; // identical values, whatever the fetch time
    return laterVersion(stored, v) ? 'extras' : 'stays';
  }
  return laterVersion(stored, v) ? 'replace' : 'stays';
}

/**
 * Marks a candle whose optional fields alone changed as a newer version (its fetched_at), under the
 * same rules as the guarded upsert; for a closed candle the update records the restatement, with
 * the optional fields it had (the extras statement runs after this one).
 */
const TOUCH_SQL = `
UPDATE candles AS e SET fetched_at = to_timestamp(u.f::float8 / 1000)
FROM unnest($1::integer[], $2::bigint[], $3::bigint[], $4::boolean[]) AS u(series_id, t, f, closed)
WHERE e.series_id = u.series_id AND e.open_time = to_timestamp(u.t::float8 / 1000) AND e.closed = u.closed
  AND (CASE WHEN e.closed THEN e.fetched_at < to_timestamp(u.f::float8 / 1000) ELSE e.fetched_at <= to_timestamp(u.f::float8 / 1000) END)`;

/**
 * Writes the optional fields of the versions that are now the stored ones (their fetched_at is the
 * candle's): upserts those that have any, deletes the row of those that have none.
 */
const EXTRAS_SQL = `
WITH u AS (
  SELECT u.series_id, to_timestamp(u.t::float8 / 1000) AS open_time, u.tbv, u.tbq, u.vwap
  FROM unnest($1::integer[], $2::bigint[], $3::bigint[], $4::numeric[], $5::numeric[], $6::numeric[]) AS u(series_id, t, f, tbv, tbq, vwap)
  JOIN candles c ON c.series_id = u.series_id AND c.open_time = to_timestamp(u.t::float8 / 1000) AND c.fetched_at = to_timestamp(u.f::float8 / 1000)
), gone AS (
  DELETE FROM candle_extras x USING u
  WHERE x.series_id = u.series_id AND x.open_time = u.open_time AND u.tbv IS NULL AND u.tbq IS NULL AND u.vwap IS NULL
)
INSERT INTO candle_extras AS x (series_id, open_time, taker_buy_volume, taker_buy_quote_volume, vwap)
SELECT series_id, open_time, tbv, tbq, vwap FROM u WHERE tbv IS NOT NULL OR tbq IS NOT NULL OR vwap IS NOT NULL
ON CONFLICT (series_id, open_time) DO UPDATE SET
  taker_buy_volume = excluded.taker_buy_volume, taker_buy_quote_volume = excluded.taker_buy_quote_volume, vwap = excluded.vwap
WHERE (x.taker_buy_volume, x.taker_buy_quote_volume, x.vwap) IS DISTINCT FROM (excluded.taker_buy_volume, excluded.taker_buy_quote_volume, excluded.vwap)`;

const hasExtras = (r: CandleRow) => r.length > 9 && (r[9] !== null || r[10] !== null || r[11] !== null);

function toArrays(versions: readonly Version[]): string[] {
  const n = versions.length;
  const series: number[] = new Array(n);
  const closed: string[] = new Array(n);
  const times: number[] = new Array(n);
  const fetched: number[] = new Array(n);
  const trades: (number | null)[] = new Array(n);
  const cols: (string | null)[][] = [new Array(n), new Array(n), new Array(n), new Array(n), new Array(n), new Array(n)];
  for (let k = 0; k < n; k++) {
    const { seriesId, fetchedAt, row } = versions[k]!;
    series[k] = seriesId;
    closed[k] = row[8] === 1 ? 't' : 'f';
    times[k] = row[0];
    fetched[k] = fetchedAt;
    trades[k] = row[7];
    for (let c = 0; c < 6; c++) cols[c]![k] = row[c + 1] as string | null;
  }
  return [arrayLiteral(series), arrayLiteral(closed), arrayLiteral(times), arrayLiteral(fetched), arrayLiteral(trades), ...cols.map(arrayLiteral)];
}

const UNIQUE_VIOLATION = '23505';

/** What a probe found for a batch: the candles no version of which is stored, and those to replace. */
interface WritePlan {
  /** Candles in the input after de-duplication. */
  received: number;
  fresh: Version[];
  replace: Version[];
  /** Stored candles whose optional fields alone change. */
  extras: Version[];
  /** Versions to replace whose stored version has optional fields (the new one may clear them). */
  storedExtras: Set<Version>;
  /** The interval of each series, whose rollup buckets a write marks. */
  sourceOf: Map<number, Interval>;
}

/**
 * How rows with no stored version are written: a plain insert that falls back to the guarded upsert
 * on a unique violation (outside a transaction), a plain insert whose violation is the caller's to
 * handle (inside one), or the guarded upsert straight away.
 */
type FreshRows = 'insert-or-guard' | 'insert' | 'guarded';

/**
 * A numeric map key for (series, open time). Open times are whole minutes (every interval is) and
 * fewer than 2^27 of them pass before 2100, so series ids up to 2^26 stay below 2^53. Numbers hash
 * far cheaper than template strings, and a batch builds two maps of tens of thousands of keys.
 */
const candleKey = (seriesId: number, openTimeMs: number) => seriesId * 134_217_728 + openTimeMs / 60_000;

/** The UTC years a batch's candles fall in: per message from its first and last candle, row by row only when those differ. */
function batchYears(batches: readonly CandleBatch[]): Set<number> {
  const years = new Set<number>();
  for (const b of batches) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const row of b.rows) {
      if (row[0] < lo) lo = row[0];
      if (row[0] > hi) hi = row[0];
    }
    if (lo > hi) continue;
    const [first, last] = [new Date(lo).getUTCFullYear(), new Date(hi).getUTCFullYear()];
    if (first === last) years.add(first);
    else for (const y of yearsOf(b.rows.map((r) => r[0]))) years.add(y);
  }
  return years;
}

export class CandleStore {
  private readonly registry: SeriesRegistry;
  private readonly partitions: CandlePartitions;

  constructor(registry = new SeriesRegistry(), partitions = new CandlePartitions()) {
    this.registry = registry;
    this.partitions = partitions;
  }

  /**
   * Stores what a batch of CandleBatch messages says: its candles, and the ranges the messages
   * account for in the coverage ledger, in one transaction, so a range is claimed exactly when its
   * candles are stored. Messages without a range (older senders, the benchmark) take the plain
   * upsert with no transaction around it.
   */
  async write(db: Db, batches: readonly CandleBatch[]): Promise<UpsertResult> {
    if (!batches.some((b) => b.range)) return this.upsert(db, batches);
    return this.writeAll(db, [batches]);
  }

  /**
   * Stores chunks of CandleBatch messages all or nothing: every chunk's candles and the ranges its
   * messages account for, in one transaction, so an import that fails midway leaves nothing of
   * its file behind. `onChunk` is told after each chunk is applied (inside the transaction).
   */
  async writeAll(db: Db, chunks: readonly (readonly CandleBatch[])[], onChunk?: (chunk: readonly CandleBatch[]) => void): Promise<UpsertResult> {
    const all = chunks.flat();
    if (all.length === 0) return { received: 0, written: 0, unchanged: 0 };
    // Partitions are added before the transaction: adding one inside it could deadlock two writers.
    await this.partitions.ensure(db, batchYears(all));
    const ids = await this.registry.resolve(db, all);
    const claimsOf = (batches: readonly CandleBatch[]): CoverageClaim[] =>
      batches.flatMap((b) =>
        b.range ? [{ seriesId: ids.get(SeriesRegistry.key(b))!, range: { start: b.range[0], end: b.range[1] }, openTimes: b.rows.map((r) => r[0]) }] : [],
      );
    // One chunk (the writer's batch) is probed before the transaction: its reading may go stale,
    // which the write statements allow for (a fresh row another writer stored meanwhile fails the
    // insert, and the transaction starts over with the guarded upsert; versions only move forward,
    // so a skipped row stays right). Several chunks (an import) are probed inside it, each after the
    // one before was written, so a candle repeated across chunks is seen as stored.
    let early = chunks.length === 1 ? await this.#plan(db, chunks[0]!, ids) : undefined;
    // A redelivered batch whose candles and ranges are all stored already changes nothing: no
    // transaction, no lock, one read of the ledger.
    if (early && early.fresh.length === 0 && early.replace.length === 0 && early.extras.length === 0 && (await claimsRecorded(db, claimsOf(chunks[0]!)))) {
      onChunk?.(chunks[0]!);
      return { received: early.received, written: 0, unchanged: early.received };
    }
    const attempt = (fresh: FreshRows) =>
      inTransaction(db, async (tx) => {
        const total: UpsertResult = { received: 0, written: 0, unchanged: 0 };
        for (const chunk of chunks) {
          const r = await this.#execute(tx, early ?? (await this.#plan(tx, chunk, ids)), fresh);
          await recordClaims(tx, claimsOf(chunk));
          total.received += r.received;
          total.written += r.written;
          total.unchanged += r.unchanged;
          onChunk?.(chunk);
        }
        return total;
      });
    try {
      return await attempt('insert');
    } catch (err) {
      // Another writer stored one of these candles after the probe; the failed insert aborted the
      // transaction. A second probe sees what it stored (mostly the same candles: nothing left to
      // write or lock), and what is still new goes through the guarded upsert.
      if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
      if (early) early = await this.#plan(db, chunks[0]!, ids);
      return attempt('guarded');
    }
  }

  /**
   * Writes the candles of many CandleBatch messages. Versions of the same candle within the input
   * are first reduced to the one the finality rules pick; then one probe reads what is stored in
   * the batch's span, and one write statement per kind (new rows; rows to replace) applies the rest.
   * A fully redelivered batch therefore reads and writes nothing, not even a row lock.
   */
  async upsert(db: Db, batches: readonly CandleBatch[]): Promise<UpsertResult> {
    if (batches.length === 0) return { received: 0, written: 0, unchanged: 0 };
    await this.partitions.ensure(db, batchYears(batches));
    return this.#execute(db, await this.#plan(db, batches, await this.registry.resolve(db, batches)), 'insert-or-guard');
  }

  /** The batch's candles reduced to one version each, and split by one probe of what is stored. */
  async #plan(db: Queryable, batches: readonly CandleBatch[], ids: Map<string, number>): Promise<WritePlan> {
    const versions = new Map<number, Version>();
    const spans = new Map<number, { lo: number; hi: number }>();
    for (const b of batches) {
      if (b.rows.length === 0) continue;
      const seriesId = ids.get(SeriesRegistry.key(b))!;
      const span = spans.get(seriesId) ?? { lo: Infinity, hi: -Infinity };
      for (const row of b.rows) {
        const key = candleKey(seriesId, row[0]);
        const v: Version = { seriesId, fetchedAt: b.fetchedAt, row };
        const prev = versions.get(key);
        versions.set(key, prev ? newer(prev, v) : v);
        if (row[0] < span.lo) span.lo = row[0];
        if (row[0] > span.hi) span.hi = row[0];
      }
      spans.set(seriesId, span);
    }
    const sourceOf = new Map<number, Interval>();
    for (const b of batches) sourceOf.set(ids.get(SeriesRegistry.key(b))!, b.interval);
    if (versions.size === 0) return { received: 0, fresh: [], replace: [], extras: [], storedExtras: new Set(), sourceOf };

    const probe = await db.query<{ series_id: number; t: number; f: number; sig: string; xsig: string }>(PROBE_SQL, [
      arrayLiteral([...spans.keys()]),
      arrayLiteral([...spans.values()].map((s) => s.lo)),
      arrayLiteral([...spans.values()].map((s) => s.hi)),
    ]);
    const stored = new Map<number, StoredVersion>();
    // float8 milliseconds can land a hair off the integer (x.123 s * 1000); round before comparing.
    for (const r of probe.rows) stored.set(candleKey(r.series_id, Math.round(r.t)), { f: Math.round(r.f), sig: r.sig, xsig: r.xsig });

    const fresh: Version[] = [];
    const replace: Version[] = [];
    const extras: Version[] = [];
    const storedExtras = new Set<Version>();
    for (const [key, v] of versions) {
      const s = stored.get(key);
      if (!s) fresh.push(v);
      else {
        const fate = storedVersionFate(s, v);
        if (fate === 'replace') {
          replace.push(v);
          if (s.xsig !== NO_EXTRAS) storedExtras.add(v);
        } else if (fate === 'extras') extras.push(v);
      }
    }
    return { received: versions.size, fresh, replace, extras, storedExtras, sourceOf };
  }

  /** Writes what the plan found new or changed, in one statement per kind. */
  async #execute(db: Queryable, plan: WritePlan, freshRows: FreshRows): Promise<UpsertResult> {
    const fresh = [...plan.fresh];
    const replace = [...plan.replace];
    // Each write statement also marks the rollup buckets of its rows changed, atomically with them.
    // The first marks those of both kinds, so a transaction takes its rollup row locks in one sorted
    // pass (see changedBuckets) and the second statement only re-marks rows it already holds.
    const marks = (vs: readonly Version[]) => changedBuckets(vs.map((v) => ({ seriesId: v.seriesId, source: plan.sourceOf.get(v.seriesId)!, openTime: v.row[0] })));
    const marked = (sql: string, rows: readonly Version[], changed = marks(rows)) =>
      changed ? { text: `${markChanged(12)} ${sql}`, values: [...toArrays(rows), ...changed] } : { text: sql, values: toArrays(rows) };
    let written = 0;
    if (freshRows === 'guarded') replace.push(...fresh.splice(0));
    if (fresh.length > 0) {
      try {
        written += (await db.query(marked(INSERT_SQL, fresh, marks([...fresh, ...replace])))).rowCount ?? 0;
      } catch (err) {
        // Another writer stored one of these candles after the probe: let the guard decide them all.
        // Inside a transaction the failed statement aborted it: the caller must start over.
        if ((err as { code?: string }).code !== UNIQUE_VIOLATION || freshRows === 'insert') throw err;
        replace.push(...fresh);
      }
    }
    if (replace.length > 0) written += (await db.query(marked(UPSERT_SQL, replace))).rowCount ?? 0;
    const touched = plan.extras;
    if (touched.length > 0) {
      written +=
        (
          await db.query(TOUCH_SQL, [
            arrayLiteral(touched.map((v) => v.seriesId)),
            arrayLiteral(touched.map((v) => v.row[0])),
            arrayLiteral(touched.map((v) => v.fetchedAt)),
            arrayLiteral(touched.map((v) => (v.row[8] === 1 ? 't' : 'f'))),
          ])
        ).rowCount ?? 0;
    }
    // The optional fields are written after the candles' rows, so a restatement's trigger kept the
    // old ones. Sent: versions with any, and replacements of a stored version that had some (the
    // new one may clear them). Batches without them (most exchanges) skip this statement.
    const withExtras = new Set<Version>(touched);
    for (const v of [...fresh, ...replace]) if (hasExtras(v.row) || plan.storedExtras.has(v)) withExtras.add(v);
    if (withExtras.size > 0) {
      const rows = [...withExtras];
      await db.query(EXTRAS_SQL, [
        arrayLiteral(rows.map((v) => v.seriesId)),
        arrayLiteral(rows.map((v) => v.row[0])),
        arrayLiteral(rows.map((v) => v.fetchedAt)),
        ...[9, 10, 11].map((k) => arrayLiteral(rows.map((v) => (v.row[k] as string | null | undefined) ?? null))),
      ]);
    }
    return { received: plan.received, written, unchanged: plan.received - written };
  }
}

/**
 * Open time of the newest stored closed candle of a series: live pulls fetch from the bucket after
 * it. An open (forming) candle newer than it is deliberately not the watermark, so the next pull
 * fetches that bucket again and stores its closed version. Ordered partition scans stop at the
 * first closed row, so this reads a handful of index entries.
 */
export async function readWatermark(db: Queryable, seriesId: number): Promise<number | undefined> {
  const { rows } = await db.query<{ t: number }>(
    `SELECT ${ms('open_time')} AS t FROM candles WHERE series_id = $1 AND closed ORDER BY open_time DESC LIMIT 1`,
    [seriesId],
  );
  const t = rows[0]?.t;
  return t === undefined ? undefined : Number(t);
}

// ---- reading ----

const iso = (t: number) => new Date(t).toISOString();

/**
 * The statement of `candleWindow`: `columns(c, x)` of up to `limit` stored candles of a series with
 * open time in [lo, hi), oldest first, where `c.` names the candle and `x.` its optional fields.
 */
function windowStatement(columns: (c: string, x: string) => string, seriesId: number, lo: number, hi: number, limit?: number, asOf?: AsOf) {
  // The candles first (the LIMIT applies to them), then their optional fields by primary key; a
  // point-in-time relation has those as of its point already.
  const window = `SELECT * FROM ${candlesAt(asOf)} WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
                  ORDER BY open_time${limit === undefined ? '' : ' LIMIT $4'}`;
  return {
    text: asOf
      ? `SELECT ${columns('c.', 'c.')} FROM (${window}) c ORDER BY c.open_time`
      : `SELECT ${columns('c.', 'x.')} FROM (${window}) c
         LEFT JOIN candle_extras x ON x.series_id = c.series_id AND x.open_time = c.open_time
           AND x.series_id = $1 AND x.open_time >= $2::timestamptz AND x.open_time < $3::timestamptz
         ORDER BY c.open_time`,
    values: limit === undefined ? [seriesId, iso(lo), iso(hi)] : [seriesId, iso(lo), iso(hi), limit],
    rowMode: 'array' as const,
  };
}

/**
 * Up to `limit` stored candles of a series with open time in [lo, hi), oldest first: one
 * primary-key range scan, stopped by LIMIT. Rows come as arrays, not objects: this is the path
 * every candle download takes.
 */
export async function candleWindow(db: Queryable, seriesId: number, lo: number, hi: number, limit?: number, asOf?: AsOf): Promise<StoredCandle[]> {
  const { rows } = await db.query<CandleColumns>(windowStatement(candleColumns, seriesId, lo, hi, limit, asOf));
  return rows.map(fromColumns);
}

/**
 * The candles `candleWindow` reads, each as the JSON text the API sends for it (`candleJson`),
 * written by PostgreSQL: the read behind every JSON page of stored candles.
 */
export async function candleWindowJson(db: Queryable, seriesId: number, lo: number, hi: number, limit?: number, asOf?: AsOf): Promise<string[]> {
  const { rows } = await db.query<[string]>(windowStatement(candleJson, seriesId, lo, hi, limit, asOf));
  const out: string[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = rows[i]![0];
  return out;
}

/** Open times of the first and last stored candle in [lo, hi), and with `prevClose` the close of the candle before lo. */
export async function windowBounds(
  db: Queryable,
  seriesId: number,
  lo: number,
  hi: number,
  prevClose: boolean,
  asOf?: AsOf,
): Promise<{ first: number; last: number; prevClose: string | null } | undefined> {
  const from = candlesAt(asOf);
  const { rows } = await db.query<{ first: number | null; last: number | null; prev_close: string | null }>(
    `SELECT
       (SELECT ${ms('open_time')} FROM ${from} WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
        ORDER BY open_time LIMIT 1) AS first,
       (SELECT ${ms('open_time')} FROM ${from} WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
        ORDER BY open_time DESC LIMIT 1) AS last,
       ${prevClose ? `(SELECT close FROM ${from} WHERE series_id = $1 AND open_time < $2::timestamptz ORDER BY open_time DESC LIMIT 1)` : 'NULL::numeric'} AS prev_close`,
    [seriesId, iso(lo), iso(hi)],
  );
  const b = rows[0];
  return b && b.first !== null && b.last !== null ? { first: b.first, last: b.last, prevClose: b.prev_close } : undefined;
}

/** The newest closed candle of each listed series (or of every series matching the filter), null for a series with none. */
export async function latestClosedCandles(
  db: Queryable,
  refs: readonly SeriesKey[] | undefined,
  filter: Partial<SeriesKey>,
): Promise<(SeriesKey & { candle: StoredCandle | null })[]> {
  const where = refs
    ? '(s.exchange, s.symbol, s.interval) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))'
    : '($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)';
  const params = refs
    ? [refs.map((r) => r.exchange), refs.map((r) => r.symbol), refs.map((r) => r.interval)]
    : [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null];
  const { rows } = await db.query<[...CandleColumns, SeriesKey['exchange'], string, Interval]>({
    text: `SELECT ${candleColumns('c.', 'x.')}, s.exchange, s.symbol, s.interval
     FROM series s
     LEFT JOIN LATERAL (
       SELECT open_time, open, high, low, close, volume, quote_volume, trades, closed
       FROM candles WHERE series_id = s.id AND closed ORDER BY open_time DESC LIMIT 1
     ) c ON true
     LEFT JOIN candle_extras x ON x.series_id = s.id AND x.open_time = c.open_time
     WHERE ${where}
     ORDER BY s.exchange, s.symbol, s.interval`,
    values: params,
    rowMode: 'array',
  });
  return rows.map((r) => ({
    exchange: r[12],
    symbol: r[13],
    interval: r[14],
    candle: r[0] === null ? null : fromColumns(r as unknown as CandleColumns),
  }));
}

/**
 * Every stored series matching the filter with its extent and gaps, read from the per-series
 * summary the writes keep (migration 0008): one row per series and one index probe for its largest
 * gap, whatever the number of candles.
 */
export async function seriesExtents(db: Queryable, filter: Partial<SeriesKey>, now = Date.now()) {
  const { rows } = await db.query<{
    exchange: SeriesKey['exchange'];
    symbol: string;
    interval: Interval;
    n: string;
    first_t: number | null;
    last_t: number | null;
    closed_t: number | null;
    gap_count: string;
    missing: string;
    largest: string;
    dl_messages: string;
    dl_candles: string;
    state: SeriesState;
    pulled_at: number | null;
    last_error: string | null;
    retention_days: number | null;
    expired_before: number | null;
    expired_candles: string | null;
  }>(
    `SELECT s.exchange, s.symbol, s.interval, coalesce(x.candles, 0) AS n, ${ms('x.first_open')} AS first_t, ${ms('x.last_open')} AS last_t,
            k.closed_t, coalesce(x.gap_count, 0) AS gap_count, coalesce(x.missing, 0) AS missing,
            coalesce((SELECT g.missing FROM candle_gaps g WHERE g.series_id = s.id ORDER BY g.missing DESC LIMIT 1), 0) AS largest,
            d.messages AS dl_messages, d.candles AS dl_candles,
            CASE WHEN f.series_id IS NOT NULL AND m.paused THEN 'paused'
                 WHEN f.series_id IS NOT NULL THEN 'following'
                 WHEN m.removed_at IS NOT NULL THEN 'removed'
                 ELSE 'not-followed' END AS state,
            ${ms('f.pulled_at')} AS pulled_at, f.last_error,
            CASE WHEN f.series_id IS NULL THEN NULL WHEN f.retention_own THEN f.retention_days ELSE m.retention_days END AS retention_days,
            ${ms('e.expired_before')} AS expired_before, e.expired_candles
     FROM series s
     LEFT JOIN series_stats x ON x.series_id = s.id
     LEFT JOIN market_series f ON f.series_id = s.id
     LEFT JOIN markets m ON m.exchange = s.exchange AND m.symbol = s.symbol
     LEFT JOIN series_expiry e ON e.series_id = s.id
     CROSS JOIN LATERAL (
       SELECT (SELECT ${ms('range_end')} FROM coverage WHERE series_id = s.id ORDER BY range_start DESC LIMIT 1) AS closed_t
     ) k
     CROSS JOIN LATERAL (
       SELECT count(*) AS messages, coalesce(sum(candles), 0) AS candles FROM dead_letters WHERE series_id = s.id
     ) d
     WHERE ($1::text IS NULL OR s.exchange = $1) AND ($2::text IS NULL OR s.symbol = $2) AND ($3::text IS NULL OR s.interval = $3)
     ORDER BY s.exchange, s.symbol, s.interval`,
    [filter.exchange ?? null, filter.symbol ?? null, filter.interval ?? null],
  );
  return rows.map((r) => {
    // The coverage ledger's newest range ends where the closed candles stored (or confirmed absent)
    // end: its last bucket is the newest closed candle. Read from the ledger, not the candles.
    const closed = r.closed_t === null ? null : Number(r.closed_t) - INTERVAL_MS[r.interval];
    const horizons = [
      ...(r.expired_before === null ? [] : [Math.round(Number(r.expired_before))]),
      ...(r.retention_days === null ? [] : [retentionHorizon(r.retention_days, r.interval, now)]),
    ];
    return {
      exchange: r.exchange,
      symbol: r.symbol,
      interval: r.interval,
      state: r.state,
      candles: Number(r.n),
      firstOpenTime: r.first_t,
      lastOpenTime: r.last_t,
      newestClosedOpenTime: closed,
      lagMs: closed === null ? null : freshnessLag(closed, INTERVAL_MS[r.interval], now),
      pulledAt: r.pulled_at === null ? null : Math.round(Number(r.pulled_at)),
      lastError: r.last_error,
      gapCount: Number(r.gap_count),
      missingCandles: Number(r.missing),
      largestGapCandles: Number(r.largest),
      deadLetteredMessages: Number(r.dl_messages),
      deadLetteredCandles: Number(r.dl_candles),
      retentionDays: r.retention_days,
      expiredBefore: horizons.length ? Math.max(...horizons) : null,
      expiredCandles: Number(r.expired_candles ?? 0),
    };
  });
}

/** A stored series as followed: by a market (paused or not), by a market since removed, or by nothing (stored by backfills or the CLI). */
export type SeriesState = 'following' | 'paused' | 'removed' | 'not-followed';

/**
 * How long the oldest closed candle that is not yet stored has been closed: 0 while the newest
 * closed candle is stored. One candle after the newest stored closed one closes at
 * `newest + 2 * step`; before that moment nothing is late.
 */
export function freshnessLag(newestClosedOpenTime: number, step: number, now: number): number {
  return Math.max(0, now - (newestClosedOpenTime + 2 * step));
}

export interface GapWindow {
  start?: number | undefined;
  end?: number | undefined;
  limit: number;
  /** Cursor position: the open time of the stored candle that ended the previous page's last gap. */
  from?: number | undefined;
  /** The retention horizon: a gap (or its part) before it is expired, not missing. */
  expiredBefore?: number | undefined;
}

/**
 * Runs of missing candles of one stored series, oldest first. A gap is reported as
 * [first missing open time, next stored open time). `confirmedByExchange` tells a real hole in the
 * exchange's history (the coverage ledger shows the range was fetched) from one a backfill may fill.
 */
export async function storedGaps(db: Queryable, seriesId: number, interval: Interval, opts: GapWindow) {
  const step = INTERVAL_MS[interval];
  const lower = opts.from ?? opts.start ?? null;
  const { rows } = await db.query<{ gap_start: number; gap_end: number; missing: string; confirmed: boolean; dead_lettered: number }>(
    `WITH lo AS (
       -- Start from the stored candle at or before the lower bound, so a gap straddling it is seen whole.
       SELECT coalesce(
         (SELECT open_time FROM candles WHERE series_id = $1 AND open_time <= $2::timestamptz ORDER BY open_time DESC LIMIT 1),
         $2::timestamptz, '-infinity') AS t
     ), c AS (
       SELECT open_time, lag(open_time) OVER (ORDER BY open_time) AS prev
       FROM candles WHERE series_id = $1 AND open_time >= (SELECT t FROM lo)
     ), g AS (
       SELECT prev + interval '${step} milliseconds' AS gap_start, open_time AS gap_end
       FROM c WHERE open_time - prev > interval '${step} milliseconds'
         AND ($3::timestamptz IS NULL OR prev + interval '${step} milliseconds' < $3::timestamptz)
       ORDER BY open_time LIMIT $4
     )
     SELECT ${ms('g.gap_start')} AS gap_start, ${ms('g.gap_end')} AS gap_end,
            ((extract(epoch FROM g.gap_end - g.gap_start) * 1000)::bigint / ${step}) AS missing,
            EXISTS (SELECT 1 FROM coverage v WHERE v.series_id = $1 AND v.range_start <= g.gap_start AND v.range_end >= g.gap_end) AS confirmed,
            (SELECT count(*)::int FROM dead_letters d WHERE d.series_id = $1 AND d.range_start < g.gap_end AND d.range_end > g.gap_start) AS dead_lettered
     FROM g ORDER BY g.gap_start`,
    [seriesId, lower === null ? null : iso(lower), opts.end === undefined ? null : iso(opts.end), opts.limit + 1],
  );
  const more = rows.length > opts.limit;
  const page = more ? rows.slice(0, opts.limit) : rows;
  const horizon = opts.expiredBefore;
  return {
    gaps: page.flatMap((r) => {
      const gap = {
        start: r.gap_start,
        end: r.gap_end,
        missingCandles: Number(r.missing),
        // A dead-lettered message carried candles for the gap: whatever the ledger says, the exchange had them.
        kind: r.dead_lettered > 0 ? ('dead-lettered' as GapKind) : r.confirmed ? ('empty' as const) : ('missing' as const),
        confirmedByExchange: r.confirmed && r.dead_lettered === 0,
        deadLetteredMessages: r.dead_lettered,
      };
      if (horizon === undefined || gap.start >= horizon) return [gap];
      // Before the retention horizon the candles are not to be kept: expired, not something to fetch again.
      const expired = { ...gap, end: Math.min(gap.end, horizon), kind: 'expired' as GapKind, confirmedByExchange: false, deadLetteredMessages: 0 };
      expired.missingCandles = Math.round((expired.end - expired.start) / step);
      if (gap.end <= horizon) return [expired];
      return [expired, { ...gap, start: horizon, missingCandles: Math.round((gap.end - horizon) / step) }];
    }),
    next: more ? page[page.length - 1]!.gap_end : null,
  };
}

export type GapKind = 'missing' | 'empty' | 'dead-lettered' | 'expired';
