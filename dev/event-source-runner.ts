/**
 * A local stand-in for Lambda's SQS event source mapping, so handlers run in-process against a real
 * (LocalStack) queue where Lambda itself cannot run (no Docker engine).
 *
 * What it reproduces: long-polling, batch size and batching window, the Lambda-shaped SQSEvent,
 * deleting only what succeeded (ReportBatchItemFailures), leaving failures for SQS to redeliver
 * after the visibility timeout, and a concurrency cap. What it leaves to SQS: redrive to the DLQ
 * (the queue's RedrivePolicy counts receives, exactly as in AWS). Not modelled: FIFO ordering
 * rules, function timeouts killing an invocation, and scaling pollers beyond `concurrency`.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type {
  Context,
  SQSBatchResponse,
  SQSEvent,
  SQSMessageAttributes,
  SQSRecord,
  SQSRecordAttributes,
} from 'aws-lambda';

export type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

export interface BatchInfo {
  /** 1-based, per runner. */
  batch: number;
  size: number;
  messageIds: string[];
  /** Messages left on the queue for redelivery (reported failures, or all of them on error). */
  failedMessageIds: string[];
  deleted: number;
  /** Set when the handler threw or returned a response Lambda would reject. */
  error?: unknown;
  durationMs: number;
}

export interface EventSourceRunnerOptions {
  sqs: SQSClient;
  queueUrl: string;
  /** Used as eventSourceARN; looked up with GetQueueAttributes when omitted. */
  queueArn?: string;
  handler: SqsBatchHandler;
  /** Records per invocation: 1–10000, default 10. Above 10 needs maxBatchingWindowMs >= 1000, as in AWS. */
  batchSize?: number;
  /** How long to keep gathering records after the first arrives: 0–300000 ms, default 0. */
  maxBatchingWindowMs?: number;
  /** Passed to ReceiveMessage; the queue's own visibility timeout applies when omitted (as with Lambda). */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait, 0–20 s, default 20 like Lambda's pollers. stop() may wait this long. */
  waitTimeSeconds?: number;
  /** Concurrent pollers/invocations (the mapping's maximum concurrency), default 1. */
  concurrency?: number;
  /**
   * Honour `batchItemFailures` (FunctionResponseTypes: ReportBatchItemFailures), default true.
   * When false the response is ignored, like a mapping without that setting.
   */
  reportBatchItemFailures?: boolean;
  functionName?: string;
  /** Only feeds context.getRemainingTimeInMillis(); default 30000. */
  functionTimeoutMs?: number;
  log?: (msg: string) => void;
  onBatch?: (info: BatchInfo) => void;
}

export interface EventSourceRunnerStats {
  batches: number;
  messagesReceived: number;
  messagesDeleted: number;
  /** Messages left for redelivery: reported item failures plus whole batches that errored. */
  messagesFailed: number;
  /** Invocations that threw or returned a malformed batch response. */
  handlerErrors: number;
  /** Messages whose deletion still failed after retries (they will be delivered again). */
  deleteErrors: number;
  receiveErrors: number;
}

/** Lambda's invocation payload limit; a batch closes early rather than exceed it. */
const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;
const RECEIVE_MAX = 10;
const DELETE_BATCH_MAX = 10;

/**
 * Polls one queue with `concurrency` pollers and invokes the handler once per batch, as a Lambda
 * event source mapping does. Construction checks the options; start() begins polling.
 */
export class EventSourceRunner {
  private readonly opts: EventSourceRunnerOptions;
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly waitTimeSeconds: number;
  private readonly concurrency: number;
  private readonly reportFailures: boolean;
  private readonly functionName: string;
  private readonly functionTimeoutMs: number;
  private readonly log: (msg: string) => void;
  private readonly counters: EventSourceRunnerStats = {
    batches: 0,
    messagesReceived: 0,
    messagesDeleted: 0,
    messagesFailed: 0,
    handlerErrors: 0,
    deleteErrors: 0,
    receiveErrors: 0,
  };
  private stopping = false;
  private batchCounter = 0;
  private receiveFailuresInARow = 0;
  private source: Promise<{ arn: string; region: string }> | undefined;
  private pollers: Promise<void>[] = [];
  private stopped: Promise<void> | undefined;

