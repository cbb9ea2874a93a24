import type { Fingerprint, InstrumentPrint } from '../backtests/fingerprint.ts';
import type { Clause, Filter } from '../backtests/list.ts';
import type { Backtest, CreateBacktest, Instrument } from '../backtests/record.ts';
import type { Queryable } from './db.ts';
import { ms } from './sql.ts';
import { candlesAt, type AsOf } from './as-of.ts';

/*
 * The backtests table (one row per immutable run, equity curve and trades beside it in
 * backtest_series) and the candle reads that fingerprint a run's data.
 */

/** The columns of a run as the API shows it (fingerprint summarised; curve and trades apart). */
const RUN_COLUMNS = `b.id, ${ms('b.created_at')} AS created_at, b.strategy, b.strategy_version, b.parameters, b.instruments,
  ${ms('b.range_start')} AS range_start, ${ms('b.range_end')} AS range_end, b.metrics, b.tags, b.notes,
  b.fingerprint->>'value' AS fp_value, b.fingerprint->>'computedAt' AS fp_at, (b.fingerprint->>'candles')::bigint AS fp_candles,
  b.equity_points, b.trade_rows, b.reproduced_from`;

interface RunRow {
  id: string;
  created_at: number;
  strategy: string;
  strategy_version: string;
  parameters: Record<string, unknown>;
  instruments: Instrument[];
  range_start: number;
  range_end: number;
  metrics: Record<string, number>;
  tags: string[];
  notes: string | null;
  fp_value: string;
  fp_at: string;
  fp_candles: string;
  equity_points: number;
  trade_rows: number;
  reproduced_from: string | null;
}

const iso = (t: number) => new Date(t).toISOString();

function toBacktest(r: RunRow): Backtest {
  return {
    id: r.id,
    createdAt: iso(r.created_at),
    strategy: r.strategy,
    strategyVersion: r.strategy_version,
    parameters: r.parameters,
    instruments: r.instruments,
    start: iso(r.range_start),
    end: iso(r.range_end),
    metrics: r.metrics,
    tags: r.tags,
    notes: r.notes,
    fingerprint: { value: r.fp_value, computedAt: r.fp_at, candles: Number(r.fp_candles) },
    equityCurvePoints: r.equity_points,
    tradesStored: r.trade_rows,
    reproducedFrom: r.reproduced_from,
  };
}

/** The run an idempotency key created, with the hash of the request that created it. */
export async function findRunByKey(db: Queryable, key: string): Promise<{ run: Backtest; requestHash: string } | undefined> {
  const { rows } = await db.query<RunRow & { request_hash: string }>(
    `SELECT ${RUN_COLUMNS}, b.request_hash FROM backtests b WHERE b.idempotency_key = $1`,
    [key],
  );
  const row = rows[0];
  return row ? { run: toBacktest(row), requestHash: row.request_hash } : undefined;
}

export interface NewRun {
  id: string;
  createdAt: number;
  idempotencyKey: string | undefined;
  requestHash: string;
  body: CreateBacktest;
  fingerprint: Fingerprint;
}

/** Inserts a run and its curve and trades; undefined when a run already holds its idempotency key. */
export async function insertRun(db: Queryable, r: NewRun): Promise<Backtest | undefined> {
  const { body } = r;
  const curve = body.equityCurve ?? null;
  const trades = body.trades ?? null;
  const { rows } = await db.query<RunRow>(
    `WITH ins AS (
       INSERT INTO backtests AS b (id, created_at, idempotency_key, request_hash, strategy, strategy_version, parameters, instruments,
                                   range_start, range_end, metrics, tags, notes, fingerprint, equity_points, trade_rows, reproduced_from)
       VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::timestamptz, $10::timestamptz, $11::jsonb, $12::text[], $13,
               $14::jsonb, $15, $16, $19::uuid)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING ${RUN_COLUMNS}
     ), side AS (
       INSERT INTO backtest_series (backtest_id, equity_curve, trades)
       SELECT id, $17::jsonb, $18::jsonb FROM ins WHERE $17::jsonb IS NOT NULL OR $18::jsonb IS NOT NULL
     )
     SELECT * FROM ins`,
    [
      r.id,
      iso(r.createdAt),
      r.idempotencyKey ?? null,
      r.requestHash,
      body.strategy,
      body.strategyVersion,
      JSON.stringify(body.parameters),
      JSON.stringify(body.instruments),
      iso(body.start),
      iso(body.end),
      JSON.stringify(body.metrics),
      body.tags,
      body.notes ?? null,
      JSON.stringify(r.fingerprint),
      curve?.length ?? 0,
      trades?.length ?? 0,
      curve ? JSON.stringify(curve) : null,
      trades ? JSON.stringify(trades) : null,
      body.reproducedFrom ?? null,
    ],
  );
  const row = rows[0];
  return row ? toBacktest(row) : undefined;
}

