import type { Context } from 'aws-lambda';
import middy from '@middy/core';
import * as z from 'zod';
import { DatabaseNotConfiguredError } from '../errors.ts';
import {
  customResourceEventSchema,
  customResourceResponse,
  sendCustomResourceResponse,
  type CustomResourceEvent,
  type CustomResourceOutcome,
} from '../lambda-kit/custom-resource.ts';
import { configReader, type Env } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools, type Observability } from '../lambda-kit/powertools.ts';
import { redactSecrets } from '../lambda-kit/redact.ts';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseMarkets } from '../config/markets.ts';
import { applySeed } from '../markets/seed.ts';
import { createPool, lazyDatabaseUrl } from '../store/db.ts';
import { migrate, migrationsDigest, readMigrations, type MigrateResult } from '../store/migrate.ts';

/** The custom resource's property carrying the digest of the migrations the deploy ships. */
export const MIGRATIONS_DIGEST_PROPERTY = 'MigrationsDigest';
/** The custom resource's property carrying the digest of the seed markets file the deploy ships. */
export const SEED_DIGEST_PROPERTY = 'SeedDigest';
/** The file, next to the bundle, holding cdk.json's seed markets (JSON, as `candlekeep:markets`). */
export const SEED_MARKETS_FILE = 'seed-markets.json';

/** sha-256 of the seed file's text, as the stack computes it at synth time and the function from its bundle. */
export function seedDigest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
/** One migration resource per stack; its id never changes, so CloudFormation never replaces it. */
const PHYSICAL_ID = 'candlekeep-migrations';
/** Kept free before the function's own timeout, to answer CloudFormation instead of leaving it waiting. */
const ANSWER_MARGIN_MS = 10_000;

const configSchema = z
  .object({
    /** Where the bundled migrations are (the stack copies migrations/*.sql next to the bundle). */
    MIGRATIONS_DIR: z.string().min(1, 'MIGRATIONS_DIR must name the folder of the bundled migrations'),
    /** The bundled seed markets file; unset: no seed. */
    SEED_MARKETS_PATH: z.string().min(1).optional(),
  })
  .transform((e) => ({ migrationsDir: e.MIGRATIONS_DIR, seedPath: e.SEED_MARKETS_PATH }));
export const readMigrateConfig = configReader(configSchema, SERVICES.migrate);
export type MigrateConfig = ReturnType<typeof readMigrateConfig>;

export interface MigrateDeps extends Observability {
  /** The database URL from the secret; throws DatabaseNotConfiguredError while the secret holds none. */
  databaseUrl: () => Promise<string>;
  /** Answers CloudFormation; by default a PUT to the request's presigned URL. */
  respond?: (url: string, body: string) => Promise<void>;
}

/** A Lambda container's: the URL read from the secret when an event comes (never kept: a deploy is rare). */
export function liveMigrateDeps(env: Env): MigrateDeps {
  return { databaseUrl: () => lazyDatabaseUrl(env)() };
}

/** What a run did, for a direct invocation's answer and the custom resource's data. */
export type MigrateOutcome = (MigrateResult & { skipped?: undefined; seededMarkets: number }) | { skipped: 'database not configured'; detail: string };

/**
 * Applies the bundled migrations with the project's runner (functions/store/migrate.ts) to the
 * database the secret names. Invoked two ways:
 *
 * - by CloudFormation, as the stack's migration custom resource, on every deploy whose migrations
 *   changed (their digest is a resource property): a failed migration answers FAILED, which fails
 *   the deploy and rolls it back. A request whose digest is not this bundle's (CloudFormation
 *   rolling back to the previous migrations) applies nothing, since migrations only go forward;
 *   Delete applies nothing either, the data staying as it is;
 * - directly (`aws lambda invoke`), e.g. right after the URL was first put in the secret.
 *
 * After the migrations, cdk.json's seed markets (bundled as seed-markets.json) are applied: markets
 * the database has never seen are followed, those changed or removed at runtime stay as they are.
 * The seed's digest is a resource property too, so a deploy that only changes the seed applies it.
 *
 * While the secret holds no URL there is nothing to migrate: a deploy succeeds and says so.
 */