  constructor(opts: EventSourceRunnerOptions) {
    this.opts = opts;
    this.batchSize = opts.batchSize ?? 10;
    this.windowMs = opts.maxBatchingWindowMs ?? 0;
    this.waitTimeSeconds = opts.waitTimeSeconds ?? 20;
    this.concurrency = opts.concurrency ?? 1;
    this.reportFailures = opts.reportBatchItemFailures ?? true;
    this.functionName = opts.functionName ?? 'local-function';
    this.functionTimeoutMs = opts.functionTimeoutMs ?? 30_000;
    this.log = opts.log ?? ((m: string) => console.error(`[event-source-runner] ${m}`));

    // The same limits AWS validates when the mapping is created, so local config errors surface here.
    const { batchSize, windowMs, waitTimeSeconds, concurrency } = this;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      throw new RangeError(`batchSize must be an integer in 1..10000, got ${batchSize}`);
    }
    if (windowMs < 0 || windowMs > 300_000) {
      throw new RangeError(`maxBatchingWindowMs must be in 0..300000, got ${windowMs}`);
    }
    if (batchSize > 10 && windowMs < 1_000) {
      throw new RangeError('batchSize above 10 requires maxBatchingWindowMs >= 1000 (as in AWS)');
    }
    if (!Number.isInteger(waitTimeSeconds) || waitTimeSeconds < 0 || waitTimeSeconds > 20) {
      throw new RangeError(`waitTimeSeconds must be an integer in 0..20, got ${waitTimeSeconds}`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    }
  }

  get stats(): Readonly<EventSourceRunnerStats> {
    return this.counters;
  }

  /** Starts the pollers; calling it again does nothing. */
  start(): this {
    if (this.pollers.length > 0 || this.stopping) return this;
    // Early, so a too-short visibility timeout is reported before the first batch; failures retry later.
    this.sourceInfo().catch(() => {});
    this.pollers = Array.from({ length: this.concurrency }, () =>
      this.poll().catch((err: unknown) => {
        this.log(`poller crashed: ${errorMessage(err)}`);
      }),
    );
    return this;
  }

  /** Stops polling, lets in-flight receives and batches finish, then resolves. Idempotent. */
  stop(): Promise<void> {
    this.stopping = true;
    this.stopped ??= Promise.all(this.pollers).then(() => undefined);
    return this.stopped;
  }

  private async poll(): Promise<void> {
    const carry: Message[] = [];
    while (!this.stopping || carry.length > 0) {
      const batch = await this.collect(carry);
      if (batch.length > 0) await this.processBatch(batch);
    }
  }

  /** The queue's ARN and region for the records, looked up once (again after a failure). */
  private sourceInfo(): Promise<{ arn: string; region: string }> {
    const { sqs, queueUrl, queueArn } = this.opts;
    return (this.source ??= (async () => {
      const region = await sqs.config.region();
      const attrs = await sqs
        .send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn', 'VisibilityTimeout'] }))
        .then((res) => res.Attributes ?? {})
        .catch((err: unknown) => {
          if (!queueArn) throw err;
          return {} as Record<string, string>; // the ARN was given; the check below is only advisory
        });
      this.warnIfVisibilityTooShort(attrs.VisibilityTimeout);
      const arn = queueArn ?? attrs.QueueArn;
      if (!arn) throw new Error(`GetQueueAttributes returned no QueueArn for ${queueUrl}`);
      return { arn, region };
    })().catch((err: unknown) => {
      this.source = undefined; // retry on the next batch
      throw err;
    }));
  }

  /**
   * Messages gathered early in a window become visible again if the visibility timeout is shorter
   * than the window, and are received a second time into the same batch. AWS guards against this
   * by requiring visibility timeout >= function timeout when the mapping is created.
   */
  private warnIfVisibilityTooShort(queueVisibility: string | undefined): void {
    const seconds = this.opts.visibilityTimeoutSeconds ?? (queueVisibility ? Number(queueVisibility) : undefined);
    if (seconds !== undefined && seconds * 1000 <= this.windowMs) {
      this.log(
        `visibility timeout ${seconds} s is not longer than the batching window ${this.windowMs} ms: ` +
          'messages will reappear (with a higher receive count) before their batch is invoked',
      );
    }
  }

