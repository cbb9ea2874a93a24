/** The migration Lambda's entry: the one place its settings and clients come from the container. */
import { createMigrateHandler, liveMigrateDeps, readMigrateConfig } from './migrate-lambda.ts';

export const handler = createMigrateHandler(readMigrateConfig(process.env), liveMigrateDeps(process.env));
