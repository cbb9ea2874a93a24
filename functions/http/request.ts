import * as z from 'zod';
import type { QueryValues } from './query.ts';

/**
 * The part of an API Gateway REST (v1) Lambda proxy event the API relies on, checked rather than
 * assumed. The local server (`candlekeep serve`) builds exactly these events.
 */
export const proxyEventSchema = z.object({
  resource: z.string(),
  path: z.string(),
  httpMethod: z.string(),
  headers: z.record(z.string(), z.string().nullable().optional()).nullish(),
  multiValueHeaders: z.record(z.string(), z.array(z.string()).nullable().optional()).nullish(),
  queryStringParameters: z.record(z.string(), z.string().nullable().optional()).nullish(),
  multiValueQueryStringParameters: z.record(z.string(), z.array(z.string()).nullable().optional()).nullish(),
  pathParameters: z.record(z.string(), z.string().nullable().optional()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().nullish(),
  requestContext: z
    .object({
      requestId: z.string().nullish(),
      stage: z.string().nullish(),
      identity: z.object({ apiKeyId: z.string().nullish(), sourceIp: z.string().nullish() }).partial().nullish(),
    })
    .partial()
    .nullish(),
});
export type ProxyEvent = z.infer<typeof proxyEventSchema>;

export interface ApiRequest {
  method: string;
  /** The route template API Gateway matched, e.g. `/v1/backtests/{id}`. */
  resource: string;
  path: string;
  query: QueryValues;
  /** Header names in lower case. */
  headers: Record<string, string>;
  pathParams: Record<string, string>;
  body: string | undefined;
  requestId: string | undefined;
  /** The API key's id behind API Gateway (not the key itself); scopes idempotency keys per caller. */
  apiKeyId: string | undefined;
}

export function toApiRequest(event: ProxyEvent): ApiRequest {
  const query: QueryValues = {};
  if (event.multiValueQueryStringParameters) {
    for (const [k, v] of Object.entries(event.multiValueQueryStringParameters)) if (v) query[k] = v;
  } else if (event.queryStringParameters) {
    for (const [k, v] of Object.entries(event.queryStringParameters)) if (v !== null && v !== undefined) query[k] = [v];
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
  const pathParams: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.pathParameters ?? {})) if (typeof v === 'string') pathParams[k] = v;
  let body = event.body ?? undefined;
  if (body !== undefined && event.isBase64Encoded) body = Buffer.from(body, 'base64').toString('utf8');
  return {
    method: event.httpMethod.toUpperCase(),
    resource: event.resource,
    path: event.path,
    query,
    headers,
    pathParams,
    body,
    requestId: event.requestContext?.requestId ?? undefined,
    apiKeyId: event.requestContext?.identity?.apiKeyId ?? undefined,
  };
}