  /** Sends one ReceiveMessage; errors are counted and back off so a missing queue does not spin. */
  private async receive(max: number, wait: number): Promise<Message[]> {
    const { sqs, queueUrl, visibilityTimeoutSeconds } = this.opts;
    try {
      const res = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: wait,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
          ...(visibilityTimeoutSeconds !== undefined ? { VisibilityTimeout: visibilityTimeoutSeconds } : {}),
        }),
      );
      this.receiveFailuresInARow = 0;
      return res.Messages ?? [];
    } catch (err) {
      this.counters.receiveErrors++;
      this.receiveFailuresInARow++;
      this.log(`ReceiveMessage failed (${errorMessage(err)}); backing off`);
      await sleep(Math.min(5_000, 100 * 2 ** Math.min(this.receiveFailuresInARow, 6)));
      return [];
    }
  }

  /**
   * Gathers one batch: waits for a first message, then keeps receiving until batchSize, the window
   * closes, or the payload limit. Messages that would overflow the payload go to `carry`.
   * Never abandons received messages: they are invisible now and must be handled by someone.
   */
  private async collect(carry: Message[]): Promise<Message[]> {
    const { batchSize, windowMs, waitTimeSeconds } = this;
    const batch: Message[] = [];
    const indexById = new Map<string, number>();
    let bytes = 0;
    const add = (msgs: Message[]): void => {
      for (const m of msgs) {
        // Received again within this window (see warnIfVisibilityTooShort): keep one record per
        // message, with the newest receipt handle, since only that one can delete it.
        const seenAt = m.MessageId !== undefined ? indexById.get(m.MessageId) : undefined;
        if (seenAt !== undefined) {
          batch[seenAt] = m;
          continue;
        }
        const size = approxRecordBytes(m);
        if (batch.length >= batchSize || (batch.length > 0 && bytes + size > MAX_PAYLOAD_BYTES)) {
          carry.push(m);
        } else {
          if (m.MessageId !== undefined) indexById.set(m.MessageId, batch.length);
          batch.push(m);
          bytes += size;
        }
      }
    };
    add(carry.splice(0));

    while (batch.length === 0) {
      if (this.stopping) return batch;
      add(await this.receive(Math.min(RECEIVE_MAX, batchSize), waitTimeSeconds));
    }

    const windowEnd = Date.now() + windowMs;
    while (batch.length < batchSize && carry.length === 0 && !this.stopping) {
      const remaining = windowEnd - Date.now();
      if (remaining <= 0) break;
      // WaitTimeSeconds is whole seconds; never wait past the window, short-poll its last fraction.
      const wait = Math.min(waitTimeSeconds, Math.floor(remaining / 1000));
      const got = await this.receive(Math.min(RECEIVE_MAX, batchSize - batch.length), wait);
      add(got);
      if (got.length === 0 && wait === 0) await sleep(Math.min(remaining, 50));
    }
    return batch;
  }

  /** One invocation; deletes what succeeded and leaves reported failures for SQS to redeliver. */
  private async processBatch(messages: Message[]): Promise<void> {
    const started = Date.now();
    const batchNo = ++this.batchCounter;
    const stats = this.counters;
    stats.batches++;
    stats.messagesReceived += messages.length;
    const messageIds = messages.map((m) => m.MessageId ?? '');

    let failedIds: Set<string>;
    let error: unknown;
    try {
      const { arn, region } = await this.sourceInfo();
      const event: SQSEvent = { Records: messages.map((m) => toRecord(m, arn, region)) };
      const response = await Promise.resolve().then(() =>
        this.opts.handler(event, lambdaContext(this.functionName, this.functionTimeoutMs, region)),
      );
      failedIds = this.reportFailures ? parseBatchResponse(response, new Set(messageIds)) : new Set();
    } catch (err) {
      // Lambda retries the whole batch when the invocation fails: delete nothing.
      error = err;
      stats.handlerErrors++;
      failedIds = new Set(messageIds);
      this.log(`batch ${batchNo} (${messages.length} messages) failed; all will be redelivered: ${errorMessage(err)}`);
    }

    const toDelete = messages.filter((m) => !failedIds.has(m.MessageId ?? ''));
    const deleted = toDelete.length > 0 ? await this.deleteMessages(toDelete) : 0;
    stats.messagesDeleted += deleted;
    stats.messagesFailed += failedIds.size;

    const info: BatchInfo = {
      batch: batchNo,
      size: messages.length,
      messageIds,
      failedMessageIds: [...failedIds],
      deleted,
      durationMs: Date.now() - started,
      ...(error !== undefined ? { error } : {}),
    };
    try {
      this.opts.onBatch?.(info);
    } catch (err) {
      this.log(`onBatch callback threw: ${errorMessage(err)}`);
    }
  }

  /** DeleteMessageBatch in chunks of 10, retrying entries that fail; returns how many were deleted. */
  private async deleteMessages(messages: Message[]): Promise<number> {
    const { sqs, queueUrl } = this.opts;
    let deleted = 0;
    for (let i = 0; i < messages.length; i += DELETE_BATCH_MAX) {
      let pending = messages.slice(i, i + DELETE_BATCH_MAX);
      for (let attempt = 1; pending.length > 0; attempt++) {
        let failedIds: Set<string>;
        let reason = '';
        try {
          const res = await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: pending.map((m, idx) => ({ Id: String(idx), ReceiptHandle: m.ReceiptHandle })),
            }),
          );
          failedIds = new Set((res.Failed ?? []).map((f) => f.Id ?? ''));
          reason = (res.Failed ?? []).map((f) => `${f.Code}: ${f.Message ?? ''}`).join('; ');
          deleted += pending.length - failedIds.size;
        } catch (err) {
          failedIds = new Set(pending.map((_, idx) => String(idx)));
          reason = errorMessage(err);
        }
        pending = pending.filter((_, idx) => failedIds.has(String(idx)));
        if (pending.length === 0) break;
        if (attempt >= 3) {
          // At-least-once: the messages come back after the visibility timeout and run again.
          this.counters.deleteErrors += pending.length;
          this.log(`could not delete ${pending.length} message(s) after ${attempt} attempts: ${reason}`);
          break;
        }
        await sleep(100 * attempt);
      }
    }
    return deleted;
  }
}