export function createMigrateHandler(config: MigrateConfig, deps: MigrateDeps) {
  const { logger } = powertoolsFor(SERVICES.migrate, deps);
  const respond = deps.respond ?? ((url: string, body: string) => sendCustomResourceResponse(url, body));

  async function run(): Promise<MigrateOutcome> {
    let url: string;
    try {
      url = await deps.databaseUrl();
    } catch (err) {
      if (!(err instanceof DatabaseNotConfiguredError)) throw err;
      logger.warn('database not configured: no migration applied', { detail: err.message });
      return { skipped: 'database not configured', detail: err.message };
    }
    // The seed is read and checked before anything is applied: a bad file fails the run whole.
    const seed = config.seedPath ? await readSeed(config.seedPath) : undefined;
    const pool = createPool(url, { max: 1 });
    try {
      const result = await migrate(pool, { dir: config.migrationsDir, log: (msg) => logger.info(msg) });
      logger.info('migrations applied', { applied: result.applied, alreadyApplied: result.alreadyApplied });
      const seededMarkets = seed ? await applySeed(pool, seed.markets) : 0;
      if (seed) logger.info('seed markets applied', { seededMarkets, seedMarkets: seed.markets.length });
      return { ...result, seededMarkets };
    } finally {
      await pool.end().catch(() => {});
    }
  }

  async function onCloudFormation(event: CustomResourceEvent, context: Context): Promise<CustomResourceOutcome> {
    if (event.RequestType === 'Delete') return { status: 'SUCCESS', reason: 'nothing to undo: migrations stay applied and the data stays' };
    const bundled = migrationsDigest(await readMigrations(config.migrationsDir));
    const asked = event.ResourceProperties[MIGRATIONS_DIGEST_PROPERTY];
    if (asked !== bundled) {
      return { status: 'SUCCESS', reason: `migrations ${String(asked).slice(0, 12)} are not this bundle's (${bundled.slice(0, 12)}), as in a rollback: nothing applied, migrations only go forward` };
    }
    const askedSeed = event.ResourceProperties[SEED_DIGEST_PROPERTY];
    const bundledSeed = config.seedPath ? (await readSeed(config.seedPath)).digest : undefined;
    if (askedSeed !== undefined && askedSeed !== bundledSeed) {
      return { status: 'SUCCESS', reason: `seed markets ${String(askedSeed).slice(0, 12)} are not this bundle's (${String(bundledSeed).slice(0, 12)}), as in a rollback: nothing applied` };
    }
    const budget = Math.max(1_000, (context.getRemainingTimeInMillis?.() ?? 900_000) - ANSWER_MARGIN_MS);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`migrations did not finish within ${Math.round(budget / 1000)} s`)), budget);
    });
    try {
      const outcome = await Promise.race([run(), deadline]);
      if (outcome.skipped) {
        return {
          status: 'SUCCESS',
          reason: `database not configured (${outcome.detail}); put the URL in the secret, then invoke this function to migrate`,
          data: { Applied: 0 },
        };
      }
      const migrated = outcome.applied.length ? `applied ${outcome.applied.join(', ')}` : `all ${outcome.alreadyApplied} migrations were already applied`;
      return {
        status: 'SUCCESS',
        reason: config.seedPath ? `${migrated}; ${outcome.seededMarkets} new seed market(s) followed` : migrated,
        data: { Applied: outcome.applied.length, SeededMarkets: outcome.seededMarkets },
      };
    } catch (err) {
      return { status: 'FAILED', reason: redactSecrets((err as Error).message) };
    } finally {
      clearTimeout(timer);
    }
  }

  async function handle(event: unknown, context: Context): Promise<MigrateOutcome | CustomResourceOutcome> {
    const request = customResourceEventSchema.safeParse(event);
    if (!request.success) return run(); // invoked directly: a failure is the invocation's error
    // Every path answers: an exception here would leave the deploy waiting for an hour.
    const outcome = await onCloudFormation(request.data, context).catch(
      (err: unknown): CustomResourceOutcome => ({ status: 'FAILED', reason: redactSecrets((err as Error).message) }),
    );
    (outcome.status === 'SUCCESS' ? logger.info : logger.error).call(logger, `${request.data.RequestType}: ${outcome.reason}`);
    await respond(request.data.ResponseURL, customResourceResponse(request.data, request.data.PhysicalResourceId ?? PHYSICAL_ID, outcome));
    return outcome;
  }

  return withPowertools(middy(handle), { logger });
}

/** The bundled seed file, validated as cdk.json's `candlekeep:markets` is; its text's digest alongside. */
async function readSeed(file: string): Promise<{ markets: ReturnType<typeof parseMarkets>; digest: string }> {
  const text = await readFile(file, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`the seed markets file ${file} is not valid JSON`);
  }
  return { markets: parseMarkets(value), digest: seedDigest(text) };
}
