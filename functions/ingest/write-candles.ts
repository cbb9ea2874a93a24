import { parseCandleBatch, type CandleBatch } from '../candles/candle-batch.ts';
import type { CandleStore, UpsertResult } from '../store/candles.ts';
import type { Db } from '../store/db.ts';
import type { Rejected } from '../queue/dead-letter.ts';

export interface QueueRecord {
  messageId: string;
  body: string;
  receiveCount?: string | undefined;
}

export interface WriteDeps {
  db: Db;
  store: CandleStore;
  /** Sends rejected messages to the dead-letter queue; returns the ids it could not send. */
  deadLetter: (rejected: readonly Rejected[]) => Promise<string[]>;
}

export interface WriteOutcome extends UpsertResult {
  messages: number;
  rejected: Rejected[];
  /** Message ids SQS must keep and redeliver. */
  failedMessageIds: string[];
}

/**
 * The writer's domain step for one SQS batch: validate every message, write all valid candles with
 * one upsert and record the ranges they account for in the coverage ledger (one transaction, so a
 * range is claimed only once its candles are stored), and send invalid messages to the dead-letter
 * queue with their reason.
 *
 * A database error is thrown, not swallowed: the handler lets it fail the whole batch so SQS
 * redelivers every message (an upsert of the same rows again is a no-op, so that is safe).
 */
export async function writeCandleMessages(records: readonly QueueRecord[], deps: WriteDeps): Promise<WriteOutcome> {
  const valid: CandleBatch[] = [];
  const rejected: Rejected[] = [];
  for (const r of records) {
    const parsed = parseCandleBatch(r.body);
    if (parsed.ok) valid.push(parsed.batch);
    else rejected.push({ messageId: r.messageId, body: r.body, reason: parsed.reason, receiveCount: r.receiveCount });
  }
  const result = await deps.store.write(deps.db, valid);
  // Only after the candles are safely written: a poison message sent to the DLQ before a failed
  // write would come back with the redelivered batch and be dead-lettered twice.
  const failedMessageIds = rejected.length > 0 ? await deps.deadLetter(rejected) : [];
  return { ...result, messages: records.length, rejected, failedMessageIds };
}
