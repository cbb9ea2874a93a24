import type { TestProject } from 'vitest/node';
import { openLocalDatabase, type LocalDatabase } from '../../dev/local-db.ts';
import { ensureLocalStack } from '../../dev/localstack/index.ts';
import { ensurePythonClientVenv } from '../../dev/python-venv.ts';

/**
 * Starts what the tests need when nothing is configured, and hands the addresses to the test
 * workers: a fresh, migrated database per run (so runs never see each other's rows), the relay the
 * Neon driver goes through, LocalStack for SQS and Secrets Manager, and the Python client's venv
 * (pandas, pyarrow, polars, DuckDB, pytest) that reads exported files and runs the client's tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (msg: string) => process.stderr.write(`[test setup] ${msg}\n`);
  const started = Date.now();
  const [db, aws, python] = await Promise.all([openLocalDatabase({ log }), ensureLocalStack({ log }), ensurePythonClientVenv({ log })]);
  const dbName = `candlekeep_test_${Date.now().toString(36)}_${process.pid}`;
  let local: LocalDatabase | undefined = db;
  const databaseUrl = await db.prepare(dbName, { fresh: true });
  log(`PostgreSQL (${db.server.mode}) database ${dbName}, LocalStack (${aws.mode}) at ${aws.endpoint}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  project.provide('testEnv', {
    DATABASE_URL: databaseUrl,
    CANDLEKEEP_TEST_SERVER_URL: db.serverUrl,
    CANDLEKEEP_WS_PROXY: db.relay.address,
    AWS_ENDPOINT_URL: aws.endpoint,
    CANDLEKEEP_TEST_PYTHON: python,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
  });

  return async () => {
    if (!local) return;
    await local.drop(dbName).catch((err: unknown) => log(`could not drop ${dbName}: ${String(err)}`));
    await local.close();
    local = undefined;
    await aws.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    testEnv: Record<string, string>;
  }
}
