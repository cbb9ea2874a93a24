/**
 * Shared by the end-to-end and fault tests: a database of the test's own (the fake exchange lists
 * few markets, so files that write the same series must not share one), exact reconciliation of
 * what is stored against what the fake exchange served, and a sink that remembers every message
 * it queued.
 */
import { ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { expect } from 'vitest';
import { withDatabase } from '../../../dev/postgres.ts';
import { encodeCandleBatches, parseCandleBatch, type BatchRange } from '../../../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../../../functions/candles/candle.ts';
import type { CandleSink, SinkResult } from '../../../functions/ingest/candle-sink.ts';
import { sendMessageBodies } from '../../../functions/queue/send.ts';
import { REASON_ATTRIBUTE } from '../../../functions/queue/dead-letter.ts';
import { dropDatabase, ensureDatabase } from '../../../functions/store/databases.ts';
import { configureLocalRelay, createPool, type Db, type Queryable } from '../../../functions/store/db.ts';
import { migrate } from '../../../functions/store/migrate.ts';
import { uniqueName } from '../../support/db.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { asStored, readStored } from '../../support/stored-candles.ts';

export { asStored, type StoredCandle };

export interface ScratchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, migrated database on the test server, for one test file. */
export async function scratchDatabase(prefix = 'ck_e2e'): Promise<ScratchDatabase> {
  const server = process.env.CANDLEKEEP_TEST_SERVER_URL;
  const relay = process.env.CANDLEKEEP_WS_PROXY;
  if (!server || !relay) throw new Error('CANDLEKEEP_TEST_SERVER_URL / CANDLEKEEP_WS_PROXY are not set: run integration tests through vitest');
  configureLocalRelay(relay);
  const name = uniqueName(prefix);
  const admin = createPool(server, { max: 1 });
  await ensureDatabase(admin, name);
  const url = withDatabase(server, name);
  const pool = createPool(url, { max: 1 });
  try {
    await migrate(pool);
  } finally {
    await pool.end();
  }
  return {
    url,
    name,
    async drop() {
      await dropDatabase(admin, name);
      await admin.end();
    },
  };
}

/** Queues candles as CandleBatch messages, like QueueSink, and remembers each body it sent. */
export class RecordingSink implements CandleSink {
  readonly kind = 'queue';
  readonly bodies: string[] = [];
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;
  readonly #maxBytes: number | undefined;

  constructor(sqs: SQSClient, queueUrl: string, opts: { maxBytes?: number } = {}) {
    this.#sqs = sqs;
    this.#queueUrl = queueUrl;
    this.#maxBytes = opts.maxBytes;
  }

  async write(series: SeriesKey, candles: readonly Candle[], fetchedAt: number, range?: BatchRange): Promise<SinkResult> {
    if (candles.length === 0 && !range) return { candles: 0, messages: 0 };
    const bodies = encodeCandleBatches(series, candles, fetchedAt, range, this.#maxBytes);
    await sendMessageBodies(this.#sqs, this.#queueUrl, bodies);
    this.bodies.push(...bodies);
    return { candles: candles.length, messages: bodies.length };
  }
}

/** Every stored row of a series (all of them, so extras and duplicates show), as stored text. */
export const storedRows = (db: Queryable, s: SeriesKey) => readStored(db, s);

export interface ReconcileInput {
  label: string;
  db: Db;
  /** Each series with exactly the candles it must end with (the fake's answer at the end). */
  series: { key: SeriesKey; expected: readonly Candle[] }[];
  /** Valid messages sent (duplicates included). */
  messages: readonly string[];
  /** Poison messages sent, each with what its reason must say. */
  poison?: ReadonlyMap<string, RegExp>;
  sqs: SQSClient;
  dlqUrl: string;
}

export interface Reconciliation {
  label: string;
  candlesChecked: number;
  candlesLost: number;
  candlesDuplicated: number;
  /** Stored rows not among the expected candles. */
  candlesUnexpected: number;
  /** Stored values that differ from what the exchange served. */
  candlesChanged: number;
  /** Rows in candle_restatements: a closed candle was overwritten. */
  closedRestated: number;
  messagesChecked: number;
  /** Valid messages with at least one candle missing. */
  messagesLost: number;
  /** Messages in the DLQ more often than sent, or valid messages in the DLQ. */
  messagesDuplicated: number;
  poisonSent: number;
  poisonInDlq: number;
  poisonWithoutReason: number;
}

/**
 * The full reconciliation every fault test ends with: every candle present exactly once with the
 * exchange's values, no closed candle restated, every valid message's candles stored, and every
 * poison message in the DLQ with its reason (and nothing else there). Prints the counts and
 * asserts the losses, duplicates and changes are zero.
 */
export async function reconcile(input: ReconcileInput): Promise<Reconciliation> {
  const r: Reconciliation = {
    label: input.label,
    candlesChecked: 0, candlesLost: 0, candlesDuplicated: 0, candlesUnexpected: 0, candlesChanged: 0, closedRestated: 0,
    messagesChecked: input.messages.length, messagesLost: 0, messagesDuplicated: 0,
    poisonSent: input.poison?.size ?? 0, poisonInDlq: 0, poisonWithoutReason: 0,
  };
  const stored = new Map<string, Map<number, StoredCandle>>();
  const mismatches: string[] = [];
  for (const { key, expected } of input.series) {
    const rows = await storedRows(input.db, key);
    const byTime = new Map<number, StoredCandle>();
    for (const row of rows) {
      if (byTime.has(row.openTime)) r.candlesDuplicated += 1;
      byTime.set(row.openTime, row);
    }
    stored.set(seriesKey(key), byTime);
    const want = new Map(expected.map((c) => [c.openTime, asStored(c)]));
    r.candlesChecked += want.size;
    for (const [t, c] of want) {
      const got = byTime.get(t);
      if (!got) r.candlesLost += 1;
      else if (JSON.stringify(got) !== JSON.stringify(c)) {
        r.candlesChanged += 1;
        if (mismatches.length < 3) mismatches.push(`${seriesKey(key)} ${new Date(t).toISOString()}: stored ${JSON.stringify(got)}, served ${JSON.stringify(c)}`);
      }
    }
    for (const t of byTime.keys()) if (!want.has(t)) r.candlesUnexpected += 1;
    const { rows: restated } = await input.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM candle_restatements x JOIN series s ON s.id = x.series_id
       WHERE s.exchange = $1 AND s.symbol = $2 AND s.interval = $3`,
      [key.exchange, key.symbol, key.interval],
    );
    r.closedRestated += restated[0]?.n ?? 0;
  }

  for (const body of input.messages) {
    const parsed = parseCandleBatch(body);
    if (!parsed.ok) throw new Error(`a message counted as valid does not parse: ${parsed.reason}`);
    const rows = stored.get(seriesKey(parsed.batch));
    if (!rows || parsed.batch.rows.some((row) => !rows.has(row[0]))) r.messagesLost += 1;
  }

  // Everything in the DLQ, read without deleting (the test's queues go with it).
  const dead = await readAll(input.sqs, input.dlqUrl);
  const seen = new Map<string, number>();
  const valid = new Set(input.messages);
  for (const m of dead) {
    const body = m.Body ?? '';
    seen.set(body, (seen.get(body) ?? 0) + 1);
    if (valid.has(body)) {
      r.messagesDuplicated += 1;
      continue;
    }
    const want = input.poison?.get(body);
    if (!want) {
      r.messagesDuplicated += 1;
      continue;
    }
    const reason = m.MessageAttributes?.[REASON_ATTRIBUTE]?.StringValue ?? '';
    if (!want.test(reason)) {
      r.poisonWithoutReason += 1;
      mismatches.push(`poison ${body.slice(0, 40)}: reason ${JSON.stringify(reason)} does not match ${want}`);
    }
  }
  for (const body of input.poison?.keys() ?? []) {
    const n = seen.get(body) ?? 0;
    if (n > 0) r.poisonInDlq += 1;
    if (n > 1) r.messagesDuplicated += n - 1;
  }

  process.stdout.write(
    `[reconcile] ${r.label}: candles checked ${r.candlesChecked}, lost ${r.candlesLost}, duplicated ${r.candlesDuplicated}, ` +
      `unexpected ${r.candlesUnexpected}, changed ${r.candlesChanged}, closed restated ${r.closedRestated}; ` +
      `messages checked ${r.messagesChecked}, lost ${r.messagesLost}, duplicated ${r.messagesDuplicated}; ` +
      `poison ${r.poisonSent} sent, ${r.poisonInDlq} in the DLQ, ${r.poisonWithoutReason} without the right reason\n`,
  );
  expect(mismatches, 'stored values and DLQ reasons').toEqual([]);
  expect(r).toMatchObject({
    candlesLost: 0, candlesDuplicated: 0, candlesUnexpected: 0, candlesChanged: 0, closedRestated: 0,
    messagesLost: 0, messagesDuplicated: 0, poisonInDlq: r.poisonSent, poisonWithoutReason: 0,
  });
  expect(r.candlesChecked).toBeGreaterThan(0);
  return r;
}

/**
 * Every message now in a queue, received (and hidden for a minute) but not deleted; done after two
 * empty receives in a row, since SQS may answer one receive from a subset of its servers.
 */
export async function readAll(sqs: SQSClient, queueUrl: string): Promise<Message[]> {
  const seen = new Map<string, Message>();
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60, MessageAttributeNames: ['All'] }),
    );
    const fresh = (out.Messages ?? []).filter((m) => !seen.has(m.MessageId ?? ''));
    for (const m of fresh) seen.set(m.MessageId ?? '', m);
    empty = fresh.length === 0 ? empty + 1 : 0;
  }
  return [...seen.values()];
}

function seriesKey(s: SeriesKey): string {
  return `${s.exchange} ${s.symbol} ${s.interval}`;
}
