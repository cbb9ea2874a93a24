import { PutEventsCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { CreateScheduleCommand, type SchedulerClient } from '@aws-sdk/client-scheduler';
import { BACKFILL_DETAIL_TYPE, BACKFILL_EVENT_SOURCE, toEventDetail, type BackfillRequest } from './backfill-request.ts';

export class BackfillRequestError extends Error {
  override name = 'BackfillRequestError';
}

const PUT_EVENTS_MAX = 10;

/**
 * Asks for backfills now: one event per request on the backfill bus, which the planner's rule
 * matches. Entries EventBridge reports as failed are sent once more; still failing, it throws.
 */
export async function putBackfillRequests(events: EventBridgeClient, busName: string, requests: readonly BackfillRequest[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < requests.length; i += PUT_EVENTS_MAX) {
    let pending = requests.slice(i, i + PUT_EVENTS_MAX);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const out = await events.send(
        new PutEventsCommand({
          Entries: pending.map((r) => ({
            EventBusName: busName,
            Source: BACKFILL_EVENT_SOURCE,
            DetailType: BACKFILL_DETAIL_TYPE,
            Detail: JSON.stringify(toEventDetail(r)),
          })),
        }),
      );
      const entries = out.Entries ?? [];
      const failed = pending.filter((_, j) => entries[j]?.ErrorCode || !entries[j]?.EventId);
      ids.push(...entries.flatMap((e) => (e.EventId && !e.ErrorCode ? [e.EventId] : [])));
      if (failed.length > 0 && attempt >= 2) {
        const why = entries.find((e) => e.ErrorCode);
        throw new BackfillRequestError(`EventBridge refused ${failed.length} backfill request(s): ${why?.ErrorCode ?? ''} ${why?.ErrorMessage ?? ''}`.trim());
      }
      pending = failed;
    }
  }
  return ids;
}

export interface ScheduleTarget {
  /** The schedule group one-time backfill schedules live in. */
  groupName: string;
  /** ARN of the backfill event bus (the schedule puts the request event there). */
  busArn: string;
  /** Role EventBridge Scheduler assumes to put the event. */
  roleArn: string;
}

/** EventBridge Scheduler's `at()` takes a local time without zone; the zone is given separately (UTC). */
export function atExpression(at: Date): string {
  return `at(${at.toISOString().slice(0, 19)})`;
}

/** A schedule name is at most 64 characters of [0-9a-zA-Z-_.]. */
export function scheduleName(req: BackfillRequest, at: Date): string {
  const base = `backfill-${req.exchange}-${req.symbol.replace('/', '')}-${req.interval}-${at.toISOString().replace(/[-:]|\.\d+Z$/g, '')}`;
  const suffix = Math.random().toString(36).slice(2, 8);
  return `${base.slice(0, 64 - suffix.length - 1)}-${suffix}`;
}

/**
 * Asks for a backfill at a given time: a one-time EventBridge Scheduler schedule whose target puts
 * the same request event on the backfill bus, and which deletes itself after it ran.
 */
export async function scheduleBackfill(scheduler: SchedulerClient, target: ScheduleTarget, req: BackfillRequest, at: Date, name = scheduleName(req, at)): Promise<{ name: string; arn: string }> {
  const out = await scheduler.send(
    new CreateScheduleCommand({
      Name: name,
      GroupName: target.groupName,
      ScheduleExpression: atExpression(at),
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Description: `candlekeep backfill ${req.exchange} ${req.symbol} ${req.interval} ${new Date(req.from).toISOString()}..${new Date(req.to).toISOString()}`,
      Target: {
        Arn: target.busArn,
        RoleArn: target.roleArn,
        Input: JSON.stringify(toEventDetail(req)),
        EventBridgeParameters: { Source: BACKFILL_EVENT_SOURCE, DetailType: BACKFILL_DETAIL_TYPE },
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
      },
    }),
  );
  if (!out.ScheduleArn) throw new BackfillRequestError(`EventBridge Scheduler created no schedule ${name}`);
  return { name, arn: out.ScheduleArn };
}
