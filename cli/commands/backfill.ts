import { exchangeSchema, symbolSchema } from '../../functions/candles/candle.ts';
import { intervalSchema } from '../../functions/candles/intervals.ts';
import { planBackfill, type PlanResult } from '../../functions/ingest/backfill-planner.ts';
import { getBackfillProgress, listBackfills, type BackfillProgress } from '../../functions/ingest/backfill-progress.ts';
import { backfillRequestSchema, type BackfillRequest } from '../../functions/ingest/backfill-request.ts';
import { runBackfillLocally } from '../../functions/ingest/backfill-runner.ts';
import { DirectSink } from '../../functions/ingest/candle-sink.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db } from '../../functions/store/db.ts';
import { defineCommand, defineGroup, progress, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { JSON_OPTION, PAGE_OPTIONS, SERIES_OPTIONS, WORKERS_OPTION } from '../options.ts';
import { asUsageError, BASE_URL_OPTION, cliAccess, endProgress, parseSeries, parseTime, progressBar, requireSchema, SERIES_RANGE_OPTIONS } from './pull.ts';

export interface AwsTarget {
  /** Bus name or ARN for PutEvents. */
  bus: string | undefined;
  /** For --at: the one-time schedule's group, role and the bus ARN it targets. */
  scheduleGroup: string | undefined;
  schedulerRoleArn: string | undefined;
}

/** Where backfill requests go when not run locally: flags first, then the stack outputs in the environment. */
export function awsTarget(values: { bus?: string | undefined; 'schedule-group'?: string | undefined; 'scheduler-role-arn'?: string | undefined }): AwsTarget {
  return {
    bus: values.bus ?? process.env.CANDLEKEEP_BACKFILL_BUS,
    scheduleGroup: values['schedule-group'] ?? process.env.CANDLEKEEP_BACKFILL_SCHEDULE_GROUP,
    schedulerRoleArn: values['scheduler-role-arn'] ?? process.env.CANDLEKEEP_BACKFILL_SCHEDULER_ROLE_ARN,
  };
}

/** Where a backfill runs: EventBridge (now or --at) or --local in this process. */
export const AWS_OPTIONS = {
  bus: { type: 'string', value: '<name|arn>', description: 'backfill bus (default: CANDLEKEEP_BACKFILL_BUS, stack output BackfillBusName)' },
  'schedule-group': { type: 'string', value: '<name>', description: 'schedule group for --at (default: CANDLEKEEP_BACKFILL_SCHEDULE_GROUP)' },
  'scheduler-role-arn': { type: 'string', value: '<arn>', description: 'role the --at schedule assumes (default: CANDLEKEEP_BACKFILL_SCHEDULER_ROLE_ARN)' },
  at: { type: 'string', value: '<ISO>', description: 'run at this time (UTC) through a one-time EventBridge Scheduler schedule' },
  local: { type: 'boolean', default: false, description: 'run the planner and workers in this process, against the database, with a progress bar' },
  workers: WORKERS_OPTION,
  'base-url': BASE_URL_OPTION,
} as const;

export type Submitted =
  | { mode: 'event'; eventIds: string[] }
  | { mode: 'schedule'; schedule: string; arn: string; at: string }
  | { mode: 'local'; plans: PlanResult[]; backfills: BackfillProgress[] };

/**
 * Sends backfill requests the way the user's setup allows: a one-time EventBridge Scheduler
 * schedule for --at, PutEvents on the backfill bus for "now", or (--local) planner and workers in
 * this process against the database.
 */
export async function submitBackfills(
  requests: readonly BackfillRequest[],
  opts: { target: AwsTarget; at: number | undefined; local: boolean; workers: number; baseUrl: string | undefined; quiet?: boolean },
): Promise<Submitted> {
  if (opts.local) {
    if (opts.at !== undefined) throw new UsageError('--at schedules through EventBridge Scheduler; it cannot be combined with --local');
    return withLocalDatabase(async (pool: Db) => {
      await requireSchema(pool);
      const plans: PlanResult[] = [];
      const backfills: BackfillProgress[] = [];
      for (const req of requests) {
        const access = cliAccess(req, opts.baseUrl);
        let plan: PlanResult;
        try {
          plan = await planBackfill(req, { db: pool, access });
        } catch (err) {
          throw asUsageError(err);
        }
        if (plan.problem) throw new UsageError(plan.message ?? plan.problem);
        plans.push(plan);
        if (!opts.quiet) progress(`backfill ${plan.backfillId}: ${plan.chunks} chunk(s) planned${plan.message ? ` (${plan.message})` : ''}`);
        const label = `backfill ${plan.backfillId} ${req.exchange} ${req.symbol} ${req.interval}`;
        const final = await runBackfillLocally(
          plan.backfillId,
          { db: pool, access, sink: new DirectSink(pool, new CandleStore()) },
          {
            workers: opts.workers,
            onProgress: (p) => {
              if (opts.quiet) return;
              const eta = p.etaSeconds === null ? '' : `, ETA ${formatSeconds(p.etaSeconds)}`;
              progressBar(label, p.fraction, `${p.chunks.done}/${p.chunks.total} chunks, ${p.candlesWritten} candles${eta}`);
            },
          },
        );
        if (!opts.quiet) endProgress();
        backfills.push(final);
      }
      return { mode: 'local', plans, backfills };
    });
  }

  const bus = opts.target.bus;
  if (!bus) {
    throw new UsageError(
      'no backfill bus configured: set CANDLEKEEP_BACKFILL_BUS (stack output BackfillBusName) or --bus, or pass --local to run the backfill here',
    );
  }
  if (opts.at !== undefined) {
    if (requests.length !== 1) throw new UsageError('--at schedules one backfill at a time');
    const { scheduleGroup, schedulerRoleArn } = opts.target;
    if (!bus.startsWith('arn:')) throw new UsageError('--at needs the bus ARN (stack output BackfillBusArn) in --bus or CANDLEKEEP_BACKFILL_BUS');
    if (!scheduleGroup || !schedulerRoleArn) {
      throw new UsageError(
        '--at needs the schedule group and role: CANDLEKEEP_BACKFILL_SCHEDULE_GROUP and CANDLEKEEP_BACKFILL_SCHEDULER_ROLE_ARN ' +
          '(stack outputs BackfillScheduleGroup, BackfillSchedulerRoleArn) or --schedule-group / --scheduler-role-arn',
      );
    }
    if (opts.at <= Date.now()) throw new UsageError('--at must be in the future (omit it to start now)');
    const [{ SchedulerClient }, { scheduleBackfill }] = await Promise.all([
      import('@aws-sdk/client-scheduler'),
      import('../../functions/ingest/backfill-events.ts'),
    ]);
    const at = new Date(opts.at);
    const out = await scheduleBackfill(new SchedulerClient({}), { groupName: scheduleGroup, busArn: bus, roleArn: schedulerRoleArn }, requests[0]!, at);
    return { mode: 'schedule', schedule: out.name, arn: out.arn, at: at.toISOString() };
  }
  const [{ EventBridgeClient }, { putBackfillRequests }] = await Promise.all([
    import('@aws-sdk/client-eventbridge'),
    import('../../functions/ingest/backfill-events.ts'),
  ]);
  const eventIds = await putBackfillRequests(new EventBridgeClient({}), bus, requests);
  return { mode: 'event', eventIds };
}

export function formatSeconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function describeProgress(p: BackfillProgress): string {
  const eta = p.etaSeconds === null ? '' : `, ETA ${formatSeconds(p.etaSeconds)} (${p.eta})`;
  return (
    `backfill ${p.id} ${p.exchange} ${p.symbol} ${p.interval} ${p.from} .. ${p.to}: ${p.status}` +
    `${p.message ? ` — ${p.message}` : ''}\n` +
    `  chunks ${p.chunks.done}/${p.chunks.total} done (${p.chunks.inProgress} in progress, ${p.chunks.failed} failed), ` +
    `${p.candlesWritten} candles written${eta}` +
    `${p.listedAt ? `\n  the exchange has nothing before ${p.listedAt} (its history starts there or within a page after)` : ''}`
  );
}

const status = defineCommand({
  summary: 'progress of one backfill: chunks done/total, candles written, ETA',
  args: '<id>',
  options: { json: JSON_OPTION },
  async run({ values, positionals }) {
    if (positionals.length > 1) throw new UsageError('give one backfill id');
    const id = Number(positionals[0]);
    if (!Number.isSafeInteger(id) || id <= 0) throw new UsageError('backfill status needs a backfill id, e.g. `candlekeep backfill status 12`');
    return withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      const p = await getBackfillProgress(pool, id);
      if (!p) throw new UsageError(`no backfill ${id}; \`candlekeep backfill list\` shows the recent ones`);
      console.log(values.json ? JSON.stringify(p) : describeProgress(p));
      return 0;
    });
  },
});

