import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateSecretCommand, DeleteSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createMigrateHandler, liveMigrateDeps, MIGRATIONS_DIGEST_PROPERTY, SEED_DIGEST_PROPERTY, seedDigest } from '../../functions/migrate/migrate-lambda.ts';
import { createPool } from '../../functions/store/db.ts';
import { MIGRATIONS_DIR, migrationsDigest, readMigrations } from '../../functions/store/migrate.ts';
import { emptyDatabase, uniqueName } from '../support/db.ts';

/** CloudFormation's side of a custom resource: a real HTTP server taking the response PUTs. */
let server: Server;
let responseUrl: string;
const responses: Record<string, unknown>[] = [];
let secrets: SecretsManagerClient;
let digest: string;

beforeAll(async () => {
  secrets = new SecretsManagerClient({});
  digest = migrationsDigest(await readMigrations());
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      responses.push({ method: req.method, contentType: req.headers['content-type'], ...(JSON.parse(body) as Record<string, unknown>) });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  responseUrl = `http://127.0.0.1:${address.port}/response`;
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  secrets?.destroy();
});

/** A LocalStack secret holding `value`, deleted after the test. */
async function secretHolding(value: string): Promise<string> {
  const out = await secrets.send(new CreateSecretCommand({ Name: uniqueName('ck-migrate'), SecretString: value }));
  onTestFinished(async () => {
    await secrets.send(new DeleteSecretCommand({ SecretId: out.ARN, ForceDeleteWithoutRecovery: true }));
  });
  return out.ARN!;
}

/** The handler as its entry builds it in AWS: the URL from the secret, through the Neon driver. */
function handlerFor(secretArn: string, migrationsDir = MIGRATIONS_DIR, seedPath?: string) {
  return createMigrateHandler({ migrationsDir, seedPath }, liveMigrateDeps({ DATABASE_SECRET_ARN: secretArn, CANDLEKEEP_WS_PROXY: process.env.CANDLEKEEP_WS_PROXY }));
}

const context = { functionName: 'migrate', awsRequestId: 'test', getRemainingTimeInMillis: () => 120_000 } as unknown as Context;

function request(type: 'Create' | 'Update' | 'Delete', migrationsDigest: string, seed?: string) {
  return {
    RequestType: type,
    ResponseURL: `${responseUrl}?request=${responses.length}`,
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/Candlekeep-test/1',
    RequestId: uniqueName('req'),
    LogicalResourceId: 'Migrations',
    ...(type === 'Create' ? {} : { PhysicalResourceId: 'candlekeep-migrations' }),
    ResourceType: 'Custom::CandlekeepMigrations',
    ResourceProperties: {
      ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:migrate',
      [MIGRATIONS_DIGEST_PROPERTY]: migrationsDigest,
      ...(seed === undefined ? {} : { [SEED_DIGEST_PROPERTY]: seed }),
    },
  };
}

/** Invokes the handler with a CloudFormation request and returns what CloudFormation received. */
async function deploy(handler: ReturnType<typeof handlerFor>, type: 'Create' | 'Update' | 'Delete', d = digest, seed?: string): Promise<Record<string, unknown>> {
  const before = responses.length;
  await handler(request(type, d, seed), context);
  expect(responses.length).toBe(before + 1);
  return responses.at(-1)!;
}

