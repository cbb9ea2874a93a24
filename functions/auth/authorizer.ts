import * as z from 'zod';
import { lookupApiKey } from '../store/api-keys.ts';
import type { Queryable } from '../store/db.ts';
import { sameKey, type KeyScope } from './keys.ts';

/**
 * Who is calling: the one check both the deployed API (an API Gateway REQUEST authorizer in front of
 * the API function) and `candlekeep serve` (which calls the same handler in-process before each
 * request) make. It only authenticates: a key from the api_keys table, or the configured key
 * (CANDLEKEEP_API_KEY locally, the stack's API Gateway key in AWS), which is an admin key. Whether
 * the key's scope allows the route is decided by the API function (functions/api/app.ts), which knows
 * the route; the authorizer's answer therefore allows the whole stage and can be cached per key.
 */

/** Who a request's key belongs to, as the API function receives it in `requestContext.authorizer`. */
export interface Caller {
  /** `key-<id>` for a stored key; `configured` for the configured key. */
  principalId: string;
  scope: KeyScope;
  keyName: string;
}

/** The 401 detail, word for word in the deployed gateway's answers (lib/constructs/http-api.ts), the local server's and the API function's. */
export const UNAUTHORIZED_DETAIL = 'missing, unknown or revoked API key: send a key in the x-api-key header';

export const CONFIGURED_PRINCIPAL = 'configured';
export const CONFIGURED_KEY_NAME = 'configured key';

export type Refusal = 'missing' | 'unknown' | 'revoked';

export interface AuthenticateDeps {
  db: () => Promise<Queryable>;
  /** The key configured outside the table; undefined: none (only stored keys work). */
  configuredKey: () => Promise<string | undefined>;
  now: () => number;
}

/** The caller behind `sent`, or why it is refused. */
export async function authenticate(sent: string | undefined, deps: AuthenticateDeps): Promise<{ caller: Caller } | { refused: Refusal }> {
  if (sent === undefined || sent === '') return { refused: 'missing' };
  const configured = await deps.configuredKey();
  if (configured !== undefined && sameKey(sent, configured)) {
    return { caller: { principalId: CONFIGURED_PRINCIPAL, scope: 'admin', keyName: CONFIGURED_KEY_NAME } };
  }
  const found = await lookupApiKey(await deps.db(), sent, deps.now());
  if (found.status !== 'live') return { refused: found.status };
  return { caller: { principalId: `key-${found.principal.id}`, scope: found.principal.scope, keyName: found.principal.name } };
}

// ---- the API Gateway REQUEST authorizer's event and answer ----

/** The part of a REST API REQUEST authorizer event the authorizer reads. */
export const requestAuthorizerEventSchema = z.object({
  type: z.literal('REQUEST'),
  methodArn: z.string().regex(/^arn:[^:]+:execute-api:[^:]*:[^:]*:[^/]+\/[^/]+\//, 'methodArn must be an execute-api method ARN'),
  headers: z
    .custom<Record<string, string | null | undefined>>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), { error: 'headers must be an object' })
    .nullish(),
});
export type RequestAuthorizerEvent = z.infer<typeof requestAuthorizerEventSchema>;

export interface AuthorizerResult {
  principalId: string;
  policyDocument: { Version: '2012-10-17'; Statement: { Action: 'execute-api:Invoke'; Effect: 'Allow' | 'Deny'; Resource: string }[] };
  /** Reaches the API function as `requestContext.authorizer.<name>` (strings only, as API Gateway allows). */
  context: { scope: KeyScope; keyName: string } | { refused: Refusal };
  /** With the API's key source set to AUTHORIZER: the usage-plan key this request counts against. */
  usageIdentifierKey?: string;
}

/** The x-api-key header, whatever the case of its name (API Gateway passes names as the client sent them). */
export function sentKey(headers: Record<string, string | null | undefined> | null | undefined): string | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) if (name.toLowerCase() === 'x-api-key' && typeof value === 'string') return value;
  return undefined;
}

/** Every method of the stage: the answer is cached per key and reused for other routes, so it must cover them. */
export function stageArn(methodArn: string): string {
  const [base, stage] = methodArn.split('/');
  return `${base}/${stage}/*`;
}

const policy = (effect: 'Allow' | 'Deny', methodArn: string): AuthorizerResult['policyDocument'] => ({
  Version: '2012-10-17',
  Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: stageArn(methodArn) }],
});

export function allow(caller: Caller, methodArn: string, usageIdentifierKey: string | undefined): AuthorizerResult {
  return {
    principalId: caller.principalId,
    policyDocument: policy('Allow', methodArn),
    context: { scope: caller.scope, keyName: caller.keyName },
    ...(usageIdentifierKey !== undefined ? { usageIdentifierKey } : {}),
  };
}

/**
 * A refusal as a Deny policy, which API Gateway answers with its ACCESS_DENIED response (a 401 in
 * this stack). Not a thrown `Unauthorized`: that would count as a failed invocation, and a revoked
 * key still polling would set off the function's Errors alarm.
 */
export function deny(refused: Refusal, methodArn: string): AuthorizerResult {
  return { principalId: 'refused', policyDocument: policy('Deny', methodArn), context: { refused } };
}

/** Whether the answer lets the request through. */
export const allowed = (result: AuthorizerResult): result is AuthorizerResult & { context: { scope: KeyScope; keyName: string } } =>
  result.policyDocument.Statement.every((s) => s.Effect === 'Allow') && 'scope' in result.context;
