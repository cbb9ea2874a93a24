import type { Message } from '@aws-sdk/client-sqs';
import * as z from 'zod';
import { exchangeSchema, symbolSchema, type SeriesKey } from '../candles/candle.ts';
import { INTERVAL_MS, intervalSchema } from '../candles/intervals.ts';
import type { Range } from '../ingest/ranges.ts';
import { queueCounts } from './counts.ts';
import { REASON_ATTRIBUTE } from './dead-letter.ts';
import { releaseMessages } from './redrive.ts';
import { sqsModule, type SqsClient } from './send.ts';

/** The reason recorded for a message SQS moved itself: the writer failed on it maxReceiveCount times. */
export const RECEIVE_COUNT_EXCEEDED = 'receive count exceeded';

/** What one dead-lettered message holds back: its series and span when the body names them, its candle count and why it is there. */
export interface DeadLetter {
  messageId: string;
  series: SeriesKey | undefined;
  /** The half-open span of buckets the message accounts for. */
  range: Range | undefined;
  candles: number;
  reason: string;
}

/**
 * Only what placing a message needs, read leniently: a message is often in the dead-letter queue
 * because the full CandleBatch check refused it, and its series and span are still worth showing.
 */
const headerSchema = z.object({
  exchange: exchangeSchema,
  symbol: symbolSchema,
  interval: intervalSchema,
  rows: z.array(z.unknown()),
  range: z.tuple([z.number().int(), z.number().int()]).optional(),
});

/**
 * A dead-lettered body's series and span: the `range` it declares when it has one (a message may
 * account for buckets the exchange had no candle for), else its first row's open time to one
 * interval past its last row's.
 */
export function describeDeadLetter(messageId: string, body: string, reasonAttribute: string | undefined): DeadLetter {
  const reason = reasonAttribute ?? RECEIVE_COUNT_EXCEEDED;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { messageId, series: undefined, range: undefined, candles: 0, reason };
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) return { messageId, series: undefined, range: undefined, candles: 0, reason };
  const { exchange, symbol, interval, rows, range } = parsed.data;
  const series = { exchange, symbol, interval };
  if (range && range[1] > range[0]) return { messageId, series, range: { start: range[0], end: range[1] }, candles: rows.length, reason };
  const times = rows.flatMap((row) => (Array.isArray(row) && Number.isSafeInteger(row[0]) ? [row[0] as number] : []));
  const span = times.length > 0 ? { start: Math.min(...times), end: Math.max(...times) + INTERVAL_MS[interval] } : undefined;
  return { messageId, series, range: span, candles: rows.length, reason };
}

export interface PeekOptions {
  /** How long each message stays hidden while the scan holds it; it is handed back at once at the end. Default 120. */
  visibilitySeconds?: number;
  /** Stop after this many messages (the scan then counts as incomplete). Default 10,000. */
  max?: number;
}

export interface Peek {
  messages: DeadLetter[];
  /**
   * Every message the queue held was seen: the scan ended on empty receives, below `max`, and no
   * message was in flight when it began (one being redriven or held by another reader could be missed).
   */
  complete: boolean;
}

/**
 * Reads every message of a dead-letter queue without consuming it: each is received (hidden for
 * the length of the scan, so the next receive returns others), described, and made visible again
 * at the end, where a redrive finds it as before.
 */
export async function peekDeadLetters(sqs: SqsClient, queueUrl: string, opts: PeekOptions = {}): Promise<Peek> {
  const max = opts.max ?? 10_000;
  const before = await queueCounts(sqs, queueUrl);
  const held: Message[] = [];
  const seen = new Map<string, DeadLetter>();
  let emptyReceives = 0;
  const { ReceiveMessageCommand } = await sqsModule();
  try {
    while (seen.size < max && emptyReceives < 2) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
          VisibilityTimeout: opts.visibilitySeconds ?? 120,
          MessageAttributeNames: [REASON_ATTRIBUTE],
        }),
      );
      const got = (out.Messages ?? []).filter((m) => m.MessageId !== undefined);
      held.push(...got);
      const fresh = got.filter((m) => !seen.has(m.MessageId!));
      emptyReceives = fresh.length === 0 ? emptyReceives + 1 : 0;
      for (const m of fresh) {
        seen.set(m.MessageId!, describeDeadLetter(m.MessageId!, m.Body ?? '', m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue));
      }
    }
  } finally {
    await releaseMessages(sqs, queueUrl, held);
  }
  return { messages: [...seen.values()], complete: emptyReceives >= 2 && seen.size < max && before.inFlight === 0 };
}
