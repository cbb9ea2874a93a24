import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import * as z from 'zod';
import { cors, httpProblems } from '../http/middleware.ts';
import { HttpProblem } from '../http/problem.ts';
import { problem } from '../http/response.ts';
import { getPool } from '../store/db.ts';
import { createApi, type ApiDeps } from './app.ts';

/** Read once per container; a malformed setting fails the cold start loudly. */
const config = z
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
  .parse(process.env);

const logger = new Logger({ serviceName: 'candlekeep-api' });

/**
 * The API Lambda: a middy chain (logger context, problem+json for every error, an early 503 just
 * before the Lambda timeout) over the route dispatcher. `candlekeep serve` and the benchmark call
 * the same chain with their own database handle.
 */
export function createHandler(deps: ApiDeps) {
  return middy(createApi(deps), {
    timeoutEarlyInMillis: 250,
    timeoutEarlyResponse: () => problem(new HttpProblem(503, 'the request took too long; narrow the range or lower limit, then retry')),
  })
    .use(injectLambdaContext(logger))
    .use(cors(config.CANDLEKEEP_CORS_ORIGINS))
    .use(httpProblems({ logger }));
}

export const handler = createHandler({ db: () => getPool({ max: config.CANDLEKEEP_DB_POOL_MAX }) });