const list = defineCommand({
  summary: 'the most recent backfills, optionally of one exchange, symbol or interval',
  options: { ...SERIES_OPTIONS, limit: { ...PAGE_OPTIONS.limit, description: 'how many (default 20)' }, json: JSON_OPTION },
  async run({ values }) {
    const exchange = values.exchange === undefined ? undefined : exchangeSchema.safeParse(values.exchange);
    if (exchange && !exchange.success) throw new UsageError(exchange.error.issues[0]?.message ?? 'bad --exchange');
    const symbol = values.symbol === undefined ? undefined : symbolSchema.safeParse(values.symbol.toUpperCase());
    if (symbol && !symbol.success) throw new UsageError(symbol.error.issues[0]?.message ?? 'bad --symbol');
    const interval = values.interval === undefined ? undefined : intervalSchema.safeParse(values.interval);
    if (interval && !interval.success) throw new UsageError(interval.error.issues[0]?.message ?? 'bad --interval');
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
    return withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      const rows = await listBackfills(pool, { exchange: exchange?.data, symbol: symbol?.data, interval: interval?.data, limit });
      if (values.json) console.log(JSON.stringify(rows));
      else console.log(rows.length ? rows.map(describeProgress).join('\n') : 'no backfills');
      return 0;
    });
  },
});

