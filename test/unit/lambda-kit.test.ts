import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { readApiConfig } from '../../functions/api/api-lambda.ts';
import { readWorkerConfig } from '../../functions/backfill/worker-lambda.ts';
import { createExportWorkerHandler } from '../../functions/exports/worker-lambda.ts';
import { ConfigError } from '../../functions/lambda-kit/env.ts';
import { batchResponse, parseSqsEvent, readRecordBody } from '../../functions/lambda-kit/sqs-event.ts';
import { readPullConfig } from '../../functions/pull/pull-lambda.ts';
import { createPullWorkerHandler, readPullWorkerConfig } from '../../functions/pull/worker-lambda.ts';
import { readWriterConfig } from '../../functions/writer/writer-lambda.ts';

describe('reading a function configuration from its environment', () => {
  it('fails with a ConfigError naming the function and each missing variable', () => {
    expect(() => readWriterConfig({})).toThrow(ConfigError);
    expect(() => readWriterConfig({})).toThrow(/^candlekeep-writer configuration: DEAD_LETTER_QUEUE_URL must be the URL/);
    expect(() => readWorkerConfig({ CANDLES_QUEUE_URL: 'https://sqs.example/q' })).toThrow(/BACKFILL_WORK_QUEUE_URL/);
  });

  it('names a malformed variable whose message does not', () => {
    expect(() => readWorkerConfig({ CANDLES_QUEUE_URL: 'https://q', BACKFILL_WORK_QUEUE_URL: 'https://w', LEASE_MS: '-5' })).toThrow(/LEASE_MS: /);
  });

  it('applies the defaults and hands back named settings', () => {
    expect(readApiConfig({})).toEqual({ poolMax: 2, corsOrigins: [], statementTimeoutMs: 20_000, dbSessions: undefined, cursorKey: undefined, exportUrlSeconds: 900 });
    expect(
      readApiConfig({
        CANDLEKEEP_DB_POOL_MAX: '8',
        CANDLEKEEP_CORS_ORIGINS: 'https://a.example, https://b.example',
        CANDLEKEEP_API_STATEMENT_TIMEOUT_MS: '5000',
        CANDLEKEEP_API_DB_SESSIONS: '12',
      }),
    ).toMatchObject({ poolMax: 8, corsOrigins: ['https://a.example', 'https://b.example'], statementTimeoutMs: 5000, dbSessions: 12 });
    expect(() => readApiConfig({ CANDLEKEEP_API_STATEMENT_TIMEOUT_MS: '30000' })).toThrow(/below the gateway limit/);
    expect(readPullConfig({ PULL_WORK_QUEUE_URL: 'https://sqs.example/pull-work' })).toEqual({ workQueueUrl: 'https://sqs.example/pull-work', workers: 10, delayMs: 2000 });
    expect(() => readPullConfig({ PULL_WORK_QUEUE_URL: 'https://sqs.example/pull-work', PULL_WORKERS: '0' })).toThrow(/candlekeep-pull configuration: PULL_WORKERS/);
    const worker = readPullWorkerConfig({ CANDLES_QUEUE_URL: 'https://sqs.example/candles', BACKFILL_BUS_NAME: 'bus' });
    expect(worker).toEqual({ candlesQueueUrl: 'https://sqs.example/candles', backfillBusName: 'bus', maxPages: 5, stopMarginMs: 10_000 });
    expect(() => readPullWorkerConfig({ BACKFILL_BUS_NAME: 'bus' })).toThrow(/CANDLES_QUEUE_URL/);
    expect(() => readApiConfig({ CANDLEKEEP_EXPORT_URL_SECONDS: '86400' })).toThrow(/CANDLEKEEP_EXPORT_URL_SECONDS must be at most 3600/);
    expect(() => readApiConfig({ CANDLEKEEP_EXPORTS_QUEUE_URL: 'queue' })).toThrow(/CANDLEKEEP_EXPORTS_QUEUE_URL must be the URL of the exports queue/);
  });
});

