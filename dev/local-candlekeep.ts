/**
 * candlekeep on this machine, as `npm run dev` and the end-to-end tests both run it: the
 * synthesized stack's queues, dead-letter queue, secret, bus, rule and schedules deployed to
 * LocalStack through CloudFormation; the database URL in the stack's secret, where the functions
 * look for it in AWS; the stack's handlers in this process (dev/local-pipeline.ts); and the API
 * handler behind a local API Gateway stand-in with an API key.
 *
 * PostgreSQL, LocalStack and the exchanges are the caller's: it starts (or reuses) them and passes
 * their addresses.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { applySeed } from '../functions/markets/seed.ts';
import { sendWorkTokens } from '../functions/queue/work-tokens.ts';
import { countOpenChunks } from '../functions/store/backfills.ts';
import { createPool } from '../functions/store/db.ts';
import type { ConsoleAsset } from '../console/build.ts';
import type { AuthorizerHandler } from '../functions/auth/authorizer-lambda.ts';
import { startLocalServer, type LocalServer, type ProxyHandler } from './local-api.ts';
import { startLocalPipeline, type LocalPipeline, type PipelineOptions } from './local-pipeline.ts';
import { awsClientConfig, localStackServices } from './localstack/index.ts';
import {
  deleteLocalStack,
  deployLocalTemplate,
  localFunctions,
  localTemplate,
  type Deployment,
  type LocalFunctions,
  type SynthesizedCandlekeep,
} from './template/index.ts';

export interface LocalCandlekeepOptions
  extends Pick<PipelineOptions, 'exchangeUrls' | 'exchangeClock' | 'onError' | 'schedules' | 'waitTimeSeconds' | 'visibilityTimeoutSeconds' | 'poolMax' | 'skip'> {
  synth: SynthesizedCandlekeep;
  /** LocalStack's endpoint. */
  endpoint: string;
  /** The database the functions use, reachable through the driver's configured relay. */
  databaseUrl: string;
  /** The configured admin key clients may send in x-api-key (keys stored with `candlekeep keys create` work too). */
  apiKey: string;
  /** Where the API listens; 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Serve the web console's files too (npm run dev does). */
  console?: readonly ConsoleAsset[];
  log?: (msg: string) => void;
  /** Delete the stack from LocalStack when stopping (tests); `npm run dev` keeps it for its next run. */
  deleteStackOnStop?: boolean;
}

export interface LocalCandlekeep {
  deployment: Deployment;
  functions: LocalFunctions;
  pipeline: LocalPipeline;
  server: LocalServer;
  /** The SQS client the pipeline polls and sends with. */
  sqs: SQSClient;
  /** Stops the API, then the pipeline (in-flight work finishes, queued messages stay in SQS). */
  stop(): Promise<void>;
}

export async function startLocalCandlekeep(opts: LocalCandlekeepOptions): Promise<LocalCandlekeep> {
  const log = opts.log ?? (() => {});
  const { synth, endpoint } = opts;
  const cfn = new CloudFormationClient(awsClientConfig(endpoint));
  const local = localTemplate(synth, { services: await localStackServices(endpoint), inboxes: true });
  const notDeployed = ['Lambda', 'API Gateway', 'log groups'];
  for (const type of new Set(local.removed.values())) {
    if (!/^AWS::(Lambda|ApiGateway|Logs)/.test(type)) notDeployed.push(type);
  }
  log(
    `deploying ${Object.keys(local.template.Resources).length} resources of stack ${synth.stackName} to LocalStack CloudFormation ` +
      `(not deployed locally: ${notDeployed.join(', ')})`,
  );
  const deployment = await deployLocalTemplate(cfn, synth.stackName, local, { log, endpoint });

  // As in AWS, the functions find the database through the stack's secret.
  await new SecretsManagerClient(awsClientConfig(endpoint)).send(
    new PutSecretValueCommand({ SecretId: deployment.ref(synth.ids.databaseSecret), SecretString: JSON.stringify({ url: opts.databaseUrl }) }),
  );

  // What `candlekeep migrate` does after a deploy: cdk.json's seed markets into the database.
  const seedPool = createPool(opts.databaseUrl, { max: 1 });
  try {
    const seeded = await applySeed(seedPool, synth.markets);
    if (seeded > 0) log(`followed ${seeded} seed market(s) from cdk.json`);
  } finally {
    await seedPool.end();
  }

  const functions = localFunctions(synth);
  const sqs = new SQSClient(awsClientConfig(endpoint));
  const pipeline = await startLocalPipeline({
    deployment,
    functions,
    inboxes: local.inboxes,
    sqs,
    endpoint,
    log,
    apiKey: opts.apiKey,
    ...pick(opts, ['exchangeUrls', 'exchangeClock', 'onError', 'schedules', 'waitTimeSeconds', 'visibilityTimeoutSeconds', 'poolMax', 'skip']),
  });
  let server: LocalServer;
  try {
    server = await startLocalServer({
      handler: pipeline.handler('api') as unknown as ProxyHandler,
      authorizer: pipeline.handler('authorizer') as unknown as AuthorizerHandler,
      port: opts.port ?? 0,
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      ...(opts.console ? { console: opts.console } : {}),
    });
  } catch (err) {
    await pipeline.stop();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    deployment,
    functions,
    pipeline,
    server,
    sqs,
    stop() {
      stopped ??= (async () => {
        await server.close().catch((err: unknown) => log(`closing the API server: ${(err as Error).message}`));
        await pipeline.stop();
        if (opts.deleteStackOnStop) await deleteLocalStack(cfn, synth.stackName);
      })();
      return stopped;
    },
  };
}

/**
 * Backfills an earlier run left open (stopped with a second Ctrl-C, or killed) resume when their
 * work token reappears, which takes the work queue's visibility timeout (30 min, as in AWS), or
 * never when the LocalStack that held it is gone. One extra token starts them now; a token with
 * nothing to claim costs one empty claim. Returns the open chunks found.
 */
export async function resumeOpenBackfills(candlekeep: Pick<LocalCandlekeep, 'deployment' | 'functions' | 'sqs'>, databaseUrl: string): Promise<number> {
  const worker = candlekeep.functions.functions.find((f) => f.role === 'worker');
  const queue = worker?.environment.BACKFILL_WORK_QUEUE_URL;
  if (queue === undefined) return 0;
  const pool = createPool(databaseUrl, { max: 1 });
  try {
    const open = await countOpenChunks(pool);
    if (open > 0) await sendWorkTokens(candlekeep.sqs, candlekeep.deployment.resolve(queue), 1);
    return open;
  } finally {
    await pool.end();
  }
}

/** The options that are set, so an unset one keeps the callee's default. */
function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Partial<Pick<T, K>> {
  return Object.fromEntries(keys.filter((k) => from[k] !== undefined).map((k) => [k, from[k]])) as Partial<Pick<T, K>>;
}
