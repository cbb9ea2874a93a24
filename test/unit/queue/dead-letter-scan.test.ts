import { describe, expect, it } from 'vitest';
import { encodeCandleBatches } from '../../../functions/candles/candle-batch.ts';
import type { Candle, SeriesKey } from '../../../functions/candles/candle.ts';
import { classifyHoles } from '../../../functions/ingest/gaps.ts';
import { describeDeadLetter, RECEIVE_COUNT_EXCEEDED } from '../../../functions/queue/dead-letter-scan.ts';

const MIN = 60_000;
const T0 = Date.UTC(2024, 5, 1);
const series: SeriesKey = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1m' };
const candle = (openTime: number): Candle => ({ openTime, open: '1', high: '2', low: '0.5', close: '1.5', volume: '10', closed: true });

describe('describeDeadLetter', () => {
  it('spans a message from its first row to one interval past its last when it declares no range', () => {
    const [body] = encodeCandleBatches(series, [candle(T0 + 3 * MIN), candle(T0), candle(T0 + 7 * MIN)], T0 + 60 * MIN);
    expect(describeDeadLetter('m1', body!, undefined)).toEqual({
      messageId: 'm1',
      series,
      range: { start: T0, end: T0 + 8 * MIN },
      candles: 3,
      reason: RECEIVE_COUNT_EXCEEDED,
    });
  });

  it('takes the declared range, which may reach past its rows or hold none', () => {
    const body = JSON.stringify({ v: 1, ...series, fetchedAt: T0, range: [T0, T0 + 60 * MIN], rows: [[T0 + 5 * MIN, '1', '2', '0.5', '1.5', '10', null, null, 1]] });
    expect(describeDeadLetter('m2', body, 'writer said no')).toMatchObject({ range: { start: T0, end: T0 + 60 * MIN }, candles: 1, reason: 'writer said no' });
    const empty = JSON.stringify({ v: 1, ...series, fetchedAt: T0, range: [T0, T0 + 10 * MIN], rows: [] });
    expect(describeDeadLetter('m3', empty, undefined)).toMatchObject({ series, range: { start: T0, end: T0 + 10 * MIN }, candles: 0 });
  });

  it('still places a message whose rows the writer refused, by the open times it can read', () => {
    const body = JSON.stringify({ v: 1, ...series, fetchedAt: T0, rows: [[T0, 'NaN'], 'junk', [T0 + 2 * MIN, '1']] });
    expect(describeDeadLetter('m4', body, 'invalid CandleBatch')).toMatchObject({ series, range: { start: T0, end: T0 + 3 * MIN }, candles: 3 });
  });

  it('counts a body that names no series without placing it', () => {
    for (const body of ['not json', '{"v":2}', JSON.stringify({ v: 1, exchange: 'nasdaq', symbol: 'ETH/USDT', interval: '1m', rows: [] })]) {
      expect(describeDeadLetter('m5', body, 'bad')).toEqual({ messageId: 'm5', series: undefined, range: undefined, candles: 0, reason: 'bad' });
    }
  });
});

describe('classifyHoles', () => {
  it('labels the part of a hole a dead-lettered message spans, ahead of the coverage ledger, and the rest missing or empty', () => {
    const hole = { start: T0, end: T0 + 100 * MIN };
    const coverage = [{ start: T0, end: T0 + 60 * MIN }];
    const dead = [
      { start: T0 + 20 * MIN, end: T0 + 40 * MIN },
      { start: T0 + 30 * MIN, end: T0 + 50 * MIN },
      { start: T0 + 90 * MIN, end: T0 + 120 * MIN },
    ];
    expect(classifyHoles([hole], coverage, dead, '1m')).toEqual([
      { start: T0, end: T0 + 20 * MIN, kind: 'empty', candles: 20 },
      { start: T0 + 20 * MIN, end: T0 + 50 * MIN, kind: 'dead-lettered', candles: 30, messages: 2 },
      { start: T0 + 50 * MIN, end: T0 + 60 * MIN, kind: 'empty', candles: 10 },
      { start: T0 + 60 * MIN, end: T0 + 90 * MIN, kind: 'missing', candles: 30 },
      { start: T0 + 90 * MIN, end: T0 + 100 * MIN, kind: 'dead-lettered', candles: 10, messages: 1 },
    ]);
  });
});

