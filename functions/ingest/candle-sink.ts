import { encodeCandleBatches, type BatchRange } from '../candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../candles/candle.ts';
import type { CandleStore } from '../store/candles.ts';
import type { Db } from '../store/db.ts';
import { sendMessageBodies, type SendOptions, type SqsClient } from '../queue/send.ts';
import { writeCandleMessages } from './write-candles.ts';

export interface SinkResult {
  candles: number;
  /** CandleBatch v1 messages the candles were packed into. */
  messages: number;
  /** Rows inserted or changed (direct writes only; the writer Lambda counts them for the queue). */
  written?: number;
  unchanged?: number;
}

/**
 * Where fetched candles go: the candles queue in AWS, or straight into PostgreSQL through the
 * writer's own domain step when no queue is configured. Either way they travel as CandleBatch v1
 * messages, so both paths validate and apply the finality rules identically. `write` resolves once
 * the candles are durable (accepted by SQS, or committed).
 *
 * `range` is the span the exchange was asked for (the candles past it, such as the forming one,
 * may ride along). It travels in the messages and the writer records it in the coverage ledger
 * when it stores them, so a message lost on the way leaves its range missing, not "confirmed
 * empty". A range with no candles is still sent: that is the exchange saying there are none.
 */
export interface CandleSink {
  readonly kind: 'queue' | 'direct';
  write(series: SeriesKey, candles: readonly Candle[], fetchedAt: number, range?: BatchRange): Promise<SinkResult>;
}

const nothingToSend = (candles: readonly Candle[], range: BatchRange | undefined) => candles.length === 0 && !(range && range.end > range.start);

export class QueueSink implements CandleSink {
  readonly kind = 'queue';
  readonly #sqs: SqsClient;
  readonly #queueUrl: string;
  readonly #options: SendOptions;

  constructor(sqs: SqsClient, queueUrl: string, options: SendOptions = {}) {
    this.#sqs = sqs;
    this.#queueUrl = queueUrl;
    this.#options = options;
  }

  async write(series: SeriesKey, candles: readonly Candle[], fetchedAt: number, range?: BatchRange): Promise<SinkResult> {
    if (nothingToSend(candles, range)) return { candles: 0, messages: 0 };
    const bodies = encodeCandleBatches(series, candles, fetchedAt, range);
    await sendMessageBodies(this.#sqs, this.#queueUrl, bodies, this.#options);
    return { candles: candles.length, messages: bodies.length };
  }
}

export class DirectSink implements CandleSink {
  readonly kind = 'direct';
  readonly #db: Db;
  readonly #store: CandleStore;
  #sequence = 0;

  constructor(db: Db, store: CandleStore) {
    this.#db = db;
    this.#store = store;
  }

  async write(series: SeriesKey, candles: readonly Candle[], fetchedAt: number, range?: BatchRange): Promise<SinkResult> {
    if (nothingToSend(candles, range)) return { candles: 0, messages: 0 };
    const bodies = encodeCandleBatches(series, candles, fetchedAt, range);
    const records = bodies.map((body) => ({ messageId: `direct-${++this.#sequence}`, body }));
    const outcome = await writeCandleMessages(records, {
      db: this.#db,
      store: this.#store,
      // There is no dead-letter queue here: an exchange answer that fails the contract is a bug to see, not to park.
      deadLetter: async (rejected) => {
        throw new Error(`candles of ${series.exchange} ${series.symbol} ${series.interval} rejected: ${rejected.map((r) => r.reason).join('; ')}`);
      },
    });
    return { candles: candles.length, messages: bodies.length, written: outcome.written, unchanged: outcome.unchanged };
  }
}
