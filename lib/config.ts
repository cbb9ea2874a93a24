import type { Construct } from 'constructs';
import * as z from 'zod';
import { MARKETS_CONTEXT_KEY, parseMarkets, type Market } from '../functions/config/markets.ts';

export const STAGE_CONTEXT_KEY = 'candlekeep:stage';
export const ALARM_EMAIL_CONTEXT_KEY = 'candlekeep:alarmEmail';
export const API_GATEWAY_LOGS_CONTEXT_KEY = 'candlekeep:apiGatewayLogs';
export const DATABASE_URL_SECRET_CONTEXT_KEY = 'candlekeep:databaseUrlSecret';

export const stageSchema = z.enum(['dev', 'prod'], {
  error: (issue) => `${STAGE_CONTEXT_KEY}: unknown stage ${JSON.stringify(issue.input)}; expected dev or prod`,
});
export type Stage = z.infer<typeof stageSchema>;

const alarmEmailSchema = z.email({
  error: (issue) => `${ALARM_EMAIL_CONTEXT_KEY}: ${JSON.stringify(issue.input)} is not an email address`,
});

/**
 * API Gateway logs need the account-wide API Gateway CloudWatch role (`AWS::ApiGateway::Account`),
 * one per account and region, which a stack must not take over behind another's back:
 * - `off`: no API Gateway logs, nothing account-wide touched (the function still logs each request);
 * - `existing-role`: access and error logs, the account's role already being set (by another stack, or by hand);
 * - `create-role`: this stack creates the role and sets it for the whole account and region.
 */
export const apiGatewayLogsSchema = z.enum(['off', 'existing-role', 'create-role'], {
  error: (issue) => `${API_GATEWAY_LOGS_CONTEXT_KEY}: ${JSON.stringify(issue.input)} is not one of off, existing-role, create-role`,
});
export type ApiGatewayLogs = z.infer<typeof apiGatewayLogsSchema>;

/** An existing Secrets Manager secret, by ARN or by name. */
const databaseUrlSecretSchema = z
  .string({ error: `${DATABASE_URL_SECRET_CONTEXT_KEY}: expected the ARN or name of a Secrets Manager secret` })
  .regex(/^(arn:[\w-]+:secretsmanager:[\w-]+:\d{12}:secret:[\w/+=.@-]+|[\w/+=.@-]{1,512})$/, {
    error: (issue) => `${DATABASE_URL_SECRET_CONTEXT_KEY}: ${JSON.stringify(issue.input)} is neither a secret ARN nor a secret name`,
  });

export interface CandlekeepConfig {
  stage: Stage;
  markets: Market[];
  /** Where alarm notifications are mailed; unset means subscribe to the topic some other way. */
  alarmEmail: string | undefined;
  apiGatewayLogs: ApiGatewayLogs;
  /** An existing secret holding the database URL, used instead of the one the stack creates. */
  databaseUrlSecret: string | undefined;
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new Error(result.error.issues.map((i) => i.message).join('\n'));
  return result.data;
}

/** Reads and validates the candlekeep context once; a bad value fails synth with a message naming the key. */
export function readConfig(scope: Construct): CandlekeepConfig {
  const node = scope.node;
  const email: unknown = node.tryGetContext(ALARM_EMAIL_CONTEXT_KEY);
  const secret: unknown = node.tryGetContext(DATABASE_URL_SECRET_CONTEXT_KEY);
  return {
    stage: parseOrThrow(stageSchema, node.tryGetContext(STAGE_CONTEXT_KEY) ?? 'dev'),
    markets: parseMarkets(node.tryGetContext(MARKETS_CONTEXT_KEY)),
    alarmEmail: email === undefined || email === '' ? undefined : parseOrThrow(alarmEmailSchema, email),
    apiGatewayLogs: parseOrThrow(apiGatewayLogsSchema, node.tryGetContext(API_GATEWAY_LOGS_CONTEXT_KEY) ?? 'off'),
    databaseUrlSecret: secret === undefined || secret === '' ? undefined : parseOrThrow(databaseUrlSecretSchema, secret),
  };
}
