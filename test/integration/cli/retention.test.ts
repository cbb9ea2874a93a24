import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import { CandleStore } from '../../../functions/store/candles.ts';
import type { Db } from '../../../functions/store/db.ts';
import { followMarkets } from '../../../functions/store/markets.ts';
import { findSeriesId } from '../../../functions/store/series.ts';
import { runCli } from '../../support/cli.ts';
import { testPool, uniqueSymbol } from '../../support/db.ts';

let db: Db;
beforeAll(() => {
  db = testPool(2);
});
afterAll(async () => {
  await db?.end();
});

const MIN = 60_000;
const DAY = 86_400_000;

describe('candlekeep retention apply', () => {
  it('shows what is due with --dry-run, then deletes it and prints what went per series', async () => {
    const symbol = uniqueSymbol();
    await followMarkets(db, [{ exchange: 'okx', symbol, intervals: ['1m'], retention: { '1m': 2 } }]);
    const now = Math.floor(Date.now() / MIN) * MIN;
    // 300 candles five days ago (expired), 20 from the last hour (kept).
    const times = [...Array.from({ length: 300 }, (_, i) => now - 5 * DAY + i * MIN), ...Array.from({ length: 20 }, (_, i) => now - 60 * MIN + i * MIN)];
    const rows = times.map((t) => [t, '2.5', '2.75', '2.25', '2.5', '1', null, null, 1] as CandleRow);
    await new CandleStore().upsert(db, [{ v: 1, exchange: 'okx', symbol, interval: '1m', fetchedAt: now, rows }]);
    const id = (await findSeriesId(db, { exchange: 'okx', symbol, interval: '1m' }))!;
    const stored = async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM candles WHERE series_id = $1', [id])).rows[0]!.n);
    const mine = (out: string) => (JSON.parse(out) as { series: { symbol: string }[] }).series.find((s) => s.symbol === symbol);

    const dry = await runCli(['retention', 'apply', '--dry-run', '--batch-size', '100', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, batches: 0 });
    expect(mine(dry.stdout)).toMatchObject({ exchange: 'okx', interval: '1m', retentionDays: 2, deleted: 100, pending: true });
    expect(await stored()).toBe(320);

    const applied = await runCli(['retention', 'apply', '--batch-size', '100']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(new RegExp(`okx\\s+${symbol.replace('/', '\\/')}\\s+1m\\s+2 d\\s+\\S+Z\\s+300\\s+no`));
    expect(applied.stdout).toMatch(/\d+ candle\(s\) deleted in \d+ batch\(es\)/);
    expect(await stored()).toBe(20);

    const gaps = await runCli(['gaps', '--exchange', 'okx', '--symbol', symbol, '--interval', '1m', '--json']);
    expect(gaps.code, gaps.stderr).toBe(0);
    const report = JSON.parse(gaps.stdout) as { holes: { kind: string; fix: string; start: string; end: string }[]; plan: { from: string }[] };
    expect(report.holes[0]).toMatchObject({ kind: 'expired', start: new Date(now - 5 * DAY).toISOString(), fix: expect.stringContaining('expired by retention') });
    // What was expired is never planned for a backfill; only the missing stretch after the horizon is.
    expect(report.plan.length).toBeGreaterThan(0);
    for (const p of report.plan) expect(Date.parse(p.from)).toBeGreaterThanOrEqual(Date.parse(report.holes[0]!.end));
  });

  it('refuses bad bounds with a usage error', async () => {
    for (const [args, message] of [
      [['--batch-size', '0'], '--batch-size must be a positive whole number'],
      [['--budget', 'soon'], '--budget must be a positive whole number'],
      [['--json', '--csv'], 'choose one of --json and --csv'],
    ] as const) {
      const out = await runCli(['retention', 'apply', ...args]);
      expect(out.code, args.join(' ')).toBe(2);
      expect(out.stderr).toContain(message);
    }
  });
});
