import type { DeadLettered } from '../queue/dead-letter.ts';
import { describeDeadLetter, peekDeadLetters, type DeadLetter, type PeekOptions } from '../queue/dead-letter-scan.ts';
import type { Queryable } from '../store/db.ts';
import type { SqsClient } from '../queue/send.ts';
import { databaseNow, forgetDeadLettersNotSeenSince, recordDeadLetters, type DeadLetterRow } from '../store/dead-letters.ts';
import { SeriesRegistry } from '../store/series.ts';

export interface LedgerDeps {
  db: Queryable;
  sqs: SqsClient;
  /** Series ids, cached across a container's invocations. */
  registry: SeriesRegistry;
}

export interface LedgerRefresh {
  /** Messages in the dead-letter queue, as seen by this scan. */
  messages: number;
  /** Of those, messages whose body names no series or span (counted, but placed in no range). */
  unplaced: number;
  candles: number;
  /** The scan saw the whole queue, so records of messages no longer in it were removed. */
  complete: boolean;
  forgotten: number;
}

/** Ledger rows for described messages, with their series resolved (a series known only from a dead letter is created, so it can be listed). */
export async function deadLetterRows(db: Queryable, registry: SeriesRegistry, letters: readonly DeadLetter[]): Promise<DeadLetterRow[]> {
  const ids = await registry.resolve(db, letters.flatMap((l) => (l.series ? [l.series] : [])));
  return letters.map((l) => ({
    messageId: l.messageId,
    seriesId: l.series ? ids.get(SeriesRegistry.key(l.series)) : undefined,
    range: l.range,
    candles: l.candles,
    reason: l.reason,
  }));
}

/**
 * Brings the dead-letter ledger in line with the queue: records every message the queue holds and,
 * when the scan saw all of them, forgets those no longer there (redriven, or expired).
 */
export async function refreshDeadLetterLedger(deps: LedgerDeps, deadLetterQueueUrl: string, opts: PeekOptions = {}): Promise<LedgerRefresh> {
  const started = await databaseNow(deps.db);
  const peek = await peekDeadLetters(deps.sqs, deadLetterQueueUrl, opts);
  await recordDeadLetters(deps.db, await deadLetterRows(deps.db, deps.registry, peek.messages));
  const forgotten = peek.complete ? await forgetDeadLettersNotSeenSince(deps.db, started) : 0;
  return {
    messages: peek.messages.length,
    unplaced: peek.messages.filter((m) => m.series === undefined || m.range === undefined).length,
    candles: peek.messages.reduce((n, m) => n + m.candles, 0),
    complete: peek.complete,
    forgotten,
  };
}

/**
 * Records messages the writer itself just sent to the dead-letter queue, so gaps show them before
 * the next scan does. The scan would find them anyway: a caller may treat a failure here as harmless.
 */
export async function recordRejections(db: Queryable, registry: SeriesRegistry, sent: readonly DeadLettered[]): Promise<void> {
  const letters = sent.map((s) => describeDeadLetter(s.deadLetterId, s.rejected.body, s.rejected.reason));
  await recordDeadLetters(db, await deadLetterRows(db, registry, letters));
}
