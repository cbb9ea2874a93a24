import { createHash, randomBytes } from 'node:crypto';
import { NotFound, Unprocessable } from '../errors.ts';
import type { Queryable } from '../store/db.ts';
import { deleteRun, findRunByKey, getRun, insertRun, runExists, runSeriesPage } from '../store/backtests.ts';
import { computeFingerprint } from './fingerprint.ts';
import type { Backtest, CreateBacktest } from './record.ts';

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
  const found = await findRunByKey(db, key);
  if (!found) return undefined;
  if (found.requestHash !== hash) {
    throw new Unprocessable(
      `Idempotency-Key was already used for a different run (${found.run.id}); use a new key for a new run, or resend the original body unchanged`,
      'Idempotency-Key',
      'idempotency-key-reused',
    );
  }
  return found.run;
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
  if (body.reproducedFrom !== undefined && !(await runExists(db, body.reproducedFrom))) {
    throw new Unprocessable(
      `reproducedFrom: no stored run ${body.reproducedFrom}; give the id of the run this one re-runs (GET /v1/backtests lists them)`,
      'reproducedFrom',
      'unknown-run',
    );
  }
  const fingerprint = await computeFingerprint(db, body.instruments, body.start, body.end, opts.now);
  const run = await insertRun(db, {
    id: uuidv7(opts.now),
    createdAt: opts.now,
    idempotencyKey: opts.idempotencyKey,
    requestHash: hash,
    body,
    fingerprint,
  });
  if (run) return { run, created: true };
  // Lost a race with a concurrent request carrying the same key.
  const existing = await findByKey(db, opts.idempotencyKey!, hash);
  if (!existing) throw new Error('backtest insert returned nothing and no run holds its idempotency key');
  return { run: existing, created: false };
}

export async function getBacktest(db: Queryable, id: string, include: { equityCurve: boolean; trades: boolean }): Promise<Backtest> {
  const run = await getRun(db, id, include);
  if (!run) throw new NotFound(`no backtest run ${id}`, 'id');
  return run;
}

/** A page of a run's trades or equity curve: up to `limit` entries after the first `after`. */
export async function backtestPart(
  db: Queryable,
  id: string,
  part: 'trades' | 'equityCurve',
  after: number,
  limit: number,
): Promise<{ items: unknown[]; total: number }> {
  const page = await runSeriesPage(db, id, part, after, limit);
  if (!page) throw new NotFound(`no backtest run ${id}`, 'id');
  return page;
}

export async function deleteBacktest(db: Queryable, id: string): Promise<void> {
  if (!(await deleteRun(db, id))) throw new NotFound(`no backtest run ${id}`, 'id');
}
