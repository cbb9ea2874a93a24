/** The backfill worker Lambda's entry: the one place its settings and clients come from the container. */
import { createWorkerHandler, liveWorkerDeps, readWorkerConfig } from './worker-lambda.ts';

export const handler = createWorkerHandler(readWorkerConfig(process.env), liveWorkerDeps(process.env));
