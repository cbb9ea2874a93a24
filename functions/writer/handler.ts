/** The writer Lambda's entry: the one place its settings and clients come from the container. */
import { liveQueueDeps } from '../lambda-kit/container.ts';
import { createWriterHandler, readWriterConfig } from './writer-lambda.ts';

export const handler = createWriterHandler(readWriterConfig(process.env), liveQueueDeps(process.env));
