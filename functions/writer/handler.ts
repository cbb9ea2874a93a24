/** The writer Lambda's entry: the one place its settings and clients come from the container. */
import { createWriterHandler, liveWriterDeps, readWriterConfig } from './writer-lambda.ts';

export const handler = createWriterHandler(readWriterConfig(process.env), liveWriterDeps(process.env));