export async function getRun(db: Queryable, id: string, include: { equityCurve: boolean; trades: boolean }): Promise<Backtest | undefined> {
  const extra = [
    include.equityCurve ? '(SELECT equity_curve FROM backtest_series s WHERE s.backtest_id = b.id) AS equity_curve' : null,
    include.trades ? '(SELECT trades FROM backtest_series s WHERE s.backtest_id = b.id) AS trades' : null,
  ].filter(Boolean);
  const { rows } = await db.query<RunRow & { equity_curve?: Backtest['equityCurve'] | null; trades?: Backtest['trades'] | null }>(
    `SELECT ${RUN_COLUMNS}${extra.length ? `, ${extra.join(', ')}` : ''} FROM backtests b WHERE b.id = $1`,
    [id],
  );
  const row = rows[0];
  if (!row) return undefined;
  const run = toBacktest(row);
  if (include.equityCurve) run.equityCurve = row.equity_curve ?? [];
  if (include.trades) run.trades = row.trades ?? [];
  return run;
}

/**
 * Up to `limit` entries of a run's trades or equity curve after position `after` (0-based count of
 * entries already read), in stored order; undefined when there is no such run.
 */
export async function runSeriesPage(
  db: Queryable,
  id: string,
  part: 'trades' | 'equityCurve',
  after: number,
  limit: number,
): Promise<{ items: unknown[]; total: number } | undefined> {
  const column = part === 'trades' ? 'trades' : 'equity_curve';
  const counter = part === 'trades' ? 'trade_rows' : 'equity_points';
  const { rows } = await db.query<{ total: number; items: unknown[] }>(
    `SELECT b.${counter} AS total,
            (SELECT coalesce(jsonb_agg(e.value ORDER BY e.i), '[]'::jsonb)
             FROM (SELECT x.value, x.i FROM backtest_series s, jsonb_array_elements(s.${column}) WITH ORDINALITY AS x(value, i)
                   WHERE s.backtest_id = b.id AND x.i > $2 ORDER BY x.i LIMIT $3) e) AS items
     FROM backtests b WHERE b.id = $1`,
    [id, after, limit],
  );
  const row = rows[0];
  return row ? { items: row.items, total: Number(row.total) } : undefined;
}

/** Whether a run with this id is stored. */
export async function runExists(db: Queryable, id: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM backtests WHERE id = $1', [id]);
  return rows.length > 0;
}

/** A run's full fingerprint; undefined when there is no such run. */
export async function runFingerprint(db: Queryable, id: string): Promise<Fingerprint | undefined> {
  const { rows } = await db.query<{ fingerprint: Fingerprint }>('SELECT fingerprint FROM backtests WHERE id = $1', [id]);
  return rows[0]?.fingerprint;
}

/** False when there was no such run. */
export async function deleteRun(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM backtests WHERE id = $1', [id]);
  return Boolean(rowCount);
}

/** The runs with these ids (in no particular order), each with its full fingerprint. */
export async function runsWithFingerprints(db: Queryable, ids: readonly string[]): Promise<{ run: Backtest; fingerprint: Fingerprint }[]> {
  const { rows } = await db.query<RunRow & { fingerprint: Fingerprint }>(
    `SELECT ${RUN_COLUMNS}, b.fingerprint FROM backtests b WHERE b.id = ANY($1::uuid[])`,
    [ids],
  );
  return rows.map((r) => ({ run: toBacktest(r), fingerprint: r.fingerprint }));
}

// ---- listing ----

const SQL_OP = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

// Metric and parameter names are inlined only after their regex allowed them: no quote can occur.
const metricExpr = (name: string) => `(b.metrics->>'${name}')::float8`;
const nested = (path: string[], value: unknown): unknown => path.reduceRight<unknown>((acc, key) => ({ [key]: acc }), value);

