/** The retention Lambda's entry: the one place its settings and clients come from the container. */
import { lazyPool } from '../store/db.ts';
import { createRetentionHandler, readRetentionConfig } from './retention-lambda.ts';

export const handler = createRetentionHandler(readRetentionConfig(process.env), { db: lazyPool(process.env) });
