import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { parseBatchResponse, startEventSourceRunner, toRecord } from '../../dev/event-source-runner.ts';

const ids = new Set(['m1', 'm2']);

describe('parseBatchResponse (Lambda ReportBatchItemFailures rules)', () => {
  it.each([undefined, null, {}, { batchItemFailures: null }, { batchItemFailures: [] }])(
    'treats %j as full success',
    (response) => {
      expect(parseBatchResponse(response, ids)).toEqual(new Set());
    },
  );

  it('returns the reported message ids', () => {
    expect(parseBatchResponse({ batchItemFailures: [{ itemIdentifier: 'm2' }] }, ids)).toEqual(new Set(['m2']));
  });

  it.each([
    ['a string', 'oops'],
    ['a non-array batchItemFailures', { batchItemFailures: { itemIdentifier: 'm1' } }],
    ['an empty itemIdentifier', { batchItemFailures: [{ itemIdentifier: '' }] }],
    ['a null itemIdentifier', { batchItemFailures: [{ itemIdentifier: null }] }],
    ['a misspelt key', { batchItemFailures: [{ itemId: 'm1' }] }],
    ['an id outside the batch', { batchItemFailures: [{ itemIdentifier: 'other' }] }],
  ])('fails the whole batch on %s', (_, response) => {
    expect(() => parseBatchResponse(response, ids)).toThrow(/malformed batch response/);
  });
});

describe('toRecord', () => {
  it('maps an SDK message to the record Lambda delivers', () => {
    const message: Message = {
      MessageId: 'm1',
      ReceiptHandle: 'rh',
      Body: 'hello',
      MD5OfBody: '5d41402abc4b2a76b9719d911017c592',
      MD5OfMessageAttributes: 'abc',
      Attributes: {
        ApproximateReceiveCount: '3',
        SentTimestamp: '1700000000000',
        SenderId: '000000000000',
        ApproximateFirstReceiveTimestamp: '1700000000100',
        AWSTraceHeader: 'Root=1-abc',
      },
      MessageAttributes: {
        exchange: { DataType: 'String', StringValue: 'binance' },
        raw: { DataType: 'Binary', BinaryValue: new Uint8Array([255, 0]) },
      },
    };
    expect(toRecord(message, 'arn:aws:sqs:eu-west-1:000000000000:q', 'eu-west-1')).toEqual({
      messageId: 'm1',
      receiptHandle: 'rh',
      body: 'hello',
      attributes: {
        ApproximateReceiveCount: '3',
        SentTimestamp: '1700000000000',
        SenderId: '000000000000',
        ApproximateFirstReceiveTimestamp: '1700000000100',
        AWSTraceHeader: 'Root=1-abc',
      },
      messageAttributes: {
        exchange: { stringValue: 'binance', stringListValues: [], binaryListValues: [], dataType: 'String' },
        raw: { binaryValue: '/wA=', stringListValues: [], binaryListValues: [], dataType: 'Binary' },
      },
      md5OfBody: '5d41402abc4b2a76b9719d911017c592',
      md5OfMessageAttributes: 'abc',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:000000000000:q',
      awsRegion: 'eu-west-1',
    });
  });
});

describe('startEventSourceRunner option checks (as AWS validates a mapping)', () => {
  const sqs = {} as SQSClient; // never called: construction fails first
  const base = { sqs, queueUrl: 'http://x/q', handler: async () => {} };

  it('rejects batchSize above 10 without a batching window of at least 1 s', () => {
    expect(() => startEventSourceRunner({ ...base, batchSize: 11 })).toThrow(/maxBatchingWindowMs >= 1000/);
  });

  it.each([{ batchSize: 0 }, { batchSize: 10_001 }, { maxBatchingWindowMs: 300_001 }, { waitTimeSeconds: 21 }, { concurrency: 0 }])(
    'rejects %j',
    (bad) => {
      expect(() => startEventSourceRunner({ ...base, ...bad })).toThrow(RangeError);
    },
  );
});