function clauseSql(c: Clause, p: Params): string {
  switch (c.kind) {
    case 'strategy':
      return `b.strategy = ANY(${p.add(c.values)}::text[])`;
    case 'version':
      return `b.strategy_version = ANY(${p.add(c.values)}::text[])`;
    case 'tagsAll':
      return `b.tags @> ${p.add(c.values)}::text[]`;
    case 'tagsAny':
      return `b.tags && ${p.add(c.values)}::text[]`;
    case 'tagsNone':
      return `NOT (b.tags && ${p.add(c.values)}::text[])`;
    case 'created':
      return `b.created_at ${c.op === 'gte' ? '>=' : '<'} ${p.add(new Date(c.ms).toISOString())}::timestamptz`;
    case 'metric':
      return `${metricExpr(c.name)} ${SQL_OP[c.op]} ${p.add(c.value)}::float8`;
    case 'metricExists':
      return `${c.exists ? '' : 'NOT '}(b.metrics ? ${p.add(c.name)})`;
    case 'paramExists':
      return `b.parameters #> ${p.add(c.path)}::text[] IS ${c.exists ? 'NOT ' : ''}NULL`;
    case 'param': {
      if (c.op === 'eq') return `b.parameters @> ${p.add(JSON.stringify(nested(c.path, c.value)))}::jsonb`;
      if (c.op === 'ne') return `NOT (b.parameters @> ${p.add(JSON.stringify(nested(c.path, c.value)))}::jsonb)`;
      const path = p.add(c.path);
      // Only numeric parameters compare; a text value never matches a range instead of failing the query.
      return `(CASE WHEN jsonb_typeof(b.parameters #> ${path}::text[]) = 'number' THEN (b.parameters #>> ${path}::text[])::float8 END) ${SQL_OP[c.op]} ${p.add(c.value)}::float8`;
    }
  }
}

export interface RunQuery {
  filter: Filter;
  /** Order by this metric (runs lacking it last) instead of the creation time. */
  metric: string | undefined;
  desc: boolean;
  /** Keyset position: the sort value and id of the last run of the previous page. */
  after: [number | string | null, string] | undefined;
  limit: number;
}

/** Runs matching the filter, in order, with the sort value each was ordered by (the creation time as text). */
export async function listRuns(db: Queryable, q: RunQuery): Promise<{ run: Backtest; sortValue: number | string | null }[]> {
  const p = new Params();
  const where = q.filter.all.map((c) => clauseSql(c, p));
  if (q.filter.any.length) where.push(`(${q.filter.any.map((g) => `(${g.map((c) => clauseSql(c, p)).join(' AND ')})`).join(' OR ')})`);

  const dir = q.desc ? 'DESC' : 'ASC';
  const cmp = q.desc ? '<' : '>';
  const keyExpr = q.metric ? metricExpr(q.metric) : 'b.created_at';
  if (q.after) {
    const [value, id] = q.after;
    if (!q.metric) {
      where.push(`(b.created_at, b.id) ${cmp} (${p.add(value)}::timestamptz, ${p.add(id)}::uuid)`);
    } else if (value === null) {
      where.push(`(${keyExpr} IS NULL AND b.id ${cmp} ${p.add(id)}::uuid)`);
    } else {
      const v = p.add(value);
      where.push(`(${keyExpr} ${cmp} ${v}::float8 OR (${keyExpr} = ${v}::float8 AND b.id ${cmp} ${p.add(id)}::uuid) OR ${keyExpr} IS NULL)`);
    }
  }
  const order = q.metric ? `${keyExpr} ${dir} NULLS LAST, b.id ${dir}` : `b.created_at ${dir}, b.id ${dir}`;
  const sql = `SELECT ${RUN_COLUMNS}, ${q.metric ? `${keyExpr} AS sort_value` : `to_char(b.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS sort_value`}
    FROM backtests b ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY ${order} LIMIT ${p.add(q.limit)}`;
  const { rows } = await db.query<RunRow & { sort_value: number | string | null }>(sql, p.values);
  return rows.map((r) => ({ run: toBacktest(r), sortValue: r.sort_value }));
}

// ---- fingerprints: the candles a run covers ----

// One row as text, exactly as stored (numeric keeps its scale), for hashing.
const rowText = (c = '') =>
  `concat_ws('|', (extract(epoch FROM ${c}open_time) * 1000)::bigint, ${c}open, ${c}high, ${c}low, ${c}close, ${c}volume, ${c}quote_volume, ${c}trades, ${c}closed)`;
const ROW_TEXT = rowText();
/** Sum of 60-bit slices of each row's md5: order-independent, exact in numeric, constant memory. */
const digestOf = (c = '') => `coalesce(sum(('x' || left(md5(${rowText(c)}), 15))::bit(60)::bigint), 0)::text`;

/** The newest restatement id: restatements after it are changes since. */
export async function restatementMark(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ mark: string }>('SELECT coalesce(max(id), 0) AS mark FROM candle_restatements');
  return Number(rows[0]?.mark ?? 0);
}

export interface RangeMeasure {
  candles: number;
  digest: string;
  /** [open time, md5 of the row] of the open candles; null when there are more than `maxOpen`. */
  open: [number, string][] | null;
  /** [start, end) ranges with no stored candle; null when there are more than `maxGaps`. */
  gaps: [number, number][] | null;
}

