import { describe, expect, it } from 'vitest';
import { atExpression, scheduleName } from '../../../functions/ingest/backfill-events.ts';
import { backfillEventSchema, backfillRequestSchema, toEventDetail } from '../../../functions/ingest/backfill-request.ts';
import { nextCronFire, pullGroups } from '../../../functions/ingest/pull-schedule.ts';

describe('backfill request', () => {
  it('accepts ISO dates, ISO times and epoch milliseconds', () => {
    const req = backfillRequestSchema.parse({ exchange: 'okx', symbol: 'ETH/USDT', interval: '1h', from: '2024-01-01', to: 1706745600000 });
    expect(req).toMatchObject({ from: Date.UTC(2024, 0, 1), to: Date.UTC(2024, 1, 1) });
    expect(toEventDetail(req)).toEqual({ exchange: 'okx', symbol: 'ETH/USDT', interval: '1h', from: '2024-01-01T00:00:00.000Z', to: '2024-02-01T00:00:00.000Z' });
  });

  it('rejects what a person must fix, saying what', () => {
    const bad = (over: object) => backfillRequestSchema.safeParse({ exchange: 'binance', symbol: 'BTC/USDT', interval: '1m', from: '2024-01-01', to: '2024-01-02', ...over });
    expect(bad({ exchange: 'ftx' }).error?.issues[0]?.message).toMatch(/unknown exchange "ftx"/);
    expect(bad({ interval: '2m' }).error?.issues[0]?.message).toMatch(/unknown interval "2m"/);
    expect(bad({ symbol: 'btcusdt' }).error?.issues[0]?.message).toMatch(/BASE\/QUOTE/);
    expect(bad({ from: 1704067200 }).error?.issues[0]?.message).toMatch(/not seconds/);
    expect(bad({ to: '2023-12-31' }).error?.issues[0]?.message).toMatch(/"to" must be after "from"/);
    expect(bad({ extra: 1 }).success).toBe(false);
  });

  it('reads the EventBridge event the bus rule delivers', () => {
    const event = {
      version: '0', id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718', 'detail-type': 'Backfill Requested', source: 'candlekeep',
      account: '111122223333', time: '2024-06-01T00:00:00Z', region: 'eu-west-1', resources: [],
      detail: { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m', from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' },
    };
    expect(backfillEventSchema.parse(event)).toMatchObject({ id: event.id, detail: { from: Date.UTC(2024, 0, 1) } });
    expect(backfillEventSchema.safeParse({ ...event, source: 'aws.events' }).success).toBe(false);
  });
});

describe('one-time schedules', () => {
  it('writes at() in UTC without a zone (the zone is a separate field)', () => {
    expect(atExpression(new Date('2025-03-04T05:06:07.890Z'))).toBe('at(2025-03-04T05:06:07)');
  });

  it('names schedules within Scheduler limits', () => {
    const name = scheduleName({ exchange: 'coinbase', symbol: 'BTC/USD', interval: '1h', from: 0, to: 1 }, new Date('2025-03-04T05:06:07Z'));
    expect(name).toMatch(/^[0-9a-zA-Z\-_.]{1,64}$/);
    expect(name).toMatch(/^backfill-coinbase-BTCUSD-1h-20250304T050607-/);
  });
});

describe('pull schedules', () => {
  it('has one cron per group of intervals, whatever is followed today, each interval in exactly one', () => {
    expect(pullGroups().map((g) => [g.cron, g.intervals])).toEqual([
      ['cron(* * * * ? *)', ['1m', '3m', '5m']],
      ['cron(0/15 * * * ? *)', ['15m', '30m']],
      ['cron(0 * * * ? *)', ['1h', '2h', '4h', '6h', '12h']],
      ['cron(0 0 * * ? *)', ['1d', '1w']],
    ]);
  });

  it('fires each cron at the next boundary of its group, in UTC', () => {
    const at = (iso: string) => Date.parse(iso);
    const next = (cron: string, iso: string) => new Date(nextCronFire(cron, at(iso))).toISOString();
    expect(next('cron(* * * * ? *)', '2025-03-04T05:06:07.500Z')).toBe('2025-03-04T05:07:00.000Z');
    expect(next('cron(* * * * ? *)', '2025-03-04T05:07:00.000Z')).toBe('2025-03-04T05:08:00.000Z');
    expect(next('cron(0/15 * * * ? *)', '2025-03-04T05:06:07Z')).toBe('2025-03-04T05:15:00.000Z');
    expect(next('cron(0/15 * * * ? *)', '2025-03-04T05:45:00Z')).toBe('2025-03-04T06:00:00.000Z');
    expect(next('cron(0 * * * ? *)', '2025-03-04T23:06:07Z')).toBe('2025-03-05T00:00:00.000Z');
    expect(next('cron(0 0 * * ? *)', '2025-12-31T00:00:00Z')).toBe('2026-01-01T00:00:00.000Z');
    expect(() => nextCronFire('cron(0 12 ? * MON *)', 0)).toThrow(/not a cron\(M H \* \* \? \*\)/);
  });
});