async function appliedMigrations(url: string): Promise<string[]> {
  const pool = createPool(url, { max: 1 });
  try {
    const { rows } = await pool.query<{ name: string }>("SELECT name FROM schema_migrations ORDER BY name");
    return rows.map((r) => r.name);
  } catch (err) {
    if (/schema_migrations" does not exist/.test((err as Error).message)) return [];
    throw err;
  } finally {
    await pool.end();
  }
}

describe('the migration custom resource, against real PostgreSQL', () => {
  it('migrates a fresh database on Create, answers SUCCESS with no content type, and finds nothing to do on the next Update', async () => {
    const db = await emptyDatabase();
    const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })));
    const files = (await readMigrations()).map((f) => f.name);

    const created = await deploy(handler, 'Create');
    expect(created).toMatchObject({ method: 'PUT', contentType: '', Status: 'SUCCESS', PhysicalResourceId: 'candlekeep-migrations', LogicalResourceId: 'Migrations', Data: { Applied: files.length } });
    expect(created.Reason).toBe(`applied ${files.join(', ')}`);
    expect(await appliedMigrations(db.url)).toEqual(files);

    const updated = await deploy(handler, 'Update');
    expect(updated).toMatchObject({ Status: 'SUCCESS', Data: { Applied: 0 }, Reason: `all ${files.length} migrations were already applied` });
  });

  it('fails the deploy on a failing migration, keeping the ones before it and rolling the failed one back', async () => {
    const db = await emptyDatabase();
    const dir = await mkdtemp(path.join(tmpdir(), 'ck-migrations-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await writeFile(path.join(dir, '0099_broken.sql'), 'CREATE TABLE half_done (x int);\nSELECT no_such_function();\n');
    const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })), dir);

    const failed = await deploy(handler, 'Update', migrationsDigest(await readMigrations(dir)));
    expect(failed.Status).toBe('FAILED');
    expect(failed.Reason).toMatch(/migration 0099_broken\.sql failed and was rolled back: function no_such_function\(\) does not exist/);
    const applied = await appliedMigrations(db.url);
    expect(applied).toEqual((await readMigrations()).map((f) => f.name));
    const pool = createPool(db.url, { max: 1 });
    onTestFinished(() => pool.end());
    expect((await pool.query<{ t: string | null }>("SELECT to_regclass('public.half_done')::text AS t")).rows[0]!.t).toBeNull();

    // Invoked directly, the same failure is the invocation's error.
    await expect(handler({}, context)).rejects.toThrow(/0099_broken\.sql failed/);
  });

  it('fails the deploy when the database cannot be reached, without quoting the password', async () => {
    const password = 'n0t-the-Real-pass';
    const handler = handlerFor(await secretHolding(JSON.stringify({ url: `postgres://postgres:${password}@127.0.0.1:1/candlekeep` })));
    const failed = await deploy(handler, 'Create');
    expect(failed.Status).toBe('FAILED');
    expect(String(failed.Reason).length).toBeGreaterThan(0);
    expect(JSON.stringify(failed)).not.toContain(password);
  });

  it('succeeds without migrating while the secret holds no URL yet (the generated placeholder), and says so', async () => {
    const handler = handlerFor(await secretHolding('Xb7#generated-placeholder-text-9Qz'));
    const done = await deploy(handler, 'Create');
    expect(done).toMatchObject({ Status: 'SUCCESS', Data: { Applied: 0 } });
    expect(done.Reason).toMatch(/^database not configured \(.*holds no postgres:\/\/ URL.*\); put the URL in the secret, then invoke this function to migrate$/);
    await expect(handler({}, context)).resolves.toMatchObject({ skipped: 'database not configured' });
  });

  it('applies nothing on a request for other migrations (a rollback) or on Delete', async () => {
    const db = await emptyDatabase();
    const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })));
    const rollback = await deploy(handler, 'Update', 'f'.repeat(64));
    expect(rollback.Status).toBe('SUCCESS');
    expect(rollback.Reason).toMatch(/not this bundle's .* nothing applied, migrations only go forward/);
    const deleted = await deploy(handler, 'Delete');
    expect(deleted).toMatchObject({ Status: 'SUCCESS', Reason: 'nothing to undo: migrations stay applied and the data stays' });
    expect(await appliedMigrations(db.url)).toEqual([]);
  });

  describe('seed markets', () => {
    /** A seed file as the stack bundles it, and its digest. */
    async function seedFile(text: string): Promise<{ path: string; digest: string }> {
      const dir = await mkdtemp(path.join(tmpdir(), 'ck-seed-'));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      await writeFile(path.join(dir, 'seed-markets.json'), text);
      return { path: path.join(dir, 'seed-markets.json'), digest: seedDigest(text) };
    }

    async function followed(url: string): Promise<string[]> {
      const pool = createPool(url, { max: 1 });
      try {
        const { rows } = await pool.query<{ m: string }>(
          "SELECT ms.exchange || ' ' || ms.symbol || ' ' || s.interval AS m FROM market_series ms JOIN series s ON s.id = ms.series_id ORDER BY 1",
        );
        return rows.map((r) => r.m);
      } finally {
        await pool.end();
      }
    }

    const seed = [
      { exchange: 'binance', symbol: 'BTC/USDT', intervals: ['1m', '1h'], start: '2024-01-01' },
      { exchange: 'kraken', symbol: 'ETH/USD', intervals: ['1d'], start: '2023-06-01' },
    ];

    it('follows the seed markets after migrating, on Create and when invoked directly, and adds none twice', async () => {
      const db = await emptyDatabase();
      const file = await seedFile(JSON.stringify(seed));
      const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })), MIGRATIONS_DIR, file.path);
      const created = await deploy(handler, 'Create', digest, file.digest);
      expect(created).toMatchObject({ Status: 'SUCCESS', Data: { SeededMarkets: 2 } });
      expect(created.Reason).toMatch(/; 2 new seed market\(s\) followed$/);
      expect(await followed(db.url)).toEqual(['binance BTC/USDT 1h', 'binance BTC/USDT 1m', 'kraken ETH/USD 1d']);
      const again = await deploy(handler, 'Update', digest, file.digest);
      expect(again).toMatchObject({ Status: 'SUCCESS', Data: { Applied: 0, SeededMarkets: 0 } });
      await expect(handler({}, context)).resolves.toMatchObject({ seededMarkets: 0, applied: [] });
    });

    it('applies the seed when invoked directly after the URL was put in the secret', async () => {
      const db = await emptyDatabase();
      const file = await seedFile(JSON.stringify(seed));
      const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })), MIGRATIONS_DIR, file.path);
      await expect(handler({}, context)).resolves.toMatchObject({ seededMarkets: 2 });
      expect(await followed(db.url)).toHaveLength(3);
    });

    it('fails the deploy on a bad seed file before migrating anything, naming the entry', async () => {
      const db = await emptyDatabase();
      const bad = JSON.stringify([{ ...seed[0], intervals: ['2m'] }]);
      const file = await seedFile(bad);
      const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })), MIGRATIONS_DIR, file.path);
      const failed = await deploy(handler, 'Create', digest, file.digest);
      expect(failed.Status).toBe('FAILED');
      expect(failed.Reason).toMatch(/\[0\]\.intervals\[0\].*2m/);
      expect(await appliedMigrations(db.url)).toEqual([]);
    });

    it('applies nothing when the request names another seed than the bundled one (a rollback)', async () => {
      const db = await emptyDatabase();
      const file = await seedFile(JSON.stringify(seed));
      const handler = handlerFor(await secretHolding(JSON.stringify({ url: db.url })), MIGRATIONS_DIR, file.path);
      const rollback = await deploy(handler, 'Update', digest, 'e'.repeat(64));
      expect(rollback).toMatchObject({ Status: 'SUCCESS', Reason: expect.stringMatching(/seed markets e{12} are not this bundle's/) });
      expect(await appliedMigrations(db.url)).toEqual([]);
    });
  });
});
