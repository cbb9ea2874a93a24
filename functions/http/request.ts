import * as z from 'zod';
import type { QueryValues } from './query.ts';

/**
 * The part of an API Gateway REST (v1) Lambda proxy event the API relies on, checked rather than
 * assumed. The local server (`candlekeep serve`) builds exactly these events.
 */
/**
 * A map from names to values, checked without being rebuilt: zod's records copy into a plain object
 * and drop a `__proto__` name, and names here come from the client, so they must survive as data.
 */
const nameMap = <T extends z.ZodType>(value: T) =>
  z.custom<Record<string, z.output<T> | null | undefined>>(
    (v) =>
      v !== null &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      Object.values(v).every((x) => x === null || x === undefined || value.safeParse(x).success),
    { error: 'must be an object of names to values' },
  );

export const proxyEventSchema = z.object({
  resource: z.string(),
  path: z.string(),
  httpMethod: z.string(),
  headers: nameMap(z.string()).nullish(),
  multiValueHeaders: nameMap(z.array(z.string())).nullish(),
  queryStringParameters: nameMap(z.string()).nullish(),
  multiValueQueryStringParameters: nameMap(z.array(z.string())).nullish(),
  pathParameters: nameMap(z.string()).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().nullish(),
  requestContext: z
    .object({
      requestId: z.string().nullish(),
      stage: z.string().nullish(),
      identity: z.object({ apiKeyId: z.string().nullish(), sourceIp: z.string().nullish() }).partial().nullish(),
      // What the REQUEST authorizer (functions/auth/authorizer.ts) answered for the request's key.
      authorizer: z.object({ principalId: z.string().nullish(), scope: z.string().nullish(), keyName: z.string().nullish() }).partial().nullish(),
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
  /** Client-chosen names, so a Map: `constructor` or `__proto__` are names like any other. */
  query: QueryValues;
  /** Header names in lower case (no prototype: a header name is never an inherited property). */
  headers: Readonly<Record<string, string>>;
  pathParams: Readonly<Record<string, string>>;
  body: string | undefined;
  requestId: string | undefined;
  /** Who the caller is (not the key itself): the stored key's `key-<id>`, else API Gateway's API key id; scopes idempotency keys per caller. */
  apiKeyId: string | undefined;
  /** The authorizer's answer for the request's key; undefined when no authorizer ran (a route without a key). */
  caller: { principalId: string; scope: string; keyName: string } | undefined;
}

const table = (): Record<string, string> => Object.create(null) as Record<string, string>;

function callerOf(event: ProxyEvent): ApiRequest['caller'] {
  const a = event.requestContext?.authorizer;
  if (!a?.scope) return undefined;
  return { principalId: a.principalId ?? '', scope: a.scope, keyName: a.keyName ?? '' };
}

/**
 * A stored key is its own caller; the configured key keeps API Gateway's API key id (its usage-plan
 * key), as before keys had scopes, so idempotency keys recorded then still match.
 */
function callerId(event: ProxyEvent): string | undefined {
  const principal = event.requestContext?.authorizer?.principalId;
  if (principal?.startsWith('key-')) return principal;
  return event.requestContext?.identity?.apiKeyId ?? undefined;
}

export function toApiRequest(event: ProxyEvent): ApiRequest {
  const query = new Map<string, string[]>();
  if (event.multiValueQueryStringParameters) {
    for (const [k, v] of Object.entries(event.multiValueQueryStringParameters)) if (v) query.set(k, v);
  } else if (event.queryStringParameters) {
    for (const [k, v] of Object.entries(event.queryStringParameters)) if (v !== null && v !== undefined) query.set(k, [v]);
  }
  const headers = table();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (typeof v === 'string') headers[k.toLowerCase()] = v;
  const pathParams = table();
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
    apiKeyId: callerId(event),
    caller: callerOf(event),
  };
}
