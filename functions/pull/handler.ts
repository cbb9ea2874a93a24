/** The pull Lambda's entry: the one place its settings and clients come from the container. */
import { createPullHandler, livePullDeps, readPullConfig } from './pull-lambda.ts';

export const handler = createPullHandler(readPullConfig(process.env), livePullDeps(process.env));
