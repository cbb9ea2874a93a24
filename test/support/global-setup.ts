import type { TestProject } from 'vitest/node';
import { openLocalDatabase, type LocalDatabase } from '../../dev/local-db.ts';
import { ensureLocalStack } from '../../dev/localstack/index.ts';
import { ensurePythonClientVenv } from '../../dev/python-venv.ts';

/** What the projects of one run share: one server, one relay, one LocalStack, one venv. */
interface Services {
  db: LocalDatabase;
  aws: Awaited<ReturnType<typeof ensureLocalStack>>;
  python: string;
}

// The integration and browser projects each run this setup, in the same process. They share the
// services, which are stopped when the last project is done with them: each project stopping its
// own would take the embedded server (or the relay every pool of the process goes through, since
// the driver's proxy setting is global) away from a project still dropping its database.
const SHARED = Symbol.for('candlekeep.test.services');
type Shared = { users: number; ready: Promise<Services> };
const registry = globalThis as { [SHARED]?: Shared };

async function startServices(log: (msg: string) => void): Promise<Services> {
  const [db, aws, python] = await Promise.all([openLocalDatabase({ log }), ensureLocalStack({ log }), ensurePythonClientVenv({ log })]);
  return { db, aws, python };
}

/**
 * Starts what the tests need when nothing is configured, and hands the addresses to the test
 * workers: a fresh, migrated database per project and run (so none sees another's rows), the relay the
 * Neon driver goes through, LocalStack for SQS and Secrets Manager, and the Python client's venv
 * (pandas, pyarrow, polars, DuckDB, pytest) that reads exported files and runs the client's tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (msg: string) => process.stderr.write(`[test setup] ${msg}\n`);
  const started = Date.now();
  const shared = (registry[SHARED] ??= { users: 0, ready: startServices(log) });
  shared.users += 1;
  const release = async (services?: Services) => {
    shared.users -= 1;
    if (shared.users > 0) return;
    delete registry[SHARED];
    if (!services) return;
    await services.db.close();
    await services.aws.stop();
  };
  let services: Services;
  try {
    services = await shared.ready;
  } catch (err) {
    await release();
    throw err;
  }
  const { db, aws, python } = services;
  const dbName = `candlekeep_test_${Date.now().toString(36)}_${process.pid}_${project.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
  let databaseUrl: string;
  try {
    databaseUrl = await db.prepare(dbName, { fresh: true });
  } catch (err) {
    await release(services);
    throw err;
  }
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

  let done = false;
  return async () => {
    if (done) return;
    done = true;
    await db.drop(dbName).catch((err: unknown) => log(`could not drop ${dbName}: ${String(err)}`));
    await release(services);
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    testEnv: Record<string, string>;
  }
}
