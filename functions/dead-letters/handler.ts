/** The dead-letter scan Lambda's entry: the one place its settings and clients come from the container. */
import { liveQueueDeps } from '../lambda-kit/container.ts';
import { createDeadLetterScanHandler, readDeadLetterScanConfig } from './scan-lambda.ts';

export const handler = createDeadLetterScanHandler(readDeadLetterScanConfig(process.env), liveQueueDeps(process.env));
