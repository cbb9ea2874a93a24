import { createHash } from 'node:crypto';
import { INTERVAL_MS, bucketStart, type Interval } from '../candles/intervals.ts';
import type { Exchange } from '../candles/candle.ts';
import { HttpProblem } from '../http/problem.ts';
import type { Queryable } from '../store/db.ts';
import type { Instrument } from './record.ts';

/**
 * The fingerprint of the candle data a run used: per instrument, the stored series read (the
 * instrument's interval, or the finer one it is resampled from), the range, the number of stored
 * candles and a digest of every row's values. The `value` changes whenever a candle in range is
 * restated, added or changed.
 *
 * Checking later whether the data changed must be cheap (compare looks at up to 10 runs), so the
 * fingerprint also keeps what can change under candlekeep's write rules, which never delete a
 * candle and record every change to a closed one in candle_restatements:
 * - restatements of closed candles in range: newer rows in candle_restatements (by id mark);
 * - candles added in range: only possible inside the gaps, which are kept as ranges;
 * - candles that were still open: kept with a hash of their values.
 * The check then reads a few index entries instead of re-hashing the range. When a range has too
 * many gaps or open candles to keep, the check falls back to recounting the range.
 */
export interface InstrumentPrint {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
  source: Interval;
  seriesId: number;
  /** First bucket and exclusive end, epoch ms. */
  start: number;
  end: number;
  candles: number;
  digest: string;
  restatementMark: number;
  /** [open time, md5 of the row] of candles still open when computed. */
  open: [number, string][] | null;
  /** [start, end) ranges with no stored candle when computed. */
  gaps: [number, number][] | null;
}

export interface Fingerprint {
  v: 1;
  value: string;
  computedAt: string;
  candles: number;
  instruments: InstrumentPrint[];
}

const MAX_GAPS = 1000;
const MAX_OPEN = 100;

// One row as text, exactly as stored (numeric keeps its scale), for hashing.
const rowText = (c = '') =>
  `concat_ws('|', (extract(epoch FROM ${c}open_time) * 1000)::bigint, ${c}open, ${c}high, ${c}low, ${c}close, ${c}volume, ${c}quote_volume, ${c}trades, ${c}closed)`;
const ROW_TEXT = rowText();
/** Sum of 60-bit slices of each row's md5: order-independent, exact in numeric, constant memory. */
const digestOf = (c = '') => `coalesce(sum(('x' || left(md5(${rowText(c)}), 15))::bit(60)::bigint), 0)::text`;

const iso = (ms: number) => new Date(ms).toISOString();

async function sourceFor(db: Queryable, inst: Instrument): Promise<{ seriesId: number; source: Interval } | undefined> {
  const { rows } = await db.query<{ id: number; interval: Interval }>('SELECT id, interval FROM series WHERE exchange = $1 AND symbol = $2', [
    inst.exchange,
    inst.symbol,
  ]);
  const native = rows.find((r) => r.interval === inst.interval);
  if (native) return { seriesId: native.id, source: native.interval };
  const step = INTERVAL_MS[inst.interval];
  const finer = rows
    .filter((r) => INTERVAL_MS[r.interval] < step && step % INTERVAL_MS[r.interval] === 0)
    .sort((a, b) => INTERVAL_MS[a.interval] - INTERVAL_MS[b.interval])[0];
  return finer ? { seriesId: finer.id, source: finer.interval } : undefined;
}

export async function computeFingerprint(
  db: Queryable,
  instruments: readonly Instrument[],
  start: number,
  end: number,
  now: number,
): Promise<Fingerprint> {
  const { rows: markRows } = await db.query<{ mark: string }>('SELECT coalesce(max(id), 0) AS mark FROM candle_restatements');
  const restatementMark = Number(markRows[0]?.mark ?? 0);
  const prints: InstrumentPrint[] = [];
  for (const [i, inst] of instruments.entries()) {
    const src = await sourceFor(db, inst);
    if (!src) {
      throw new HttpProblem(
        422,
        `instruments[${i}]: no candles are stored for ${inst.exchange} ${inst.symbol} at ${inst.interval} or a finer interval; the run's data cannot be fingerprinted`,
        { parameter: `instruments[${i}]`, slug: 'unknown-series' },
      );
    }
    prints.push(await printInstrument(db, inst, src, start, end, restatementMark));
  }
  const candles = prints.reduce((n, p) => n + p.candles, 0);
  return { v: 1, value: fingerprintValue(prints), computedAt: new Date(now).toISOString(), candles, instruments: prints };
}

export function fingerprintValue(prints: readonly InstrumentPrint[]): string {
  const h = createHash('sha256');
  for (const p of prints) h.update(JSON.stringify([p.exchange, p.symbol, p.interval, p.source, p.start, p.end, p.candles, p.digest]));
  return `ck1:${h.digest('hex').slice(0, 40)}`;
}

