/** The backfill worker Lambda's entry: the one place its settings and clients come from the container. */
import { liveExchangeDeps } from '../lambda-kit/container.ts';
import { createWorkerHandler, readWorkerConfig } from './worker-lambda.ts';

export const handler = createWorkerHandler(readWorkerConfig(process.env), liveExchangeDeps(process.env));
