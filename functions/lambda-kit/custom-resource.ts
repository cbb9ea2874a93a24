import * as z from 'zod';
import { redactSecrets } from './redact.ts';

/**
 * A CloudFormation custom resource request, as CloudFormation sends it to a function named as the
 * resource's ServiceToken. The function answers by PUTting to `ResponseURL`; until it does, the
 * deploy waits (up to an hour), so every path must answer, failures included.
 */
export const customResourceEventSchema = z.object({
  RequestType: z.enum(['Create', 'Update', 'Delete']),
  ResponseURL: z.url(),
  StackId: z.string().min(1),
  RequestId: z.string().min(1),
  LogicalResourceId: z.string().min(1),
  PhysicalResourceId: z.string().optional(),
  ResourceType: z.string().optional(),
  ResourceProperties: z.record(z.string(), z.unknown()).default({}),
  OldResourceProperties: z.record(z.string(), z.unknown()).optional(),
});
export type CustomResourceEvent = z.infer<typeof customResourceEventSchema>;

export interface CustomResourceOutcome {
  status: 'SUCCESS' | 'FAILED';
  /** Shown in the CloudFormation events: what was done, or why it failed. */
  reason: string;
  data?: Record<string, string | number> | undefined;
}

/** CloudFormation refuses responses over 4 KB; the reason is the part that can grow. */
const MAX_REASON = 2_000;

/** The response body CloudFormation expects; the reason is redacted and bounded. */
export function customResourceResponse(event: CustomResourceEvent, physicalResourceId: string, outcome: CustomResourceOutcome): string {
  const reason = redactSecrets(outcome.reason);
  return JSON.stringify({
    Status: outcome.status,
    Reason: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason,
    PhysicalResourceId: physicalResourceId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    Data: outcome.data ?? {},
  });
}

/**
 * PUTs the response to the presigned URL. The signature covers no content type, so none is sent
 * (fetch would otherwise add text/plain). Retried a few times: an answer that never arrives leaves
 * the deploy hanging for an hour.
 */
export async function sendCustomResourceResponse(url: string, body: string, attempts = 3): Promise<void> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await fetch(url, { method: 'PUT', body, headers: { 'content-type': '' }, signal: AbortSignal.timeout(10_000) });
      if (res.ok) return;
      last = new Error(`CloudFormation response URL answered HTTP ${res.status}`);
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}
