import type { Queryable } from './db.ts';
import { ms } from './sql.ts';

// Exports requested through the API (`exports`): one row per request, moved along by the export
// worker from queued to running to done or failed, with its progress on the way.

export type ExportStatus = 'queued' | 'running' | 'done' | 'failed';

export interface ExportJob {
  id: string;
  /** The request as POST /v1/exports accepted it, in its input form (see exportRequestInput). */
  request: unknown;
  format: 'parquet' | 'csv.gz';
  status: ExportStatus;
  requestedBy: string | null;
  requestedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  attempts: number;
  sourceCandles: number;
  totalSourceCandles: number | null;
  rows: number;
  bytes: number;
  error: string | null;
  resultKey: string | null;
  expiresAt: number | null;
}

const COLUMNS = `id::text, request, format, status, requested_by, ${ms('requested_at')} AS requested_at, ${ms('started_at')} AS started_at,
  ${ms('finished_at')} AS finished_at, attempts, source_candles::float8 AS source_candles, total_source_candles::float8 AS total_source_candles,
  rows_written::float8 AS rows_written, bytes_written::float8 AS bytes_written, error, result_key, ${ms('expires_at')} AS expires_at`;

interface Row {
  id: string;
  request: unknown;
  format: ExportJob['format'];
  status: ExportStatus;
  requested_by: string | null;
  requested_at: number;
  started_at: number | null;
  finished_at: number | null;
  attempts: number;
  source_candles: number;
  total_source_candles: number | null;
  rows_written: number;
  bytes_written: number;
  error: string | null;
  result_key: string | null;
  expires_at: number | null;
}

function toJob(r: Row): ExportJob {
  return {
    id: r.id,
    request: r.request,
    format: r.format,
    status: r.status,
    requestedBy: r.requested_by,
    requestedAt: r.requested_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    attempts: r.attempts,
    sourceCandles: r.source_candles,
    totalSourceCandles: r.total_source_candles,
    rows: r.rows_written,
    bytes: r.bytes_written,
    error: r.error,
    resultKey: r.result_key,
    expiresAt: r.expires_at,
  };
}

export async function insertExportJob(db: Queryable, job: { request: unknown; format: ExportJob['format']; requestedBy: string | undefined }): Promise<ExportJob> {
  const { rows } = await db.query<Row>(
    `INSERT INTO exports (request, format, requested_by) VALUES ($1::jsonb, $2, $3) RETURNING ${COLUMNS}`,
    [JSON.stringify(job.request), job.format, job.requestedBy ?? null],
  );
  return toJob(rows[0]!);
}

/** The export, or undefined for an id that is not one (including text that is no UUID). */
export async function getExportJob(db: Queryable, id: string): Promise<ExportJob | undefined> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM exports WHERE id = $1::uuid`, [id]);
  return rows[0] ? toJob(rows[0]) : undefined;
}

/**
 * Starts (or, after a worker died, restarts) an export: queued or running becomes running with one
 * more attempt and the progress reset. Undefined when it already ended (a redelivered message) or
 * does not exist.
 */
export async function startExportJob(db: Queryable, id: string): Promise<ExportJob | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE exports SET status = 'running', started_at = now(), attempts = attempts + 1,
            source_candles = 0, total_source_candles = NULL, rows_written = 0, bytes_written = 0
     WHERE id = $1::uuid AND status IN ('queued', 'running') RETURNING ${COLUMNS}`,
    [id],
  );
  return rows[0] ? toJob(rows[0]) : undefined;
}

export interface ExportJobProgress {
  sourceCandles: number;
  totalSourceCandles: number;
  rows: number;
  bytes: number;
}

/** Records progress of a running export (of this attempt only: a newer attempt owns the row). */
export async function recordExportProgress(db: Queryable, id: string, attempt: number, p: ExportJobProgress): Promise<void> {
  await db.query(
    `UPDATE exports SET source_candles = $3, total_source_candles = $4, rows_written = $5, bytes_written = $6
     WHERE id = $1::uuid AND attempts = $2 AND status = 'running'`,
    [id, attempt, p.sourceCandles, p.totalSourceCandles, p.rows, p.bytes],
  );
}

/** Marks the export done with its file; false when this attempt no longer owns it. */
export async function finishExportJob(db: Queryable, id: string, attempt: number, p: ExportJobProgress & { resultKey: string; expiresAt: number }): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE exports SET status = 'done', finished_at = now(), source_candles = $3, total_source_candles = $4, rows_written = $5,
            bytes_written = $6, result_key = $7, expires_at = to_timestamp($8::float8 / 1000)
     WHERE id = $1::uuid AND attempts = $2 AND status = 'running'`,
    [id, attempt, p.sourceCandles, p.totalSourceCandles, p.rows, p.bytes, p.resultKey, p.expiresAt],
  );
  return (rowCount ?? 0) > 0;
}

/** Marks a queued or running export failed with its reason (attempt: only if this attempt still owns it). */
export async function failExportJob(db: Queryable, id: string, error: string, attempt?: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE exports SET status = 'failed', finished_at = now(), error = $2
     WHERE id = $1::uuid AND status IN ('queued', 'running') AND ($3::int IS NULL OR attempts = $3)`,
    [id, error, attempt ?? null],
  );
  return (rowCount ?? 0) > 0;
}