async function printInstrument(
  db: Queryable,
  inst: Instrument,
  src: { seriesId: number; source: Interval },
  start: number,
  end: number,
  restatementMark: number,
): Promise<InstrumentPrint> {
  const step = INTERVAL_MS[src.source];
  // Whole source candles inside [start, end).
  const lo = bucketStart(start - 1, src.source) + step;
  const hi = bucketStart(end - 1, src.source) + step;
  const { rows } = await db.query<{ n: string; digest: string; open: [number, string][] | null; open_n: string }>(
    `SELECT count(*) AS n,
            ${digestOf()} AS digest,
            count(*) FILTER (WHERE NOT closed) AS open_n,
            (array_agg(json_build_array((extract(epoch FROM open_time) * 1000)::bigint, md5(${ROW_TEXT})) ORDER BY open_time)
               FILTER (WHERE NOT closed))[1:${MAX_OPEN}] AS open
     FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz`,
    [src.seriesId, iso(lo), iso(hi)],
  );
  const r = rows[0]!;
  const { rows: gapRows } = await db.query<{ a: string; b: string }>(
    `WITH c AS (
       SELECT (extract(epoch FROM open_time) * 1000)::bigint AS t FROM candles
       WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz
     ), e AS (
       SELECT $4::bigint - $6::bigint AS t UNION ALL SELECT t FROM c UNION ALL SELECT $5::bigint
     ), d AS (
       SELECT lag(t) OVER (ORDER BY t) + $6::bigint AS a, t AS b FROM e
     )
     SELECT a::text, b::text FROM d WHERE b > a ORDER BY a LIMIT ${MAX_GAPS + 1}`,
    [src.seriesId, iso(lo), iso(hi), lo, hi, step],
  );
  const openN = Number(r.open_n);
  return {
    exchange: inst.exchange,
    symbol: inst.symbol,
    interval: inst.interval,
    source: src.source,
    seriesId: src.seriesId,
    start: lo,
    end: hi,
    candles: Number(r.n),
    digest: r.digest,
    restatementMark,
    open: openN > MAX_OPEN ? null : (r.open ?? []).map(([t, h]) => [Number(t), h]),
    gaps: gapRows.length > MAX_GAPS ? null : gapRows.map((g) => [Number(g.a), Number(g.b)]),
  };
}

export interface DataCheck {
  changed: boolean;
  restatedCandles: number;
  addedCandles: number;
  changedOpenCandles: number;
}

/**
 * Whether the data behind each fingerprint changed since it was computed, in one statement for
 * all of them. Identical instrument prints (runs of one parameter sweep share them) are checked once.
 */
export async function checkFingerprints(db: Queryable, prints: readonly Fingerprint[]): Promise<DataCheck[]> {
  const keys = new Map<string, number>();
  const unique: InstrumentPrint[] = [];
  const perRun = prints.map((fp) =>
    fp.instruments.map((p) => {
      const key = JSON.stringify([p.seriesId, p.start, p.end, p.restatementMark, p.digest]);
      let k = keys.get(key);
      if (k === undefined) {
        k = unique.length;
        keys.set(key, k);
        unique.push(p);
      }
      return k;
    }),
  );
  const restated = unique.map((p, k) => ({ k, s: p.seriesId, a: iso(p.start), b: iso(p.end), m: p.restatementMark }));
  const gaps = unique.flatMap((p, k) => (p.gaps ?? []).map(([a, b]) => ({ k, s: p.seriesId, a: iso(a), b: iso(b) })));
  const open = unique.flatMap((p, k) => (p.open ?? []).map(([t, h]) => ({ k, s: p.seriesId, t: iso(t), h })));
  // Prints that kept too much to check cheaply are recounted and re-hashed.
  const full = unique.flatMap((p, k) => (p.gaps === null || p.open === null ? [{ k, s: p.seriesId, a: iso(p.start), b: iso(p.end), n: p.candles, d: p.digest }] : []));
  // Only the parts with input are sent: each part that reads candles makes the planner consider
  // every partition, which costs more than the check itself.
  const parts: string[] = [];
  const params: string[] = [];
  const part = (rows: unknown[], sql: (p: string) => string) => {
    if (rows.length === 0) return;
    params.push(JSON.stringify(rows));
    parts.push(sql(`$${params.length}::jsonb`));
  };
  part(
    restated,
    (p) => `SELECT 'restated' AS kind, r.k, (SELECT count(*) FROM candle_restatements x
        WHERE x.series_id = r.s AND x.open_time >= r.a AND x.open_time < r.b AND x.id > r.m) AS n
      FROM jsonb_to_recordset(${p}) AS r(k int, s int, a timestamptz, b timestamptz, m bigint)`,
  );
  part(
    gaps,
    (p) => `SELECT 'added', g.k, (SELECT count(*) FROM candles c WHERE c.series_id = g.s AND c.open_time >= g.a AND c.open_time < g.b)
      FROM jsonb_to_recordset(${p}) AS g(k int, s int, a timestamptz, b timestamptz)`,
  );
  part(
    open,
    (p) => `SELECT 'open', o.k, (SELECT count(*) FROM candles c WHERE c.series_id = o.s AND c.open_time = o.t AND md5(${rowText('c.')}) <> o.h)
      FROM jsonb_to_recordset(${p}) AS o(k int, s int, t timestamptz, h text)`,
  );
  part(
    full,
    (p) => `SELECT 'full', f.k, (SELECT CASE WHEN count(*) = f.n AND ${digestOf('c.')} = f.d THEN 0 ELSE 1 END
        FROM candles c WHERE c.series_id = f.s AND c.open_time >= f.a AND c.open_time < f.b)
      FROM jsonb_to_recordset(${p}) AS f(k int, s int, a timestamptz, b timestamptz, n bigint, d text)`,
  );
  const { rows } = parts.length
    ? await db.query<{ kind: 'restated' | 'added' | 'open' | 'full'; k: number; n: string }>(parts.join('\n     UNION ALL\n     '), params)
    : { rows: [] };
  const byKey = unique.map(() => ({ restated: 0, added: 0, open: 0, full: 0 }));
  for (const r of rows) byKey[r.k]![r.kind] += Number(r.n);
  return perRun.map((ks) => {
    const c = { changed: false, restatedCandles: 0, addedCandles: 0, changedOpenCandles: 0 };
    for (const k of ks) {
      const x = byKey[k]!;
      c.restatedCandles += x.restated;
      c.addedCandles += x.added;
      c.changedOpenCandles += x.open;
      if (x.restated || x.added || x.open || x.full) c.changed = true;
    }
    return c;
  });
}