/** Constructs a runner and starts it. */
export function startEventSourceRunner(opts: EventSourceRunnerOptions): EventSourceRunner {
  return new EventSourceRunner(opts).start();
}

/**
 * Lambda's rules for a partial batch response: null/undefined, `{}`, or a missing/null/empty
 * `batchItemFailures` mean full success; anything malformed, or an itemIdentifier that is empty or
 * not in the batch, fails the whole batch (thrown here so the caller deletes nothing).
 */
export function parseBatchResponse(response: unknown, batchIds: Set<string>): Set<string> {
  if (response === undefined || response === null) return new Set();
  if (typeof response !== 'object' || Array.isArray(response)) {
    throw new Error(`malformed batch response: expected an object, got ${describe(response)}`);
  }
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) {
    throw new Error(`malformed batch response: batchItemFailures is ${describe(failures)}, not an array`);
  }
  const ids = new Set<string>();
  for (const item of failures) {
    const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || id === '' || !batchIds.has(id)) {
      throw new Error(`malformed batch response: itemIdentifier ${JSON.stringify(id)} is not a messageId in this batch`);
    }
    ids.add(id);
  }
  return ids;
}

const RECORD_ATTRIBUTE_KEYS = [
  'AWSTraceHeader',
  'ApproximateReceiveCount',
  'SentTimestamp',
  'SenderId',
  'ApproximateFirstReceiveTimestamp',
  'SequenceNumber',
  'MessageGroupId',
  'MessageDeduplicationId',
  'DeadLetterQueueSourceArn',
] as const;

/** The record shape Lambda delivers (camelCase keys, lower-case message attribute fields). */
export function toRecord(m: Message, eventSourceARN: string, awsRegion: string): SQSRecord {
  const src = m.Attributes ?? {};
  const attributes: SQSRecordAttributes = {
    ApproximateReceiveCount: src.ApproximateReceiveCount ?? '1',
    SentTimestamp: src.SentTimestamp ?? '',
    SenderId: src.SenderId ?? '',
    ApproximateFirstReceiveTimestamp: src.ApproximateFirstReceiveTimestamp ?? '',
  };
  for (const key of RECORD_ATTRIBUTE_KEYS) {
    const value = src[key];
    if (value !== undefined) attributes[key] = value;
  }
  const record: SQSRecord = {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes,
    messageAttributes: toLambdaMessageAttributes(m.MessageAttributes),
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN,
    awsRegion,
  };
  if (m.MD5OfMessageAttributes) record.md5OfMessageAttributes = m.MD5OfMessageAttributes;
  return record;
}

function toLambdaMessageAttributes(attrs: Record<string, MessageAttributeValue> | undefined): SQSMessageAttributes {
  const out: SQSMessageAttributes = {};
  for (const [name, v] of Object.entries(attrs ?? {})) {
    out[name] = {
      ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
      // Lambda delivers binary values base64-encoded, as in the SQS JSON API.
      ...(v.BinaryValue !== undefined ? { binaryValue: Buffer.from(v.BinaryValue).toString('base64') } : {}),
      stringListValues: v.StringListValues ?? [],
      binaryListValues: (v.BinaryListValues ?? []).map((b) => Buffer.from(b).toString('base64')),
      dataType: v.DataType ?? 'String',
    };
  }
  return out;
}

/** A Lambda invocation context for handlers run locally; its deadline drives getRemainingTimeInMillis. */
export function lambdaContext(functionName: string, timeoutMs: number, region = 'us-east-1'): Context {
  const deadline = Date.now() + timeoutMs;
  const unsupported = (name: string) => (): never => {
    throw new Error(`context.${name}() is not supported locally; return or throw instead`);
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/[$LATEST]${randomUUID().replaceAll('-', '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
  };
}

/** Rough JSON size of a record, to respect the 6 MB invocation payload limit. */
function approxRecordBytes(m: Message): number {
  let n = 600 + Buffer.byteLength(m.Body ?? '') + (m.ReceiptHandle?.length ?? 0);
  for (const [k, v] of Object.entries(m.MessageAttributes ?? {})) {
    n += k.length + 80 + (v.StringValue?.length ?? 0) + Math.ceil(((v.BinaryValue?.length ?? 0) * 4) / 3);
  }
  return n;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
