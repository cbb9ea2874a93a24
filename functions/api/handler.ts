/** The API Lambda's entry: the one place its settings and clients come from the container. */
import { createApiHandler, liveApiDeps, readApiConfig } from './api-lambda.ts';

const config = readApiConfig(process.env);
export const handler = createApiHandler(config, liveApiDeps(config, process.env));
