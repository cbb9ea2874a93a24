import type { Construct } from 'constructs';
import * as z from 'zod';
import { MARKETS_CONTEXT_KEY, parseMarkets, type Market } from '../functions/config/markets.ts';

export const STAGE_CONTEXT_KEY = 'candlekeep:stage';
export const ALARM_EMAIL_CONTEXT_KEY = 'candlekeep:alarmEmail';

export const stageSchema = z.enum(['dev', 'prod'], {
  error: (issue) => `${STAGE_CONTEXT_KEY}: unknown stage ${JSON.stringify(issue.input)}; expected dev or prod`,
});
export type Stage = z.infer<typeof stageSchema>;

const alarmEmailSchema = z.email({
  error: (issue) => `${ALARM_EMAIL_CONTEXT_KEY}: ${JSON.stringify(issue.input)} is not an email address`,
});

export interface CandlekeepConfig {
  stage: Stage;
  markets: Market[];
  /** Where alarm notifications are mailed; unset means subscribe to the topic some other way. */
  alarmEmail: string | undefined;
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
  return {
    stage: parseOrThrow(stageSchema, node.tryGetContext(STAGE_CONTEXT_KEY) ?? 'dev'),
    markets: parseMarkets(node.tryGetContext(MARKETS_CONTEXT_KEY)),
    alarmEmail: email === undefined || email === '' ? undefined : parseOrThrow(alarmEmailSchema, email),
  };
}
