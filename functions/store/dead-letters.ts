import type { Range } from '../ingest/ranges.ts';
import { rangesOverlapping, type CoverageRow } from './coverage.ts';
import type { Queryable } from './db.ts';
import { ms, ts } from './sql.ts';

/** One dead-lettered message as the ledger keeps it. */
export interface DeadLetterRow {
  messageId: string;
  /** Undefined when the body names no valid series. */
  seriesId: number | undefined;
  range: Range | undefined;
  candles: number;
  reason: string;
}

/** The database's clock, so "seen since" compares times from one clock whatever the function's. */
export async function databaseNow(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ t: number }>(`SELECT ${ms('clock_timestamp()')} AS t`);
  return Number(rows[0]?.t);
}

/** Records messages seen in the dead-letter queue (one statement); a message seen before keeps its first sighting. */
export async function recordDeadLetters(db: Queryable, rows: readonly DeadLetterRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO dead_letters (message_id, series_id, range_start, range_end, candles, reason)
     SELECT id, sid, ${ts('s')}, ${ts('e')}, n, reason
     FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[], $5::int[], $6::text[]) AS t(id, sid, s, e, n, reason)
     ON CONFLICT (message_id) DO UPDATE
       SET series_id = excluded.series_id, range_start = excluded.range_start, range_end = excluded.range_end,
           candles = excluded.candles, reason = excluded.reason, last_seen = clock_timestamp()`,
    [
      rows.map((r) => r.messageId),
      rows.map((r) => r.seriesId ?? null),
      rows.map((r) => r.range?.start ?? null),
      rows.map((r) => r.range?.end ?? null),
      rows.map((r) => r.candles),
      rows.map((r) => r.reason),
    ],
  );
}

/**
 * Forgets messages no longer in the queue: every row not seen since `since` (a complete scan that
 * began then saw, and so refreshed, every message still there). Returns how many went.
 */
export async function forgetDeadLettersNotSeenSince(db: Queryable, since: number): Promise<number> {
  const { rowCount } = await db.query(`DELETE FROM dead_letters WHERE last_seen < ${ts('$1')}`, [since]);
  return rowCount ?? 0;
}

/** Drops the records of messages known to have left the dead-letter queue. */
export async function forgetDeadLetters(db: Queryable, messageIds: readonly string[]): Promise<void> {
  await db.query('DELETE FROM dead_letters WHERE message_id = ANY($1::text[])', [messageIds]);
}

/** Spans of a series' dead-lettered messages (one per message) that overlap `within`, ascending, with their candle counts. */
export function loadDeadLetteredRanges(db: Queryable, seriesId: number, within: Range): Promise<CoverageRow[]> {
  return rangesOverlapping(db, 'dead_letters', seriesId, within);
}
