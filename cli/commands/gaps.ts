import { backfillRequestsForGaps, findGaps, HOLE_FIX, UnknownSeriesError, type GapReport, type Hole } from '../../functions/ingest/gaps.ts';
import { iso } from '../../functions/ingest/ranges.ts';
import { defineCommand, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { awsTarget, AWS_OPTIONS, submitBackfills } from './backfill.ts';
import { parseSeries, parseTime, requireSchema, SERIES_RANGE_OPTIONS } from './pull.ts';

function kindText(h: Hole): string {
  if (h.kind === 'missing') return 'missing';
  if (h.kind === 'empty') return 'empty (exchange has none)';
  if (h.kind === 'expired') return 'expired by retention (deleted on purpose: not backfilled)';
  return `dead-lettered (${h.messages ?? 0} message(s) in the DLQ: run candlekeep redrive, not a backfill)`;
}

export function table(report: GapReport): string {
  const head = `${report.series.exchange} ${report.series.symbol} ${report.series.interval} ${iso(report.range.start)} .. ${iso(report.range.end)}: ` +
    `${report.stored} stored, ${report.missingCandles} missing, ${report.emptyCandles} confirmed empty by the exchange` +
    (report.deadLetteredCandles > 0 ? `, ${report.deadLetteredCandles} in ranges waiting in the dead-letter queue` : '') +
    (report.expiredBefore !== null ? `, ${report.expiredCandles} expired by retention (before ${iso(report.expiredBefore)}${report.retentionDays === null ? '' : `, ${report.retentionDays} days kept`})` : '');
  if (report.holes.length === 0) return `${head}\nno holes`;
  const rows = report.holes.map((h) => `  ${iso(h.start)}  ${iso(h.end)}  ${String(h.candles).padStart(9)}  ${kindText(h)}`);
  return [head, `  ${'from'.padEnd(24)}  ${'to (exclusive)'.padEnd(24)}  ${'candles'.padStart(9)}  kind`, ...rows].join('\n');
}

export const command = defineCommand({
  summary: 'list the holes of one series (missing, confirmed empty by the exchange, waiting in the dead-letter queue, or expired by retention); --backfill requests backfills for the missing ones',
  options: {
    ...SERIES_RANGE_OPTIONS,
    backfill: { type: 'boolean', default: false, description: 'request backfills for the missing holes (with the options below)' },
    ...AWS_OPTIONS,
  },
  notes: ['It reads DATABASE_URL, or the embedded PostgreSQL.'],
  async run({ values }) {
    const series = parseSeries(values);
    const from = parseTime(values.from, 'from');
    const to = parseTime(values.to, 'to');
    if (from !== undefined && to !== undefined && to <= from) throw new UsageError('--to must be after --from');
    const report = await withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      try {
        return await findGaps(pool, series, { from, to, now: Date.now() });
      } catch (err) {
        if (err instanceof UnknownSeriesError) throw new UsageError(err.message);
        throw err;
      }
    });
    const requests = backfillRequestsForGaps(report, { requestedBy: 'cli:gaps' });
    const serialisable = {
      ...report,
      range: { start: iso(report.range.start), end: iso(report.range.end) },
      expiredBefore: report.expiredBefore === null ? null : iso(report.expiredBefore),
      holes: report.holes.map((h) => ({ start: iso(h.start), end: iso(h.end), candles: h.candles, kind: h.kind, ...(h.messages !== undefined ? { messages: h.messages } : {}), fix: HOLE_FIX[h.kind] })),
      plan: requests.map((r) => ({ ...r, from: iso(r.from), to: iso(r.to) })),
    };
    if (!values.backfill) {
      console.log(values.json ? JSON.stringify(serialisable) : table(report));
      return 0;
    }
    if (requests.length === 0) {
      console.log(values.json ? JSON.stringify({ ...serialisable, submitted: null }) : `${table(report)}\nnothing to backfill`);
      return 0;
    }
    const workers = values.workers === undefined ? 2 : Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 32) throw new UsageError('--workers must be an integer from 1 to 32');
    const submitted = await submitBackfills(requests, {
      target: awsTarget(values),
      at: parseTime(values.at, 'at'),
      local: values.local,
      workers,
      baseUrl: values['base-url'],
    });
    if (values.json) console.log(JSON.stringify({ ...serialisable, submitted }));
    else console.log(`${table(report)}\n${requests.length} backfill(s) ${submitted.mode === 'local' ? 'run here' : 'requested through EventBridge'}`);
    return 0;
  },
});
