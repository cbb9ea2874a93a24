import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { progress } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { migrate } from '../../functions/store/migrate.ts';

export const command: Command = {
  summary: 'apply pending database migrations (DATABASE_URL, or the embedded PostgreSQL)',
  usage: 'candlekeep migrate [--json]',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } } });
    return withLocalDatabase(async (pool) => {
      const result = await migrate(pool, { log: progress });
      if (values.json) console.log(JSON.stringify(result));
      else console.log(result.applied.length ? `applied ${result.applied.length} migration(s)` : `up to date (${result.alreadyApplied} applied)`);
      return 0;
    });
  },
};
