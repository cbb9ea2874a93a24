import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import { createApiHandler, liveApiDeps, readApiConfig } from '../../../functions/api/api-lambda.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';

/**
 * The API Lambda as deployed (its own Powertools logger, its pool from the environment), asked for
 * its health with a database URL that cannot be used: whatever fails, neither the log lines it
 * writes nor the answer may contain the password.
 */
const PASSWORD = 'S3cr3t#Pa55';
const healthEvent = { resource: '/v1/health', path: '/v1/health', httpMethod: 'GET', headers: {}, requestContext: { requestId: 'req-redact' } };

let written: string[] = [];
beforeEach(() => {
  written = [];
  // Powertools writes through its own Console on the process's streams: capture them there.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function askHealth(databaseUrl: string) {
  const env = { DATABASE_URL: databaseUrl, CANDLEKEEP_WS_PROXY: process.env.CANDLEKEEP_WS_PROXY };
  const config = readApiConfig(env);
  const handler = createApiHandler(config, { ...liveApiDeps(config, env), logger: createLogger(SERVICES.api) });
  const response = await handler(healthEvent as never, { awsRequestId: 'aws-redact' } as never);
  vi.restoreAllMocks();
  return { response, log: written.join('') };
}

function expectNoSecret(text: string, ...secrets: string[]): void {
  for (const s of secrets) expect(text).not.toContain(s);
}

describe('the database password never reaches a log line or a response', () => {
  it.each([
    ['an unencoded # in the password', `postgres://appuser:${PASSWORD}@127.0.0.1:5432/postgres`, /contains #; percent-encode it \(# as %23\)/],
    ['a port out of range', 'postgres://appuser:S3cr3tPa55@127.0.0.1:99999/postgres', /port is not a number from 1 to 65535/],
    ['a port that is not a number', 'postgres://appuser:S3cr3tPa55@127.0.0.1:pg/postgres', /port is not a number/],
    ['an unencoded @ and / in the password', 'postgres://appuser:S3c@r/3tPa55@127.0.0.1:5432/postgres', /contains @ \/; percent-encode it/],
  ])('with %s, the error names the problem without the URL', async (_case, url, named) => {
    const { response, log } = await askHealth(url);
    expect(response.statusCode).toBe(500);
    expect(log).toMatch(named);
    expect(log).toContain('unhandled error');
    expectNoSecret(log + response.body, 'S3cr3t', 'Pa55', '3tPa55', 'r/3t', url);
  });

  it('with a well-formed URL the server rejects, the answer and the log hold no password', async () => {
    // A role that does not exist on the run's real PostgreSQL, reached through the real relay.
    const server = new URL(process.env.CANDLEKEEP_TEST_SERVER_URL ?? process.env.DATABASE_URL ?? '');
    const url = `postgres://nobody_here:Wr0ngPassw0rd@${server.host}/postgres`;
    const { response, log } = await askHealth(url);
    expect(response.statusCode).toBeGreaterThanOrEqual(500);
    expect(log).toMatch(/nobody_here|database/);
    expectNoSecret(log + response.body, 'Wr0ngPassw0rd');
  });

  it('redacts an error that quotes a connection string, whatever property holds it', () => {
    const logger = createLogger(SERVICES.api);
    const err = Object.assign(new TypeError('Invalid URL'), { input: 'postgres://appuser:An0ther#Secret@db.example:5432/app' });
    logger.error('unhandled error', { error: new Error('wrapped', { cause: err }), detail: 'password=Hunter2222 host=db' });
    vi.restoreAllMocks();
    const log = written.join('');
    expect(log).toContain('postgres://appuser:[redacted]@db.example:5432/app');
    expectNoSecret(log, 'An0ther', 'Secret@', 'Hunter2222');
  });
});

describe('the CLI with a malformed DATABASE_URL', () => {
  it('names the problem and prints no part of the password', async () => {
    const url = `postgres://appuser:${PASSWORD}@127.0.0.1:5432/postgres`;
    const out = await promisify(execFile)(process.execPath, [projectPath('bin/candlekeep.js'), 'migrate'], {
      cwd: projectPath(''),
      env: { ...process.env, DATABASE_URL: url },
      timeout: 60_000,
    }).catch((err: { code?: number; stdout?: string; stderr?: string }) => err);
    expect(out).toMatchObject({ code: 1 });
    const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
    expect(text).toMatch(/DATABASE_URL is not a valid URL: its user name or password contains #/);
    expectNoSecret(text, 'S3cr3t', 'Pa55');
  });
});