const request = defineCommand({
  summary: 'backfill a range of one series: through EventBridge (now or --at), or --local in this process',
  options: { ...SERIES_RANGE_OPTIONS, from: { ...SERIES_RANGE_OPTIONS.from, required: true }, to: { ...SERIES_RANGE_OPTIONS.to, required: true }, ...AWS_OPTIONS },
  notes: ['Local runs (--local, status, list) use DATABASE_URL, or the embedded PostgreSQL.'],
  async run({ values }) {
    const series = parseSeries(values);
    const from = parseTime(values.from, 'from');
    const to = parseTime(values.to, 'to');
    if (from === undefined || to === undefined) throw new UsageError('--from and --to are required');
    const parsed = backfillRequestSchema.safeParse({ ...series, from, to, requestedBy: `cli:${process.env.USER ?? 'unknown'}` });
    if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => i.message).join('; '));
    const workers = values.workers === undefined ? 2 : Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 32) throw new UsageError('--workers must be an integer from 1 to 32');
    const out = await submitBackfills([parsed.data], {
      target: awsTarget(values),
      at: parseTime(values.at, 'at'),
      local: values.local,
      workers,
      baseUrl: values['base-url'],
    });
    if (values.json) {
      console.log(JSON.stringify(out.mode === 'local' ? { mode: 'local', ...out.backfills[0] } : out));
    } else if (out.mode === 'event') {
      console.log(`backfill requested on the bus (event ${out.eventIds.join(', ')}); follow it with \`candlekeep backfill list\``);
    } else if (out.mode === 'schedule') {
      console.log(`backfill scheduled for ${out.at}: schedule ${out.schedule}`);
    } else {
      for (const b of out.backfills) console.log(describeProgress(b));
    }
    if (out.mode === 'local' && out.backfills.some((b) => b.status === 'failed')) return 1;
    return 0;
  },
});

export const command = defineGroup({
  summary: 'backfill a range of one series: through EventBridge (now or --at), or --local in this process; `status <id>`, `list`',
  subcommands: { status, list },
  default: request,
});
