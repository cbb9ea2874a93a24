import middy from '@middy/core';
import type { Logger } from '@aws-lambda-powertools/logger';
import * as z from 'zod';
import { configReader, once, type Env } from '../lambda-kit/env.ts';
import { createLogger, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { redactError, rememberSecret } from '../lambda-kit/redact.ts';
import { lazyPool } from '../store/db.ts';
import { allow, authenticate, deny, requestAuthorizerEventSchema, sentKey, type AuthenticateDeps, type AuthorizerResult } from './authorizer.ts';

const configSchema = z
  .object({
    CANDLEKEEP_USAGE_KEY_ID: z
      .string()
      .regex(/^[A-Za-z0-9]{1,64}$/, 'CANDLEKEEP_USAGE_KEY_ID must be an API Gateway API key id')
      .optional()
      .meta({
        description:
          "Id of the stack's API Gateway API key: its value is the configured (admin) key, and every request the authorizer allows counts against it in the usage plan.",
      }),
  })
  .transform((e) => ({ usageKeyId: e.CANDLEKEEP_USAGE_KEY_ID }));
export const readAuthorizerConfig = configReader(configSchema, SERVICES.authorizer);

export interface AuthorizerConfig {
  /** Answer with the configured key as `usageIdentifierKey`, so the usage plan throttles and meters every caller (AWS). */
  meterWithConfiguredKey: boolean;
}

export interface AuthorizerDeps extends Partial<Pick<AuthenticateDeps, 'now'>>, Omit<AuthenticateDeps, 'now'> {
  logger?: Logger;
}

export type AuthorizerHandler = (event: unknown, context?: unknown) => Promise<AuthorizerResult>;

/**
 * The REQUEST authorizer: the key in x-api-key is looked up (or matched against the configured key)
 * and the caller's scope handed to the API function; an unknown, revoked or missing key gets a Deny
 * (a 401 from the gateway). The key itself is never logged.
 */
export function createAuthorizerHandler(config: AuthorizerConfig, deps: AuthorizerDeps): AuthorizerHandler {
  const logger = deps.logger ?? createLogger(SERVICES.authorizer);
  const auth: AuthenticateDeps = { db: deps.db, configuredKey: deps.configuredKey, now: deps.now ?? Date.now };
  const decide = async (event: unknown): Promise<AuthorizerResult> => {
    const parsed = requestAuthorizerEventSchema.safeParse(event);
    if (!parsed.success) throw new Error(`the authorizer received an event that is not a REQUEST authorizer event: ${parsed.error.issues[0]?.message}`);
    const outcome = await authenticate(sentKey(parsed.data.headers), auth);
    if ('refused' in outcome) {
      logger.info('API key refused', { reason: outcome.refused });
      return deny(outcome.refused, parsed.data.methodArn);
    }
    let usage: string | undefined;
    if (config.meterWithConfiguredKey) {
      usage = await auth.configuredKey();
      if (usage === undefined) throw new Error('the authorizer meters with the configured key, but none is configured');
    }
    return allow(outcome.caller, parsed.data.methodArn, usage);
  };
  // Logged here, redacted (a driver error can quote a connection string), rather than by the
  // runtime, which would print the raw error; API Gateway answers a 503 for it (AUTHORIZER_FAILURE).
  const handler = async (event: unknown): Promise<AuthorizerResult> => {
    try {
      return await decide(event);
    } catch (err) {
      logger.error('the API key could not be checked', { error: redactError(err) });
      throw new Error('the API key could not be checked; the authorizer log says why');
    }
  };
  return withPowertools(middy(handler), { logger }) as unknown as AuthorizerHandler;
}

/**
 * A Lambda container's: the pool on first use, and the configured key read once from API Gateway
 * (the value of the stack's API key, which cannot change: a new value is a new key).
 */
export function liveAuthorizerDeps(config: ReturnType<typeof readAuthorizerConfig>, env: Env): AuthorizerDeps {
  const db = lazyPool(env, { max: 1 });
  const id = config.usageKeyId;
  const configuredKey = once(async () => {
    if (id === undefined) return undefined;
    const { APIGatewayClient, GetApiKeyCommand } = await import('@aws-sdk/client-api-gateway');
    const out = await new APIGatewayClient({}).send(new GetApiKeyCommand({ apiKey: id, includeValue: true }));
    if (!out.value) throw new Error(`API Gateway returned no value for API key ${id}`);
    rememberSecret(out.value);
    return out.value;
  });
  return { db, configuredKey };
}
