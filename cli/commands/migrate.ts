import { defineCommand, progress } from '../command.ts';
import { describeTarget, withLocalDatabase } from '../database.ts';
import { JSON_OPTION } from '../options.ts';
import { migrate } from '../../functions/store/migrate.ts';

export const command = defineCommand({
  summary: 'apply pending database migrations (DATABASE_URL, or the embedded PostgreSQL)',
  options: { json: JSON_OPTION },
  notes: [
    'Without DATABASE_URL this migrates the embedded PostgreSQL on this machine (database candlekeep),',
    'never a deployed one: set DATABASE_URL to migrate Neon or another server.',
  ],
  async run({ values }) {
    // First, before anything connects: a user who meant their deployed database must see it at once.
    if (!process.env.DATABASE_URL) {
      progress(`candlekeep migrate: DATABASE_URL is not set, so this migrates the EMBEDDED PostgreSQL on this machine (${describeTarget()}), not a deployed database`);
    }
    return withLocalDatabase(async (pool) => {
      const result = await migrate(pool, { log: progress });
      if (values.json) console.log(JSON.stringify(result));
      else console.log(result.applied.length ? `applied ${result.applied.length} migration(s)` : `up to date (${result.alreadyApplied} applied)`);
      return 0;
    });
  },
});
