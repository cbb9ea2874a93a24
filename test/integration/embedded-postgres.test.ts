import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedMajor, embeddedPackage, ensurePostgres, LEGACY_PASSWORD, passwordFileFor, type LocalPostgres } from '../../dev/postgres.ts';

/**
 * The embedded server's password, on servers of this file's own (their own data folders and
 * ports), so the embedded server other local runs share is never touched.
 */
let root: string;
const started: LocalPostgres[] = [];
const savedUrl = process.env.DATABASE_URL;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ck-embedded-pg-'));
  // As root, the server runs as the `postgres` user, which must reach the data folder inside.
  await chmod(root, 0o755);
  // Without DATABASE_URL, ensurePostgres manages an embedded server (this file runs in its own process).
  delete process.env.DATABASE_URL;
});
afterAll(async () => {
  for (const s of started.reverse()) await s.stop().catch(() => {});
  if (savedUrl !== undefined) process.env.DATABASE_URL = savedUrl;
  await rm(root, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function start(dataDir: string, port: number): Promise<LocalPostgres> {
  const server = await ensurePostgres({ dataDir, port });
  started.push(server);
  return server;
}

async function stop(server: LocalPostgres): Promise<void> {
  started.splice(started.indexOf(server), 1);
  await server.stop();
}

async function logIn(port: number, password: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await client.connect();
  return client;
}

async function query(url: string, text: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('the embedded PostgreSQL password', () => {
  it('is random per data folder, kept beside it with mode 0600, and the old fixed one is refused', { timeout: 120_000 }, async () => {
    const dataDir = path.join(root, 'fresh');
    const port = await freePort();
    const server = await start(dataDir, port);
    const file = passwordFileFor(dataDir);
    expect(file).toBe(`${dataDir}-password`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const password = (await readFile(file, 'utf8')).trim();
    expect(password).toMatch(/^[\w-]{32}$/);
    expect(new URL(server.url).password).toBe(password);
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await expect(logIn(port, LEGACY_PASSWORD)).rejects.toThrow(/password authentication failed/);

    // A second run joining the running server reads the same password.
    const joined = await ensurePostgres({ dataDir, port });
    expect(joined.url).toBe(server.url);
    await stop(server);
  });

  it('moves a data folder initialised with the old fixed password to a random one, keeping its data', { timeout: 120_000 }, async () => {
    const dataDir = path.join(root, 'legacy');
    const port = await freePort();
    // The data folder as earlier versions left it: initialised with the fixed password, no password file,
    // by the same major the run uses (CANDLEKEEP_PG_MAJOR), which is the one `start` then runs on it.
    const major = embeddedMajor();
    const EmbeddedPostgres = await embeddedPackage(major, () => {});
    const legacy = new EmbeddedPostgres({
      databaseDir: dataDir,
      user: 'postgres',
      password: LEGACY_PASSWORD,
      port,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      // As ensurePostgres initialises: initdb before 18 has no such flag (and checksums off by default).
      initdbFlags: major >= 18 ? ['--no-data-checksums'] : [],
    });
    await legacy.initialise();
    await legacy.start();
    const before = await logIn(port, LEGACY_PASSWORD);
    await before.query('CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$user data$$)');
    await before.end();
    await legacy.stop();

    const server = await start(dataDir, port);
    const file = passwordFileFor(dataDir);
    const password = (await readFile(file, 'utf8')).trim();
    expect(password).not.toBe(LEGACY_PASSWORD);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await query(server.url, 'SELECT v FROM kept')).toEqual([{ v: 'user data' }]);
    await expect(logIn(port, LEGACY_PASSWORD)).rejects.toThrow(/password authentication failed/);
    await stop(server);

    // The next start uses the stored password: no second migration, same data.
    const again = await start(dataDir, port);
    expect(again.url).toBe(server.url);
    expect(await query(again.url, 'SELECT v FROM kept')).toEqual([{ v: 'user data' }]);
    await stop(again);
  });
});

describe('a DATABASE_URL nothing answers at', () => {
  it('is refused up front with the address and the reason, never the password', async () => {
    const port = await freePort();
    process.env.DATABASE_URL = `postgres://postgres:s3cret-pw@127.0.0.1:${port}/postgres`;
    try {
      const err = (await ensurePostgres().then(
        () => undefined,
        (e: unknown) => e,
      )) as Error | undefined;
      expect(err?.message).toBe(
        `DATABASE_URL names a server at 127.0.0.1:${port}, but it cannot be reached (ECONNREFUSED): start that PostgreSQL, or unset DATABASE_URL to use the embedded one`,
      );
      expect(err?.message).not.toContain('s3cret');
    } finally {
      delete process.env.DATABASE_URL;
    }
  });
});
