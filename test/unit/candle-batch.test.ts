import { describe, expect, it } from 'vitest';
import {
  candleRowSchema,
  encodeCandleBatches,
  fromRow,
  parseCandleBatch,
  rowProblem,
  SQS_MAX_BYTES,
} from '../../functions/candles/candle-batch.ts';
import { compareDecimals } from '../../functions/candles/candle.ts';
import { bucketStart, isAligned } from '../../functions/candles/intervals.ts';
import { row, T0 } from '../support/candles.ts';

const message = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ v: 1, exchange: 'binance', symbol: 'BTC/USDT', interval: '1m', fetchedAt: T0, rows: [row(0), row(1)], ...over });

const reasonOf = (body: string) => {
  const r = parseCandleBatch(body);
  if (r.ok) throw new Error('expected a rejection');
  return r.reason;
};

describe('CandleBatch v1 parsing', () => {
  it('accepts a valid message and keeps every field', () => {
    const r = parseCandleBatch(message());
    expect(r.ok && r.batch.rows).toEqual([row(0), row(1)]);
  });

  it.each([
    ['bad JSON', '{"v":1,', /body is not JSON/],
    ['an unknown version', message({ v: 2 }), /unsupported CandleBatch version 2/],
    ['a missing version', JSON.stringify({ exchange: 'binance' }), /^invalid CandleBatch: v:/],
    ['high below low', message({ rows: [row(0, { high: '99', low: '99.5', open: '99', close: '99' })] }), /rows\[0\]: high 99 is below low 99\.5/],
    ['open above high', message({ rows: [row(0, { open: '102' })] }), /rows\[0\]: open 102 is above high 101\.25/],
    ['a time not aligned to the interval', message({ rows: [[T0 + 30_000, ...row(0).slice(1)]] }), /not aligned to 1m/],
    ['a time in seconds', message({ rows: [[T0 / 1000, ...row(0).slice(1)]] }), /not a millisecond UTC time .*seconds or microseconds/],
    ['a time in microseconds', message({ rows: [[T0 * 1000, ...row(0).slice(1)]] }), /not a millisecond UTC time/],
    ['a price as a JSON number', message({ rows: [[T0, 100.5, '101', '99', '100', '1', null, null, 1]] }), /rows\[0\]: open must be a non-negative decimal string/],
    ['exponent notation', message({ rows: [row(0, { volume: '1e-8' })] }), /volume must be a non-negative decimal string/],
    ['a negative volume', message({ rows: [row(0, { volume: '-1' })] }), /volume must be/],
    ['a short row', message({ rows: [[T0, '1', '1', '1', '1']] }), /expected 9 fields per row \(or 12 with takerBuyVolume, takerBuyQuoteVolume, vwap\), got 5/],
    ['a row of 10 fields', message({ rows: [[...row(0), '1']] }), /expected 9 fields per row .*got 10/],
    ['an optional field as a number', message({ rows: [[...row(0), 1.5, null, null]] }), /rows\[0\]: takerBuyVolume must be a decimal string or null/],
    ['a VWAP in exponent notation', message({ rows: [[...row(0), null, null, '1e5']] }), /rows\[0\]: vwap must be a decimal string or null/],
    ['closed as a boolean', message({ rows: [[...row(0).slice(0, 8), true]] }), /closed must be 0 or 1/],
    ['a duplicate open time', message({ rows: [row(0), row(0)] }), /rows\[1\]\[0\]: duplicate openTime/],
    ['an unknown interval', message({ interval: '2m' }), /interval: unknown interval "2m"/],
    ['an unknown exchange', message({ exchange: 'mtgox' }), /exchange: unknown exchange "mtgox"/],
    ['a native symbol', message({ symbol: 'BTCUSDT' }), /symbol: expected a unified symbol/],
    ['an unexpected field', message({ extra: 1 }), /Unrecognized key/i],
    ['no rows and no range', message({ rows: [] }), /rows must hold at least one candle/],
    ['a row before its range', message({ range: [T0 + 60_000, T0 + 600_000] }), /rows\[0\]\[0\]: openTime \d+ is outside the message's range/],
    ['a row at its range\'s end', message({ range: [T0, T0 + 60_000] }), /rows\[1\]\[0\]: openTime \d+ is outside the message's range/],
    ['an inverted range', message({ range: [T0 + 600_000, T0] }), /range: range must be \[startMs, endMs\] with endMs after startMs/],
    ['a range in seconds', message({ range: [T0 / 1000, T0 / 1000 + 600] }), /^invalid CandleBatch: range/],
    ['a range of three numbers', message({ range: [T0, T0 + 60_000, T0 + 120_000] }), /^invalid CandleBatch: range/],
  ])('rejects %s with a reason', (_, body, reason) => {
    expect(reasonOf(body)).toMatch(reason);
  });

  it('accepts a range whose candles lie inside it, and a range with no rows (confirmed empty)', () => {
    const ranged = parseCandleBatch(message({ range: [T0, T0 + 120_000] }));
    expect(ranged.ok && ranged.batch.range).toEqual([T0, T0 + 120_000]);
    const empty = parseCandleBatch(message({ range: [T0, T0 + 600_000], rows: [] }));
    expect(empty.ok && empty.batch.rows).toEqual([]);
  });

  it('keeps 9-field rows valid (every older message) beside rows with the optional fields', () => {
    const r = parseCandleBatch(message({ rows: [row(0), [...row(1), '5.5', '552.75', null]] }));
    expect(r.ok && r.batch.rows).toEqual([row(0), [...row(1), '5.5', '552.75', null]]);
    expect(r.ok && r.batch.rows.map(fromRow)).toEqual([
      expect.not.objectContaining({ takerBuyVolume: expect.anything() }),
      expect.objectContaining({ takerBuyVolume: '5.5', takerBuyQuoteVolume: '552.75' }),
    ]);
    expect(r.ok && 'vwap' in fromRow(r.batch.rows[1]!)).toBe(false);
  });

  it('encodes candles without the optional fields as 9-field rows, and with any of them as 12', () => {
    const [plain, extended] = encodeCandleBatches({ exchange: 'kraken', symbol: 'BTC/USD', interval: '1m' }, [fromRow(row(0))], T0).concat(
      encodeCandleBatches({ exchange: 'kraken', symbol: 'BTC/USD', interval: '1m' }, [{ ...fromRow(row(0)), vwap: '100.9' }], T0),
    );
    expect(JSON.parse(plain!).rows).toEqual([row(0)]);
    expect(JSON.parse(extended!).rows).toEqual([[...row(0), null, null, '100.9']]);
  });

  it('keeps messages without a range valid (older senders)', () => {
    const r = parseCandleBatch(message());
    expect(r.ok && r.batch.range).toBeUndefined();
  });

  it('reports at most five problems of a bad message', () => {
    const rows = Array.from({ length: 50 }, (_, i) => row(i, { high: '1', low: '2' }));
    expect(reasonOf(message({ rows })).split('; ')).toHaveLength(5);
  });
});

describe('the fast row checker agrees with the zod row schema', () => {
  const samples: unknown[] = [
    row(0),
    row(1, { quoteVolume: null, trades: null, closed: false }),
    [T0, '1', '1', '1', '1', '0', null, null, 1],
    [T0, '01', '1', '1', '1', '0', null, null, 1],
    [T0, '1.', '1', '1', '1', '0', null, null, 1],
    [T0, '.5', '1', '1', '1', '0', null, null, 1],
    [T0, '1', '1', '1', '1', '0', null, -1, 1],
    [T0, '1', '1', '1', '1', '0', null, 1.5, 1],
    [T0, '1', '1', '1', '1', '0', 5, null, 1],
    [T0, '1', '1', '1', '1', '0', null, null, 2],
    [T0 + 0.5, '1', '1', '1', '1', '0', null, null, 1],
    [Date.UTC(1999, 11, 31, 23, 59), '1', '1', '1', '1', '0', null, null, 1],
    [Date.UTC(2100, 0, 1), '1', '1', '1', '1', '0', null, null, 1],
    ['1709251200000', '1', '1', '1', '1', '0', null, null, 1],
    [T0, '1'.repeat(81), '1', '1', '1', '0', null, null, 1],
    [T0, '1'.repeat(80), '1'.repeat(80), '1', '1', '0', null, null, 1],
    [...row(0), '1.5', '2.5', '100.5'],
    [...row(0), null, null, null],
    [...row(0), '1.5', null],
    [...row(0), 1.5, null, null],
    [...row(0), null, null, '-1'],
    [...row(0), null, null, null, null],
    {},
    null,
  ];
  it.each(samples.map((s, i) => [i, s]))('sample %i', (_, sample) => {
    // OHLC relations are checked by the row checker only; compare the field-level verdicts.
    const zodOk = candleRowSchema.safeParse(sample).success;
    const problem = rowProblem(sample, '1m');
    const fieldProblem = problem !== undefined && !/ is (above|below) /.test(problem);
    expect(fieldProblem).toBe(!zodOk);
  });
});

describe('encoding', () => {
  it('splits a long series into bodies under the size limit that parse back to the same candles', () => {
    const candles = Array.from({ length: 20_000 }, (_, i) => fromRow(row(i, { volume: `${i}.123456789` })));
    const bodies = encodeCandleBatches({ exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' }, candles, T0);

    expect(bodies.length).toBeGreaterThan(1);
    for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(SQS_MAX_BYTES - 6 * 1024);
    const back = bodies.flatMap((b) => {
      const r = parseCandleBatch(b);
      if (!r.ok) throw new Error(r.reason);
      return r.batch.rows.map(fromRow);
    });
    expect(back).toEqual(candles);
  });

  it('sorts and de-duplicates candles, the later duplicate winning', () => {
    const [b] = encodeCandleBatches({ exchange: 'okx', symbol: 'ETH/USDT', interval: '1m' }, [
      fromRow(row(2)),
      fromRow(row(0, { closed: false })),
      fromRow(row(0, { closed: true })),
    ], T0);
    const r = parseCandleBatch(b!);
    expect(r.ok && r.batch.rows.map((x) => [x[0], x[8]])).toEqual([[T0, 1], [T0 + 120_000, 1]]);
  });
});

describe('encoding a fetched range', () => {
  const series = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' } as const;
  const parsed = (bodies: string[]) =>
    bodies.map((b) => {
      const r = parseCandleBatch(b);
      if (!r.ok) throw new Error(r.reason);
      return r.batch;
    });

  it('splits the range across the messages: contiguous, disjoint, from its start to its end', () => {
    // Candles start 5 buckets into the range and stop 7 before its end, with holes in between.
    const times = Array.from({ length: 6_000 }, (_, i) => 5 + i + Math.floor(i / 1000));
    const candles = times.map((i) => fromRow(row(i, { volume: `${i}.123456789` })));
    const range = { start: T0, end: T0 + (times.at(-1)! + 8) * 60_000 };
    const batches = parsed(encodeCandleBatches(series, candles, T0, range, 64 * 1024));

    expect(batches.length).toBeGreaterThan(2);
    expect(batches[0]!.range![0]).toBe(range.start);
    expect(batches.at(-1)!.range![1]).toBe(range.end);
    for (let i = 1; i < batches.length; i++) expect(batches[i]!.range![0]).toBe(batches[i - 1]!.range![1]);
    for (const b of batches) {
      expect(b.rows.length).toBeGreaterThan(0);
      for (const r of b.rows) expect(r[0] >= b.range![0] && r[0] < b.range![1]).toBe(true);
    }
    expect(batches.flatMap((b) => b.rows.map(fromRow))).toEqual(candles);
  });

  it('stays under the size limit with the range in every body', () => {
    const candles = Array.from({ length: 20_000 }, (_, i) => fromRow(row(i, { volume: `${i}.123456789` })));
    const bodies = encodeCandleBatches(series, candles, T0, { start: T0, end: T0 + 20_000 * 60_000 });
    for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(SQS_MAX_BYTES - 6 * 1024);
  });

  it('sends a range without candles as one message with no rows', () => {
    const batches = parsed(encodeCandleBatches(series, [], T0, { start: T0, end: T0 + 3_600_000 }));
    expect(batches.map((b) => [b.range, b.rows])).toEqual([[[T0, T0 + 3_600_000], []]]);
  });

  it('puts candles outside the range (the forming one) in a message without a range', () => {
    const candles = [fromRow(row(0)), fromRow(row(1)), fromRow(row(2, { closed: false }))];
    const batches = parsed(encodeCandleBatches(series, candles, T0, { start: T0, end: T0 + 120_000 }));
    expect(batches.map((b) => [b.range, b.rows.map((r) => r[0])])).toEqual([
      [[T0, T0 + 120_000], [T0, T0 + 60_000]],
      [undefined, [T0 + 120_000]],
    ]);
  });

  it('writes the same bodies as before when no range is given', () => {
    const [body] = encodeCandleBatches(series, [fromRow(row(0))], T0);
    expect(body).toBe(`{"v":1,"exchange":"binance","symbol":"BTC/USDT","interval":"1m","fetchedAt":${T0},"rows":[${JSON.stringify(row(0))}]}`);
  });
});

describe('decimal comparison without floats', () => {
  const big = (s: string, scale = 40) => {
    const [i = '0', f = ''] = s.split('.');
    return BigInt(i + f.padEnd(scale, '0'));
  };
  const cases = ['0', '0.0', '0.00000001234', '1', '1.0', '1.5', '10', '9.99999999', '68123.45000000', '68123.45', '123456789012345678901234567890', '100.000000000000000000000001'];
  it('orders by value, ignoring trailing zeros', () => {
    for (const a of cases) {
      for (const b of cases) {
        const expected = big(a) === big(b) ? 0 : big(a) < big(b) ? -1 : 1;
        expect([a, b, compareDecimals(a, b)]).toEqual([a, b, expected]);
      }
    }
  });
});

describe('interval alignment', () => {
  it('aligns weekly candles to Monday 00:00 UTC', () => {
    const monday = Date.UTC(2024, 2, 4);
    expect(isAligned(monday, '1w')).toBe(true);
    expect(isAligned(Date.UTC(2024, 2, 7), '1w')).toBe(false);
    expect(bucketStart(Date.UTC(2024, 2, 10, 23), '1w')).toBe(monday);
  });
  it('finds the bucket containing a time', () => {
    expect(bucketStart(T0 + 3_599_999, '1h')).toBe(T0);
    expect(isAligned(T0 + 60_000, '1h')).toBe(false);
  });
});
