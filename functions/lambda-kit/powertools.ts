import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { MiddyfiedHandler } from '@middy/core';
import { redactingReplacer } from './redact.ts';

/** CloudWatch namespace of every candlekeep metric; the stack's alarms and dashboards read it. */
export const METRICS_NAMESPACE = 'candlekeep';

/** Service names: the `service` key of every log line and the metrics' service dimension. */
export const SERVICES = {
  writer: 'candlekeep-writer',
  pull: 'candlekeep-pull',
  pullWorker: 'candlekeep-pull-worker',
  planner: 'candlekeep-backfill-planner',
  worker: 'candlekeep-backfill-worker',
  api: 'candlekeep-api',
  authorizer: 'candlekeep-authorizer',
  deadLetterScan: 'candlekeep-dead-letter-scan',
  retention: 'candlekeep-retention',
  migrate: 'candlekeep-migrate',
  exportWorker: 'candlekeep-export-worker',
} as const;
export type Service = (typeof SERVICES)[keyof typeof SERVICES];

/**
 * Every line goes through the redacting replacer: Powertools serialises each own property of a
 * logged error, so an error that quotes a connection string (a URL parser's `input`) would
 * otherwise print the password.
 */
export function createLogger(serviceName: Service, options: { logLevel?: LogLevel } = {}): Logger {
  return new Logger({ serviceName, jsonReplacerFn: redactingReplacer, ...(options.logLevel ? { logLevel: options.logLevel } : {}) });
}

export function createMetrics(serviceName: Service): Metrics {
  return new Metrics({ namespace: METRICS_NAMESPACE, serviceName });
}

/** A handler's logger and metrics; tests and local runs may pass their own. */
export interface Observability {
  logger?: Logger | undefined;
  metrics?: Metrics | undefined;
}

/** Every invocation's log lines carry the Lambda context; its metrics are flushed when it ends. */
export function withPowertools<H extends MiddyfiedHandler<any, any, any, any>>(chain: H, tools: { logger: Logger; metrics?: Metrics }): H {
  chain.use(injectLambdaContext(tools.logger));
  if (tools.metrics) chain.use(logMetrics(tools.metrics));
  return chain;
}

/** The service's logger and metrics, unless the caller passed its own. */
export function powertoolsFor(service: Service, given: Observability): { logger: Logger; metrics: Metrics } {
  return { logger: given.logger ?? createLogger(service), metrics: given.metrics ?? createMetrics(service) };
}