/** Count, digest, open candles and gaps of the stored candles of one series in [lo, hi) (epoch ms, aligned to `step`). */
export async function measureRange(
  db: Queryable,
  seriesId: number,
  range: { lo: number; hi: number; step: number },
  limits: { maxOpen: number; maxGaps: number },
): Promise<RangeMeasure> {
  const { lo, hi, step } = range;
  const { rows } = await db.query<{ n: string; digest: string; open: [number, string][] | null; open_n: string }>(
    `SELECT count(*) AS n,
            ${digestOf()} AS digest,
            count(*) FILTER (WHERE NOT closed) AS open_n,
            (array_agg(json_build_array((extract(epoch FROM open_time) * 1000)::bigint, md5(${ROW_TEXT})) ORDER BY open_time)
               FILTER (WHERE NOT closed))[1:${limits.maxOpen}] AS open
     FROM candles WHERE series_id = $1 AND open_time >= $2::timestamptz AND open_time < $3::timestamptz`,
    [seriesId, iso(lo), iso(hi)],
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
     SELECT a::text, b::text FROM d WHERE b > a ORDER BY a LIMIT ${limits.maxGaps + 1}`,
    [seriesId, iso(lo), iso(hi), lo, hi, step],
  );
  return {
    candles: Number(r.n),
    digest: r.digest,
    open: Number(r.open_n) > limits.maxOpen ? null : (r.open ?? []).map(([t, h]) => [Number(t), h]),
    gaps: gapRows.length > limits.maxGaps ? null : gapRows.map((g) => [Number(g.a), Number(g.b)]),
  };
}

/** Count and digest (as `measureRange` computes them) of a series' candles in [lo, hi), as stored now or as of a point. */
export async function digestRange(db: Queryable, seriesId: number, lo: number, hi: number, asOf?: AsOf): Promise<{ candles: number; digest: string }> {
  const { rows } = await db.query<{ n: string; digest: string }>(
    `SELECT count(*) AS n, ${digestOf('c.')} AS digest
     FROM ${candlesAt(asOf, 'c')} WHERE c.series_id = $1 AND c.open_time >= $2::timestamptz AND c.open_time < $3::timestamptz`,
    [seriesId, iso(lo), iso(hi)],
  );
  return { candles: Number(rows[0]!.n), digest: rows[0]!.digest };
}

export interface PrintChanges {
  restated: number;
  added: number;
  open: number;
  /** Non-zero when a print that kept too much to check cheaply no longer matches its count and digest. */
  full: number;
  /** Non-zero when the retention job has deleted candles of the print's range since `computedAt`. */
  expired: number;
}

/** What changed since each print was taken (at `computedAt`, ISO), in one statement for all of them. */
export async function changesSince(db: Queryable, prints: readonly (InstrumentPrint & { computedAt: string })[]): Promise<PrintChanges[]> {
  const restated = prints.map((p, k) => ({ k, s: p.seriesId, a: iso(p.start), b: iso(p.end), m: p.restatementMark }));
  const gaps = prints.flatMap((p, k) => (p.gaps ?? []).map(([a, b]) => ({ k, s: p.seriesId, a: iso(a), b: iso(b) })));
  const open = prints.flatMap((p, k) => (p.open ?? []).map(([t, h]) => ({ k, s: p.seriesId, t: iso(t), h })));
  // Prints that kept too much to check cheaply are recounted and re-hashed.
  const full = prints.flatMap((p, k) => (p.gaps === null || p.open === null ? [{ k, s: p.seriesId, a: iso(p.start), b: iso(p.end), n: p.candles, d: p.digest }] : []));
  // Retention deletes candles, which none of the checks above would see as a restatement.
  const expired = prints.map((p, k) => ({ k, s: p.seriesId, a: iso(p.start), c: p.computedAt }));
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
  part(
    expired,
    (p) => `SELECT 'expired', e.k, (SELECT count(*) FROM series_expiry x WHERE x.series_id = e.s AND x.expired_before > e.a AND x.updated_at > e.c)
      FROM jsonb_to_recordset(${p}) AS e(k int, s int, a timestamptz, c timestamptz)`,
  );
  const { rows } = parts.length
    ? await db.query<{ kind: keyof PrintChanges; k: number; n: string }>(parts.join('\n     UNION ALL\n     '), params)
    : { rows: [] };
  const out = prints.map(() => ({ restated: 0, added: 0, open: 0, full: 0, expired: 0 }));
  for (const r of rows) out[r.k]![r.kind] += Number(r.n);
  return out;
}
