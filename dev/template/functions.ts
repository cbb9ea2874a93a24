/**
 * What the functions taken out of the local template need to run in a local process: their entry,
 * environment and limits, their SQS event source mappings, and their schedules.
 */
import { nextCronFire } from '../../functions/ingest/pull-schedule.ts';
import { getAttTarget } from './references.ts';
import type { Json } from './shapes.ts';
import { FUNCTION_ENTRIES, type FunctionRole, type SynthesizedCandlekeep } from './synthesize.ts';

export interface LocalFunction {
  role: FunctionRole;
  logicalId: string;
  /** Source file, relative to the repository root. */
  entry: string;
  timeoutSeconds: number;
  reservedConcurrency: number | undefined;
  /** The function's environment as the template has it (intrinsics unresolved). */
  environment: Record<string, Json>;
}

export interface LocalEventSource {
  functionId: string;
  queueId: string;
  batchSize: number;
  maxBatchingWindowMs: number;
  maxConcurrency: number;
  reportBatchItemFailures: boolean;
}

export interface LocalSchedule {
  logicalId: string;
  functionId: string;
  expression: string;
  /** The first firing strictly after `after` (ms): a rate's period later, or a cron's next minute. */
  next(after: number): number;
  input: Json;
}

export interface LocalFunctions {
  functions: LocalFunction[];
  eventSources: LocalEventSource[];
  schedules: LocalSchedule[];
}

/** Reads the functions, their SQS event source mappings and their schedules out of the full template. */
export function localFunctions(synth: SynthesizedCandlekeep): LocalFunctions {
  const resources = synth.template.Resources;
  const functions = (Object.entries(synth.ids.functions) as [FunctionRole, string][]).map(([role, logicalId]): LocalFunction => {
    const p = resources[logicalId]?.Properties ?? {};
    const env = ((p.Environment as { Variables?: Record<string, Json> } | undefined)?.Variables ?? {}) as Record<string, Json>;
    return {
      role,
      logicalId,
      entry: FUNCTION_ENTRIES[role],
      timeoutSeconds: Number(p.Timeout ?? 3),
      reservedConcurrency: p.ReservedConcurrentExecutions === undefined ? undefined : Number(p.ReservedConcurrentExecutions),
      environment: env,
    };
  });
  const eventSources: LocalEventSource[] = [];
  const schedules: LocalSchedule[] = [];
  for (const [logicalId, r] of Object.entries(resources)) {
    const p = r.Properties ?? {};
    if (r.Type === 'AWS::Lambda::EventSourceMapping') {
      const functionId = (p.FunctionName as { Ref?: string } | undefined)?.Ref;
      const queueId = getAttTarget(p.EventSourceArn);
      if (!functionId || !queueId) continue;
      eventSources.push({
        functionId,
        queueId,
        batchSize: Number(p.BatchSize ?? 10),
        maxBatchingWindowMs: Number(p.MaximumBatchingWindowInSeconds ?? 0) * 1000,
        maxConcurrency: Number((p.ScalingConfig as { MaximumConcurrency?: number } | undefined)?.MaximumConcurrency ?? 1),
        reportBatchItemFailures: ((p.FunctionResponseTypes ?? []) as Json[]).includes('ReportBatchItemFailures'),
      });
    } else if (r.Type === 'AWS::Scheduler::Schedule') {
      const target = (p.Target ?? {}) as Record<string, Json>;
      const functionId = getAttTarget(target.Arn);
      const expression = String(p.ScheduleExpression ?? '');
      if (!functionId) continue;
      schedules.push({
        logicalId,
        functionId,
        expression,
        next: nextFiring(expression),
        input: typeof target.Input === 'string' ? (JSON.parse(target.Input) as Json) : {},
      });
    }
  }
  return { functions, eventSources, schedules };
}

/** How a schedule's expression fires: `rate(...)` every period, `cron(...)` at its UTC minutes as the pull's crons do. */
export function nextFiring(expression: string): (after: number) => number {
  if (expression.trim().startsWith('cron(')) {
    nextCronFire(expression, 0); // refuses an expression the local scheduler cannot run, at start-up
    return (after) => nextCronFire(expression, after);
  }
  const period = rateMs(expression);
  return (after) => after + period;
}

/** `rate(5 minutes)` → 300000. */
export function rateMs(expression: string): number {
  const m = /^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$/.exec(expression.trim());
  if (!m) throw new Error(`schedule expression ${expression} is neither a rate() nor a cron() the local scheduler runs`);
  const unit = m[2]!.startsWith('minute') ? 60_000 : m[2]!.startsWith('hour') ? 3_600_000 : 86_400_000;
  return Number(m[1]) * unit;
}
