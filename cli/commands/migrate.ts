import { existsSync, readFileSync } from 'node:fs';
import { defineCommand, progress, UsageError } from '../command.ts';
import { describeTarget, withLocalDatabase } from '../database.ts';
import { JSON_OPTION } from '../options.ts';
import { MARKETS_CONTEXT_KEY, parseMarkets, type Market } from '../../functions/config/markets.ts';
import { applySeed } from '../../functions/markets/seed.ts';
import { migrate } from '../../functions/store/migrate.ts';

/** The seed list of a cdk.json: its `candlekeep:markets`, validated as synth validates it. */
function seedFrom(file: string): Market[] {
  let context: Record<string, unknown> | undefined;
  try {
    context = (JSON.parse(readFileSync(file, 'utf8')) as { context?: Record<string, unknown> }).context;
  } catch (err) {
    throw new UsageError(`--seed ${file}: ${(err as Error).message}`);
  }
  if (context?.[MARKETS_CONTEXT_KEY] === undefined) return [];
  return parseMarkets(context[MARKETS_CONTEXT_KEY]);
}

export const command = defineCommand({
  summary: "apply pending database migrations (DATABASE_URL, or the embedded PostgreSQL), then cdk.json's seed markets",
  options: {
    seed: { type: 'string', value: '<cdk.json>', description: "the cdk.json whose candlekeep:markets are the seed list (default: ./cdk.json when there is one)" },
    'no-seed': { type: 'boolean', default: false, description: 'apply no seed markets' },
    json: JSON_OPTION,
  },
  notes: [
    'Without DATABASE_URL this migrates the embedded PostgreSQL on this machine (database candlekeep),',
    'never a deployed one: set DATABASE_URL to migrate Neon or another server.',
    'Seed markets the database has never seen are followed; changed or removed ones stay as they are.',
  ],
  async run({ values }) {
    if (values.seed !== undefined && values['no-seed']) throw new UsageError('choose one of --seed and --no-seed');
    // The seed list: cdk.json's candlekeep:markets, from the working directory unless named.
    const file = values.seed ?? 'cdk.json';
    if (values.seed !== undefined && !existsSync(file)) throw new UsageError(`--seed ${file}: no such file`);
    const seed = values['no-seed'] || !existsSync(file) ? [] : seedFrom(file);
    // First, before anything connects: a user who meant their deployed database must see it at once.
    if (!process.env.DATABASE_URL) {
      progress(`candlekeep migrate: DATABASE_URL is not set, so this migrates the EMBEDDED PostgreSQL on this machine (${describeTarget()}), not a deployed database`);
    }
    return withLocalDatabase(async (pool) => {
      const result = await migrate(pool, { log: progress });
      const seeded = await applySeed(pool, seed);
      if (values.json) console.log(JSON.stringify({ ...result, seededMarkets: seeded }));
      else {
        console.log(result.applied.length ? `applied ${result.applied.length} migration(s)` : `up to date (${result.alreadyApplied} applied)`);
        if (seed.length) console.log(`seed markets (${file}): ${seeded} new of ${seed.length}; the others are followed already or were removed`);
      }
      return 0;
    });
  },
});
