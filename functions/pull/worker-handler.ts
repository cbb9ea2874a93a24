/** The pull worker Lambda's entry: the one place its settings and clients come from the container. */
import { createPullWorkerHandler, livePullWorkerDeps, readPullWorkerConfig } from './worker-lambda.ts';

export const handler = createPullWorkerHandler(readPullWorkerConfig(process.env), livePullWorkerDeps(process.env));
