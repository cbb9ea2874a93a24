/**
 * `npm run deploy:localstack [-- <cdk deploy options>]`: the whole stack, Lambdas included, on a
 * LocalStack that runs in Docker (`cdklocal bootstrap && cdklocal deploy`).
 *
 * Lambda needs a Docker engine inside LocalStack, so this refuses to deploy to a LocalStack running
 * on the host (as the tests and `npm run dev` start it without Docker); there, `npm run dev` runs
 * the same handlers locally instead. LocalStack is the pinned community image 4.14.0 unless
 * LOCALSTACK_IMAGE says otherwise (newer images need LOCALSTACK_AUTH_TOKEN).
 */
import { spawn } from 'node:child_process';
import { dockerUsable } from './localstack/docker.ts';
import { ensureLocalStack } from './localstack/index.ts';
import { DEFAULT_ENDPOINT, LOCALSTACK_DOCKER_IMAGE } from './localstack/pinned.ts';
import { REPO_ROOT } from './paths.ts';

const log = (msg: string) => process.stderr.write(`[deploy:localstack] ${msg}\n`);

async function answers(endpoint: string): Promise<boolean> {
  try {
    return (await fetch(`${endpoint}/_localstack/health`, { signal: AbortSignal.timeout(2_000) })).ok;
  } catch {
    return false;
  }
}

/** Whether the LocalStack at `endpoint` runs in a container (its Lambda service can then run functions). */
async function runsInDocker(endpoint: string): Promise<boolean | undefined> {
  try {
    const res = await fetch(`${endpoint}/_localstack/info`, { signal: AbortSignal.timeout(2_000) });
    const info = (await res.json()) as { is_docker?: boolean };
    return info.is_docker;
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  log(`$ ${cmd} ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args[0] ?? ''} exited with ${code}`))));
  });
}

async function main(): Promise<number> {
  const configured = process.env.AWS_ENDPOINT_URL?.replace(/\/+$/, '');
  const endpoint = configured ?? DEFAULT_ENDPOINT;
  if (!(await answers(endpoint))) {
    if (configured) {
      log(`nothing answers at AWS_ENDPOINT_URL=${configured}`);
      return 1;
    }
    if (!(await dockerUsable())) {
      log(
        'no Docker engine: LocalStack can only run Lambda functions in Docker. Without Docker, `npm run dev` runs the ' +
          'same handlers on this machine against LocalStack, and `npx vitest run test/integration/local-deploy.test.ts` ' +
          'deploys the non-Lambda part of the template.',
      );
      return 1;
    }
    // ensureLocalStack starts the pinned image with the Lambda service and the Docker socket mounted.
    // The container keeps running after this script ends (stop it with `docker rm -f <name>`).
    const ls = await ensureLocalStack({ log });
    log(`LocalStack (${ls.mode}, ${process.env.LOCALSTACK_IMAGE ?? LOCALSTACK_DOCKER_IMAGE}) at ${ls.endpoint}`);
  }
  if ((await runsInDocker(endpoint)) === false) {
    log(
      `the LocalStack at ${endpoint} runs on the host, where Lambda functions cannot start (they end in state Failed). ` +
        'Stop it and rerun this with Docker available, or use `npm run dev`.',
    );
    return 1;
  }

  const region = process.env.AWS_REGION ?? 'us-east-1';
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // cdklocal reads both; an IP endpoint makes SDK v3 use path-style S3 URLs for the asset bucket.
    AWS_ENDPOINT_URL: endpoint,
    AWS_ENDPOINT_URL_S3: process.env.AWS_ENDPOINT_URL_S3 ?? endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    CDK_DEFAULT_ACCOUNT: '000000000000',
    CDK_DEFAULT_REGION: region,
  };
  await run('npx', ['cdklocal', 'bootstrap', `aws://000000000000/${region}`], env);
  await run('npx', ['cdklocal', 'deploy', '--require-approval', 'never', ...process.argv.slice(2)], env);
  log(
    'deployed. Put a database URL the functions can reach into the secret (stack output DatabaseSecretArn), e.g.\n' +
      `  aws --endpoint-url ${endpoint} secretsmanager put-secret-value --secret-id <DatabaseSecretArn> --secret-string '{"url":"postgres://…neon.tech/…?sslmode=require"}'\n` +
      'The functions speak the Neon driver\'s WebSocket protocol: a Neon database works as is; a plain PostgreSQL needs `npm run dev` (its relay).',
  );
  return 0;
}

process.exitCode = await main().catch((err: unknown) => {
  log((err as Error).message);
  return 1;
});
