import middy from '@middy/core';
import * as z from 'zod';
import { configReader, type Env } from '../lambda-kit/env.ts';
import { createLogger, SERVICES, withPowertools, type Observability } from '../lambda-kit/powertools.ts';
import { cors, httpProblems } from '../http/middleware.ts';
import { HttpProblem } from '../http/problem.ts';
import { problem } from '../http/response.ts';
import { lazyPool } from '../store/db.ts';
import { createApi, type ApiDeps } from './app.ts';

const configSchema = z
  .object({
    CANDLEKEEP_DB_POOL_MAX: z.coerce
      .number()
      .int()
      .min(1)
      .max(50, 'CANDLEKEEP_DB_POOL_MAX must be at most 50')
      .default(2)
      .meta({ description: 'Connections per container: a Lambda serves one request at a time; the local server more.' }),
    CANDLEKEEP_CORS_ORIGINS: z
      .string()
      .optional()
      .transform((s) => (s ? s.split(',').map((o) => o.trim()).filter(Boolean) : []))
      .meta({ description: 'Comma-separated origins allowed to read responses in a browser; empty: none.' }),
  })
  .transform((e) => ({ poolMax: e.CANDLEKEEP_DB_POOL_MAX, corsOrigins: e.CANDLEKEEP_CORS_ORIGINS }));
export const readApiConfig = configReader(configSchema, SERVICES.api);
export type ApiConfig = ReturnType<typeof readApiConfig>;

export interface ApiHandlerDeps extends ApiDeps, Pick<Observability, 'logger'> {}

/** A Lambda container's: the pool, sized by the config, on first use. */
export function liveApiDeps(config: ApiConfig, env: Env): ApiHandlerDeps {
  return { db: lazyPool(env, { max: config.poolMax }) };
}

/**
 * The API Lambda: a middy chain (logger context, problem+json for every error, an early 503 just
 * before the Lambda timeout) over the route dispatcher. `candlekeep serve`, the local pipeline and
 * the benchmark build the same chain with their own database handle.
 */
export function createApiHandler(config: ApiConfig, deps: ApiHandlerDeps) {
  const logger = deps.logger ?? createLogger(SERVICES.api);
  const chain = middy(createApi(deps), {
    timeoutEarlyInMillis: 250,
    timeoutEarlyResponse: () => problem(new HttpProblem(503, 'the request took too long; narrow the range or lower limit, then retry')),
  });
  return withPowertools(chain, { logger })
    .use(cors(config.corsOrigins))
    .use(httpProblems({ logger }));
}
