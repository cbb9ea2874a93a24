import { describe, expect, it } from 'vitest';
import { readApiConfig } from '../../functions/api/api-lambda.ts';
import { readWorkerConfig } from '../../functions/backfill/worker-lambda.ts';
import { ConfigError } from '../../functions/lambda-kit/env.ts';
import { parseSqsEvent } from '../../functions/lambda-kit/sqs-event.ts';
import { readPullConfig } from '../../functions/pull/pull-lambda.ts';
import { readPullWorkerConfig } from '../../functions/pull/worker-lambda.ts';
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
