import { iso } from '../../functions/ingest/ranges.ts';
import { applyRetention, DEFAULT_RETENTION_BATCH, DEFAULT_RETENTION_BUDGET_MS, type RetentionReport } from '../../functions/store/retention.ts';
import { toCsv } from '../../functions/http/csv.ts';
import { defineCommand, defineGroup, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { outputMode, positiveInt, table } from '../api/output.ts';
import { DRY_RUN_OPTION, OUTPUT_OPTIONS } from '../options.ts';

export function reportTable(report: RetentionReport): string {
  const what = report.dryRun ? 'due' : 'deleted';
  if (report.series.length === 0) return 'nothing to expire: no followed series holds candles older than its retention';
  const rows = report.series.map((s) => [s.exchange, s.symbol, s.interval, `${s.retentionDays} d`, iso(s.horizon), s.deleted, s.pending ? 'yes' : 'no']);
  const lines = [table(['exchange', 'symbol', 'interval', 'retention', 'expired before', report.dryRun ? 'due (counted)' : 'deleted', 'more left'], rows)];
  lines.push(
    report.dryRun
      ? `dry run: nothing deleted; ${report.deleted} candle(s) due${report.complete ? '' : ' at least (counted up to one batch per series)'}`
      : `${report.deleted} candle(s) ${what} in ${report.batches} batch(es)` +
          (report.complete ? '' : '; the budget ran out: run it again (or wait for the daily run) to delete the rest'),
  );
  return lines.join('\n');
}

const apply = defineCommand({
  summary: 'delete the candles older than each followed series keeps (markets add/set --retention), in bounded batches',
  options: {
    'dry-run': DRY_RUN_OPTION,
    'batch-size': { type: 'string', value: '<n>', description: `candles one batch (one short transaction) deletes at most (default ${DEFAULT_RETENTION_BATCH})` },
    budget: { type: 'string', value: '<seconds>', description: `start no batch after this many seconds (default ${DEFAULT_RETENTION_BUDGET_MS / 1000}); the rest waits for the next run` },
    ...OUTPUT_OPTIONS,
  },
  notes: [
    'The same job runs daily in the cloud (and on its schedule under npm run dev); this runs it now.',
    'It reads DATABASE_URL, or the embedded PostgreSQL.',
  ],
  async run({ values }) {
    const mode = outputMode(values);
    const batchSize = positiveInt('batch-size', values['batch-size']);
    const budget = positiveInt('budget', values.budget);
    const report = await withLocalDatabase(async (pool) => {
      const { rows } = await pool.query<{ ok: boolean }>(`SELECT to_regclass('series_expiry') IS NOT NULL AS ok`);
      if (!rows[0]?.ok) throw new UsageError('the database has no (or an older) candlekeep schema: run `npx candlekeep migrate` first');
      return applyRetention(pool, {
        now: Date.now(),
        dryRun: values['dry-run'],
        ...(batchSize !== undefined ? { batchSize } : {}),
        ...(budget !== undefined ? { budgetMs: budget * 1000 } : {}),
      });
    });
    if (mode === 'json') {
      console.log(JSON.stringify({ ...report, now: iso(report.now), series: report.series.map((s) => ({ ...s, horizon: iso(s.horizon) })) }));
    } else if (mode === 'csv') {
      process.stdout.write(
        toCsv(
          ['exchange', 'symbol', 'interval', 'retention_days', 'expired_before', report.dryRun ? 'due' : 'deleted', 'pending'],
          report.series.map((s) => [s.exchange, s.symbol, s.interval, s.retentionDays, iso(s.horizon), s.deleted, s.pending]),
        ),
      );
    } else console.log(reportTable(report));
    return 0;
  },
});

export const command = defineGroup({
  summary: 'retention: apply deletes what each followed series keeps no longer (--dry-run shows what is due)',
  subcommands: { apply },
});
