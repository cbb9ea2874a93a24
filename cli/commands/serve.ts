import { defineCommand, progress, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { PORT_OPTION } from '../options.ts';
import { migrate } from '../../functions/store/migrate.ts';
import { localAuthorizer, startLocalServer, type ProxyHandler } from '../../dev/local-api.ts';

export const command = defineCommand({
  summary: 'serve the HTTP API and the web console on localhost (same handlers as API Gateway); keys from candlekeep keys, and CANDLEKEEP_API_KEY',
  options: {
    port: { ...PORT_OPTION, default: '8080' },
    host: { type: 'string', value: '<address>', default: '127.0.0.1', description: 'address to listen on (0.0.0.0 exposes the API to the network)' },
  },
  notes: [
    'Keys: those stored with `candlekeep keys create` (read, write or admin), and CANDLEKEEP_API_KEY, an admin key.',
    'Environment: CANDLEKEEP_API_KEY (optional, at least 8 characters), DATABASE_URL (default: the embedded PostgreSQL),',
    'CANDLEKEEP_BACKFILL_BUS (optional: the bus POST /v1/backfills puts requests on; without it that route answers 501).',
    'The web console is served at /console/.',
  ],
  async run({ values }) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a port number');
    const apiKey = process.env.CANDLEKEEP_API_KEY || undefined;
    if (apiKey !== undefined && apiKey.length < 8) {
      throw new UsageError('CANDLEKEEP_API_KEY must be at least 8 characters (or unset it and use keys from candlekeep keys create)');
    }
    process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
    process.env.POWERTOOLS_SERVICE_NAME ??= 'candlekeep-api';
    return withLocalDatabase(async (pool) => {
      await migrate(pool, { log: progress });
      // Built after the environment above is set: its logger reads the Powertools variables.
      const { createApiHandler, readApiConfig } = await import('../../functions/api/api-lambda.ts');
      const handler = createApiHandler(readApiConfig(process.env), { db: async () => pool }) as unknown as ProxyHandler;
      const { buildConsole } = await import('../../console/build.ts');
      const authorizer = localAuthorizer({ db: async () => pool, apiKey });
      const server = await startLocalServer({ handler, authorizer, port, host: values.host, console: await buildConsole() });
      progress(`candlekeep API on ${server.url}/v1 (try: curl -H "x-api-key: $CANDLEKEEP_API_KEY" ${server.url}/v1/markets); Ctrl-C to stop`);
      if (apiKey === undefined) progress('CANDLEKEEP_API_KEY is unset: only keys from `candlekeep keys create` are accepted');
      progress(`console on ${server.url}/console/ (it asks for the API key once per browser tab)`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      progress('stopping');
      await server.close();
      return 0;
    });
  },
});