describe('parsing an SQS event', () => {
  it('hands back the records and refuses anything else, naming the consumer', () => {
    const event = { Records: [{ messageId: 'm1', body: '{}', attributes: { ApproximateReceiveCount: '2' } }] };
    expect(parseSqsEvent(event, 'writer').Records).toEqual(event.Records);
    expect(() => parseSqsEvent({ hello: 'world' }, 'writer')).toThrow(/^writer received an event that is not an SQS batch/);
    expect(() => parseSqsEvent({ Records: [] }, 'backfill worker', { nonEmpty: true })).toThrow(/^backfill worker received/);
  });
});

describe('reading a record body as a consumer message', () => {
  const schema = z.object({ id: z.number().int(), name: z.string() }).strict();

  it('hands back the parsed message with its record id', () => {
    expect(readRecordBody({ messageId: 'm1', body: '{"id":7,"name":"a"}' }, schema, 'a thing')).toEqual({ ok: true, messageId: 'm1', message: { id: 7, name: 'a' } });
  });

  it('says a body is not JSON, naming what was expected, instead of throwing', () => {
    const read = readRecordBody({ messageId: 'm2', body: 'hello {' }, schema, 'a thing');
    expect(read).toMatchObject({ ok: false, messageId: 'm2' });
    expect(!read.ok && read.reason).toMatch(/^body is not JSON \(.+\); expected a thing$/);
  });

  it('names the field of a JSON body of the wrong shape', () => {
    const read = readRecordBody({ messageId: 'm3', body: '{"id":"7","name":"a"}' }, schema, 'a thing');
    expect(!read.ok && read.reason).toMatch(/^body is not a thing: id: .*expected number/i);
    const empty = readRecordBody({ messageId: 'm4', body: 'null' }, schema, 'a thing');
    expect(!empty.ok && empty.reason).toMatch(/^body is not a thing: /);
  });

  it('reads each record on its own: one bad body leaves the others readable', () => {
    const reads = ['{"id":1,"name":"a"}', '{', '{"id":3,"name":"c"}'].map((body, i) => readRecordBody({ messageId: `m${i}`, body }, schema, 'a thing'));
    expect(reads.map((r) => r.ok)).toEqual([true, false, true]);
  });

  it('reports exactly the failed records in a partial batch response', () => {
    expect(batchResponse(['m2', 'm5'])).toEqual({ batchItemFailures: [{ itemIdentifier: 'm2' }, { itemIdentifier: 'm5' }] });
    expect(batchResponse([])).toEqual({ batchItemFailures: [] });
  });
});

describe('SQS consumers keep their partial batch failure semantics', () => {
  const context = { awsRequestId: 'r1', functionName: 'f', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
  const logger = new Logger({ serviceName: 'candlekeep-export-worker', logLevel: 'SILENT' });

  it('export worker: drops a message naming no export, retries only the export that met a passing failure', async () => {
    const unreachable = () => Promise.reject(new Error('database unreachable'));
    const handler = createExportWorkerHandler({ bucket: 'b', retentionDays: 7, stopMarginMs: 1_000 }, { db: unreachable, s3: unreachable, logger });
    const event = {
      Records: [
        { messageId: 'bad-json', body: 'not json' },
        { messageId: 'no-export', body: '{"exportId":"nope"}' },
        { messageId: 'passing', body: JSON.stringify({ exportId: '0b6f7a8e-2a4c-4c55-9a0e-3f1f4bb2a001' }) },
      ],
    };
    expect(await handler(event, context)).toEqual({ batchItemFailures: [{ itemIdentifier: 'passing' }] });
  });

  it('pull worker: leaves a record that is not a shard for the dead-letter queue', async () => {
    const fail = () => Promise.reject(new Error('not reached for an unreadable shard'));
    const handler = createPullWorkerHandler(
      { candlesQueueUrl: 'https://sqs.example/candles', backfillBusName: 'bus', maxPages: 1, stopMarginMs: 0 },
      { db: fail, events: fail, sqs: {} as never, access: () => ({}) as never, logger: new Logger({ serviceName: 'candlekeep-pull-worker', logLevel: 'SILENT' }) },
    );
    const event = { Records: [{ messageId: 'm1', body: '{"v":2}' }, { messageId: 'm2', body: '[' }] };
    expect(await handler(event, context)).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] });
  });
});
