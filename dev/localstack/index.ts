/**
 * Finds or starts a LocalStack for tests and local development.
 *
 * Order of preference:
 *   1. AWS_ENDPOINT_URL, when set: the caller chose an instance; we only check it answers.
 *   2. Anything already answering on 127.0.0.1:4566: parallel runs and a dev session share one.
 *   3. A usable Docker engine: the pinned image (Lambdas can run there) (docker.ts).
 *   4. Host mode: the pinned PyPI package in a project-local venv, no Docker needed (host.ts, venv.ts).
 *
 * Run `npx tsx dev/localstack/main.ts` to start one and keep it up until Ctrl-C.
 */
import { resolve } from 'node:path';
import { STATE_DIR } from '../paths.ts';
import { dockerUsable, startDocker } from './docker.ts';
import { HEALTH_PATH, probeHealth, reuse, type LocalStackHandle } from './health.ts';
import { startHost } from './host.ts';
import { DEFAULT_ENDPOINT } from './pinned.ts';

export { localStackServices, type LocalStackHandle, type LocalStackMode } from './health.ts';

export interface EnsureLocalStackOptions {
  log?: (msg: string) => void;
  /** The project's state folder (venv, LocalStack state, log). Default: `<repo>/.dev`. */
  stateDir?: string;
  /** How long a started instance may take to report ready. Default 90 s. */
  readyTimeoutMs?: number;
}

export interface AwsClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** Config for SDK v3 clients pointed at LocalStack (which accepts any credentials). */
export function awsClientConfig(endpoint: string): AwsClientConfig {
  return {
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  };
}

export async function ensureLocalStack(opts: EnsureLocalStackOptions = {}): Promise<LocalStackHandle> {
  const log = opts.log ?? (() => {});
  const stateDir = resolve(opts.stateDir ?? STATE_DIR);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  const configured = process.env.AWS_ENDPOINT_URL?.trim();
  if (configured) {
    const endpoint = configured.replace(/\/+$/, '');
    const probe = await probeHealth(endpoint);
    if ('error' in probe && probe.refused) {
      throw new Error(
        `AWS_ENDPOINT_URL is set to ${endpoint}, but nothing answers at ${endpoint}${HEALTH_PATH} (${probe.error}). ` +
          'Start LocalStack there, or unset AWS_ENDPOINT_URL to let the project start one.',
      );
    }
    if ('error' in probe) log(`LocalStack: ${endpoint} (AWS_ENDPOINT_URL) is not answering yet (${probe.error}); waiting up to ${readyTimeoutMs / 1000} s for it`);
    const handle = await reuse(endpoint, readyTimeoutMs);
    log(`LocalStack: using AWS_ENDPOINT_URL ${endpoint}`);
    return handle;
  }

  const probe = await probeHealth(DEFAULT_ENDPOINT);
  // Something listens on the port but does not answer yet: a LocalStack still booting (started by
  // another run), which closes connections until it is up. Wait for it rather than start a second.
  if ('health' in probe || !probe.refused) {
    if ('error' in probe) log(`LocalStack: ${DEFAULT_ENDPOINT} is not answering yet (${probe.error}); waiting up to ${readyTimeoutMs / 1000} s for it`);
    const handle = await reuse(DEFAULT_ENDPOINT, readyTimeoutMs);
    log(`LocalStack: reusing the instance already running at ${DEFAULT_ENDPOINT}`);
    return handle;
  }

  if (await dockerUsable()) {
    return startDocker({ log, readyTimeoutMs });
  }

  log('LocalStack: no Docker engine; running it on the host');
  return startHost({ log, stateDir, readyTimeoutMs });
}
