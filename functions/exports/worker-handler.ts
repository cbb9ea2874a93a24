/** The export worker Lambda's entry: the one place its settings and clients come from the container. */
import { createExportWorkerHandler, liveExportWorkerDeps, readExportWorkerConfig } from './worker-lambda.ts';

export const handler = createExportWorkerHandler(readExportWorkerConfig(process.env), liveExportWorkerDeps(process.env));
