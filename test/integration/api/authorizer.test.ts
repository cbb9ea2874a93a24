import { randomBytes } from 'node:crypto';
import { APIGatewayClient, CreateApiKeyCommand, DeleteApiKeyCommand } from '@aws-sdk/client-api-gateway';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { awsClientConfig } from '../../../dev/localstack/index.ts';
import { createAuthorizerHandler, liveAuthorizerDeps, readAuthorizerConfig, type AuthorizerHandler } from '../../../functions/auth/authorizer-lambda.ts';
import { createLogger, SERVICES } from '../../../functions/lambda-kit/powertools.ts';
import { createApiKey, revokeApiKey } from '../../../functions/store/api-keys.ts';
import { createPool, type Db } from '../../../functions/store/db.ts';
import { closedPort } from '../../support/cli.ts';
import { testPool, uniqueName } from '../../support/db.ts';

/**
 * The deployed API's REQUEST authorizer, its handler called in-process with the events API Gateway
 * sends it: keys from the run's real api_keys table, and the stack's API Gateway key read with the
 * real SDK from LocalStack's API Gateway (the configured admin key, and the usage-plan key every
 * allowed caller is metered by).
 */
const METHOD_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/dev/DELETE/v1/backtests/0190b6a0-0000-7000-8000-000000000000';
const STAGE_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/dev/*';
const event = (headers: Record<string, string> | null) => ({
  type: 'REQUEST',
  methodArn: METHOD_ARN,
  resource: '/v1/backtests/{id}',
  path: '/v1/backtests/0190b6a0-0000-7000-8000-000000000000',
  httpMethod: 'DELETE',
  headers,
  requestContext: { requestId: 'authorizer-test' },
});

let pool: Db;
let gateway: APIGatewayClient;
let usageKey: { id: string; value: string };
let handler: AuthorizerHandler;
let written: string[] = [];

beforeAll(async () => {
  pool = testPool(2);
  gateway = new APIGatewayClient(awsClientConfig(process.env.AWS_ENDPOINT_URL!));
  const value = `usage${randomBytes(16).toString('hex')}`;
  const out = await gateway.send(new CreateApiKeyCommand({ name: uniqueName('candlekeep-usage'), enabled: true, value }));
  usageKey = { id: out.id!, value };
  const config = readAuthorizerConfig({ CANDLEKEEP_USAGE_KEY_ID: usageKey.id });
  // As the Lambda entry builds it, with the run's pool in place of the secret's (and a logger that shows every line).
  handler = createAuthorizerHandler(
    { meterWithConfiguredKey: config.usageKeyId !== undefined },
    { ...liveAuthorizerDeps(config, process.env), db: async () => pool, logger: createLogger(SERVICES.authorizer, { logLevel: 'DEBUG' }) },
  );
});

afterAll(async () => {
  if (usageKey) await gateway.send(new DeleteApiKeyCommand({ apiKey: usageKey.id }));
  await pool?.end();
});

beforeEach(() => {
  written = [];
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

describe('the API authorizer', () => {
  it('allows a stored key on the whole stage (its answer is cached per key), handing on its scope and metering it by the stack key', async () => {
    const k = await createApiKey(pool, { name: uniqueName('notebook'), scope: 'read', now: Date.now() });
    const answer = await handler(event({ 'X-Api-Key': k.key }));
    expect(answer).toEqual({
      principalId: `key-${k.id}`,
      policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: STAGE_ARN }] },
      context: { scope: 'read', keyName: k.name },
      usageIdentifierKey: usageKey.value,
    });
    expect(written.join('')).not.toContain(k.key);
  });

  it("recognises the stack's API Gateway key, read from API Gateway, as an admin key", async () => {
    const answer = await handler(event({ 'x-api-key': usageKey.value }));
    expect(answer).toMatchObject({ principalId: 'configured', context: { scope: 'admin' }, policyDocument: { Statement: [{ Effect: 'Allow' }] } });
    expect(written.join('')).not.toContain(usageKey.value);
  });

  it('denies unknown, revoked and missing keys with a Deny (the gateway answers 401), logging why but never the key', async () => {
    const k = await createApiKey(pool, { name: uniqueName('leaked'), scope: 'admin', now: Date.now() });
    await revokeApiKey(pool, String(k.id), Date.now());
    const cases: [Record<string, string> | null, string][] = [
      [{ 'x-api-key': k.key }, 'revoked'],
      [{ 'x-api-key': `ck_${randomBytes(32).toString('base64url')}` }, 'unknown'],
      [{ 'x-api-key': `${usageKey.value}x` }, 'unknown'],
      [{ accept: 'application/json' }, 'missing'],
      [null, 'missing'],
    ];
    for (const [headers, refused] of cases) {
      const answer = await handler(event(headers));
      expect(answer, refused).toEqual({
        principalId: 'refused',
        policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: STAGE_ARN }] },
        context: { refused },
      });
      expect(answer).not.toHaveProperty('usageIdentifierKey');
    }
    const log = written.join('');
    expect(log).toContain('"reason":"revoked"');
    expect(log).not.toContain(k.key);
    expect(log).not.toContain(usageKey.value);
  });

  it('fails, without quoting the database password, when the key table cannot be read (the gateway answers 503)', async () => {
    const port = await closedPort();
    const broken = createPool(`postgres://appuser:S3cretPw0rd@127.0.0.1:${port}/candlekeep`, { max: 1 });
    try {
      const failing = createAuthorizerHandler(
        { meterWithConfiguredKey: false },
        { db: async () => broken, configuredKey: async () => undefined, logger: createLogger(SERVICES.authorizer, { logLevel: 'DEBUG' }) },
      );
      const key = `ck_${randomBytes(32).toString('base64url')}`;
      const err = await failing(event({ 'x-api-key': key })).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toBe('the API key could not be checked; the authorizer log says why');
      const log = written.join('');
      expect(log).toContain('the API key could not be checked');
      expect(log).not.toContain('S3cretPw0rd');
      expect(log).not.toContain(key);
    } finally {
      await broken.end();
    }
  });

  it('refuses an event that is not a REQUEST authorizer event', async () => {
    await expect(handler({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: 'x' })).rejects.toThrow(/could not be checked/);
    expect(written.join('')).toContain('not a REQUEST authorizer event');
  });
});
