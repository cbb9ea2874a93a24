import { createHash, randomBytes } from 'node:crypto';
import { HttpProblem, notFound } from '../http/problem.ts';
import type { Queryable } from '../store/db.ts';
import { computeFingerprint, type Fingerprint } from './fingerprint.ts';
import type { Backtest, CreateBacktest, Instrument } from './record.ts';

/** A time-ordered UUID (v7): new runs land at the right edge of the primary key index. */
export function uuidv7(now: number): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** JSON with object keys sorted, so equal values hash equally whatever order a client wrote them in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const requestHash = (body: CreateBacktest) => createHash('sha256').update(canonicalJson(body)).digest('hex');

const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8`;

/** The columns of a run as the API shows it (fingerprint summarised; curve and trades apart). */
export const RUN_COLUMNS = `b.id, ${ms('b.created_at')} AS created_at, b.strategy, b.strategy_version, b.parameters, b.instruments,
  ${ms('b.range_start')} AS range_start, ${ms('b.range_end')} AS range_end, b.metrics, b.tags, b.notes,
  b.fingerprint->>'value' AS fp_value, b.fingerprint->>'computedAt' AS fp_at, (b.fingerprint->>'candles')::bigint AS fp_candles,
  b.equity_points, b.trade_rows`;

export interface RunRow {
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
}

const iso = (t: number) => new Date(t).toISOString();

export function toBacktest(r: RunRow): Backtest {
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
  };
}

export interface CreateOptions {
  /** The client's Idempotency-Key, scoped to its API key by the caller. */
  idempotencyKey?: string | undefined;
  now: number;
}

export interface CreateResult {
  run: Backtest;
  /** False when an earlier request with the same idempotency key already created the run. */
  created: boolean;
}

async function findByKey(db: Queryable, key: string, hash: string): Promise<Backtest | undefined> {
  const { rows } = await db.query<RunRow & { request_hash: string }>(
    `SELECT ${RUN_COLUMNS}, b.request_hash FROM backtests b WHERE b.idempotency_key = $1`,
    [key],
  );
  const row = rows[0];
  if (!row) return undefined;
  if (row.request_hash !== hash) {
    throw new HttpProblem(
      422,
      `Idempotency-Key was already used for a different run (${row.id}); use a new key for a new run, or resend the original body unchanged`,
      { parameter: 'Idempotency-Key', slug: 'idempotency-key-reused' },
    );
  }
  return toBacktest(row);
}

/**
 * Stores an immutable run with the fingerprint of the candles it covers. With an idempotency key a
 * retried request (same key, same body) returns the run the first one created, also when both
 * race: the unique key decides, and the loser reads the winner's row.
 */
export async function createBacktest(db: Queryable, body: CreateBacktest, opts: CreateOptions): Promise<CreateResult> {
  const hash = requestHash(body);
  if (opts.idempotencyKey) {
    const existing = await findByKey(db, opts.idempotencyKey, hash);
    if (existing) return { run: existing, created: false };
  }
  const fingerprint: Fingerprint = await computeFingerprint(db, body.instruments, body.start, body.end, opts.now);
  const id = uuidv7(opts.now);
  const curve = body.equityCurve ?? null;
  const trades = body.trades ?? null;
  const { rows } = await db.query<RunRow>(
    `WITH ins AS (
       INSERT INTO backtests AS b (id, created_at, idempotency_key, request_hash, strategy, strategy_version, parameters, instruments,
                                   range_start, range_end, metrics, tags, notes, fingerprint, equity_points, trade_rows)
       VALUES ($1, $2::timestamptz, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::timestamptz, $10::timestamptz, $11::jsonb, $12::text[], $13,
               $14::jsonb, $15, $16)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING ${RUN_COLUMNS}
     ), side AS (
       INSERT INTO backtest_series (backtest_id, equity_curve, trades)
       SELECT id, $17::jsonb, $18::jsonb FROM ins WHERE $17::jsonb IS NOT NULL OR $18::jsonb IS NOT NULL
     )
     SELECT * FROM ins`,
    [
      id,
      iso(opts.now),
      opts.idempotencyKey ?? null,
      hash,
      body.strategy,
      body.strategyVersion,
      JSON.stringify(body.parameters),
      JSON.stringify(body.instruments),
      iso(body.start),
      iso(body.end),
      JSON.stringify(body.metrics),
      body.tags,
      body.notes ?? null,
      JSON.stringify(fingerprint),
      curve?.length ?? 0,
      trades?.length ?? 0,
      curve ? JSON.stringify(curve) : null,
      trades ? JSON.stringify(trades) : null,
    ],
  );
  const row = rows[0];
  if (row) return { run: toBacktest(row), created: true };
  // Lost a race with a concurrent request carrying the same key.
  const existing = await findByKey(db, opts.idempotencyKey!, hash);
  if (!existing) throw new Error('backtest insert returned nothing and no run holds its idempotency key');
  return { run: existing, created: false };
}

export async function getBacktest(db: Queryable, id: string, include: { equityCurve: boolean; trades: boolean }): Promise<Backtest> {
  const extra = [
    include.equityCurve ? '(SELECT equity_curve FROM backtest_series s WHERE s.backtest_id = b.id) AS equity_curve' : null,
    include.trades ? '(SELECT trades FROM backtest_series s WHERE s.backtest_id = b.id) AS trades' : null,
  ].filter(Boolean);
  const { rows } = await db.query<RunRow & { equity_curve?: Backtest['equityCurve'] | null; trades?: Backtest['trades'] | null }>(
    `SELECT ${RUN_COLUMNS}${extra.length ? `, ${extra.join(', ')}` : ''} FROM backtests b WHERE b.id = $1`,
    [id],
  );
  const row = rows[0];
  if (!row) throw notFound(`no backtest run ${id}`, 'id');
  const run = toBacktest(row);
  if (include.equityCurve) run.equityCurve = row.equity_curve ?? [];
  if (include.trades) run.trades = row.trades ?? [];
  return run;
}

export async function deleteBacktest(db: Queryable, id: string): Promise<void> {
  const { rowCount } = await db.query('DELETE FROM backtests WHERE id = $1', [id]);
  if (!rowCount) throw notFound(`no backtest run ${id}`, 'id');
}
