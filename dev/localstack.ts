/**
 * Finds or starts a LocalStack for tests and local development.
 *
 * Order of preference (see ../shared/LOCAL-AWS.md for the facts behind it):
 *   1. AWS_ENDPOINT_URL, when set: the caller chose an instance; we only check it answers.
 *   2. Anything already answering on 127.0.0.1:4566: parallel runs and a dev session share one.
 *   3. A usable Docker engine: the pinned image (Lambdas can run there).
 *   4. Host mode: the pinned PyPI package in a project-local venv, no Docker needed.
 *
 * Run directly (`npx tsx dev/localstack.ts`) to start one and keep it up until Ctrl-C.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, realpathSync, writeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The last community release that runs without an auth token (LOCAL-AWS.md). */
export const LOCALSTACK_VERSION = '4.14.0';
export const LOCALSTACK_DOCKER_IMAGE = `localstack/localstack:${LOCALSTACK_VERSION}`;
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:4566';

/** Everything the project talks to; the host-mode readiness check waits for each of these. */
export const LOCALSTACK_SERVICES = [
  'sqs',
  'secretsmanager',
  'events',
  'scheduler',
  'cloudformation',
  's3',
  'apigateway',
  'iam',
  'sts',
  'ssm',
  'logs',
  'cloudwatch',
  'kms',
  'sns',
] as const;

const PIP_SPEC = `localstack-core[runtime]==${LOCALSTACK_VERSION}`;

/**
 * localstack-core pins only boto3/botocore; its other dependencies float, and releases made after
 * 4.14.0 break it. Each line was found by starting 4.14.0 in a fresh venv:
 *  - cbor2 6 dropped the `cbor2._decoder` module the AWS protocol parser imports, so no runtime
 *    component loads ("No component plugins found in namespace localstack.runtime.components");
 *  - pyOpenSSL 26 removed `X509.add_extensions`, used to make the gateway's self-signed cert;
 *  - cryptography is held to the release line pyOpenSSL 25 supports;
 *  - localstack-twisted 26 imports `service_identity` without depending on it.
 */
const PIP_CONSTRAINTS = ['cbor2<6', 'pyopenssl<26', 'cryptography<47', 'localstack-twisted<26'];

/**
 * 4.14.0's metadata says Python >= 3.10, but its code uses PEP 695 generics (`class Q[T]`), which
 * only parse on 3.12+: on 3.11 every AWS call fails with "invalid syntax". Its image ships 3.13.
 */
const MIN_PYTHON: readonly [number, number] = [3, 12];

const HEALTH_PATH = '/_localstack/health';
const INIT_PATH = '/_localstack/init';
const READY_STATES = new Set(['available', 'running']);

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export type LocalStackMode = 'external' | 'docker' | 'host';

export interface LocalStackHandle {
  endpoint: string;
  mode: LocalStackMode;
  /** Stops what this call started; a no-op for an instance we only reused. */
  stop(): Promise<void>;
}

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
  const stateDir = resolve(opts.stateDir ?? join(REPO_ROOT, '.dev'));
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  const configured = process.env.AWS_ENDPOINT_URL?.trim();
  if (configured) {
    const endpoint = configured.replace(/\/+$/, '');
    if (!(await fetchHealth(endpoint))) {
      throw new Error(
        `AWS_ENDPOINT_URL is set to ${endpoint}, but nothing answers at ${endpoint}${HEALTH_PATH}. ` +
          'Start LocalStack there, or unset AWS_ENDPOINT_URL to let the project start one.',
      );
    }
    await waitUntilReady(endpoint, { services: [], deadline: Date.now() + readyTimeoutMs });
    log(`LocalStack: using AWS_ENDPOINT_URL ${endpoint}`);
    return externalHandle(endpoint);
  }

  if (await fetchHealth(DEFAULT_ENDPOINT)) {
    await waitUntilReady(DEFAULT_ENDPOINT, { services: [], deadline: Date.now() + readyTimeoutMs });
    log(`LocalStack: reusing the instance already running at ${DEFAULT_ENDPOINT}`);
    return externalHandle(DEFAULT_ENDPOINT);
  }

  if (await dockerUsable()) {
    return startDocker({ log, readyTimeoutMs });
  }

  log('LocalStack: no Docker engine; running it on the host');
  return startHost({ log, stateDir, readyTimeoutMs });
}

function externalHandle(endpoint: string): LocalStackHandle {
  return { endpoint, mode: 'external', stop: async () => {} };
}

// ---------------------------------------------------------------------------------------------
// Health

interface Health {
  services: Record<string, string>;
  version?: string;
}

async function fetchHealth(endpoint: string): Promise<Health | undefined> {
  try {
    // Generous: a running instance busy with a CloudFormation deploy can take seconds to answer,
    // and a missed answer would start a second LocalStack.
    const res = await fetch(endpoint + HEALTH_PATH, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as Partial<Health> | null;
    return { services: body?.services ?? {}, ...(body?.version ? { version: body.version } : {}) };
  } catch {
    return undefined;
  }
}

/** The init endpoint says whether boot finished; older or foreign builds may lack it. */
async function initReady(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint + INIT_PATH, { signal: AbortSignal.timeout(2_000) });
    if (res.status === 404) return true;
    if (!res.ok) return false;
    const body = (await res.json()) as { completed?: { READY?: boolean } } | null;
    return body?.completed?.READY ?? true;
  } catch {
    return false;
  }
}

async function waitUntilReady(
  endpoint: string,
  opts: { services: readonly string[]; deadline: number; aborted?: () => string | undefined },
): Promise<Health> {
  let last = 'no answer yet';
  for (;;) {
    const abortReason = opts.aborted?.();
    if (abortReason) throw new Error(abortReason);
    const health = await fetchHealth(endpoint);
    if (health) {
      const pending = opts.services.filter((s) => !READY_STATES.has(health.services[s] ?? ''));
      if (pending.length === 0 && (await initReady(endpoint))) return health;
      last = pending.length
        ? `waiting for ${pending.map((s) => `${s}=${health.services[s] ?? 'missing'}`).join(', ')}`
        : 'waiting for init READY';
    }
    if (Date.now() >= opts.deadline) {
      throw new Error(`LocalStack at ${endpoint} did not become ready in time (${last})`);
    }
    await delay(250);
  }
}

// ---------------------------------------------------------------------------------------------
// Docker

async function dockerUsable(): Promise<boolean> {
  try {
    // `docker info` talks to the engine; the client alone being installed is not enough.
    await execFileAsync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

async function startDocker(opts: { log: (m: string) => void; readyTimeoutMs: number }): Promise<LocalStackHandle> {
  const image = process.env.LOCALSTACK_IMAGE ?? LOCALSTACK_DOCKER_IMAGE;
  const name = `candlekeep-localstack-${process.pid}-${Date.now().toString(36)}`;
  const args = [
    'run', '-d', '--rm', '--name', name,
    '-p', '127.0.0.1:4566:4566',
    // Lambda is added here because only a Docker-hosted LocalStack can run functions.
    '-e', `SERVICES=${[...LOCALSTACK_SERVICES, 'lambda'].join(',')}`,
    '-e', 'SQS_ENDPOINT_STRATEGY=path',
    '-e', 'DISABLE_EVENTS=1',
    // LocalStack starts Lambda containers through the engine's socket.
    '-v', '/var/run/docker.sock:/var/run/docker.sock',
  ];
  // Name-only `-e` copies the value from our env, so the token never shows up in `ps`.
  if (process.env.LOCALSTACK_AUTH_TOKEN) args.push('-e', 'LOCALSTACK_AUTH_TOKEN');
  args.push(image);

  opts.log(`LocalStack: starting Docker container ${name} from ${image} (pulls the image on first use)`);
  const started = Date.now();
  let containerId: string;
  try {
    // No timeout: the first run includes the image pull.
    const { stdout } = await execFileAsync('docker', args, { env: process.env });
    containerId = stdout.trim();
  } catch (err) {
    // Another run may have bound 4566 between our health check and now.
    if (await fetchHealth(DEFAULT_ENDPOINT)) {
      await waitUntilReady(DEFAULT_ENDPOINT, { services: [], deadline: Date.now() + opts.readyTimeoutMs });
      return externalHandle(DEFAULT_ENDPOINT);
    }
    throw new Error(`docker run ${image} failed: ${errorText(err)}`);
  }

  const removeContainer = async (): Promise<void> => {
    await execFileAsync('docker', ['rm', '-f', containerId], { timeout: 60_000 }).catch(() => {});
  };
  // Follow the container's output while it boots: with --rm a container that exits (e.g. a newer
  // image without LOCALSTACK_AUTH_TOKEN: "license activation failed") takes its logs with it, and
  // the follower ending tells us at once instead of after the readiness deadline.
  const follower = spawn('docker', ['logs', '-f', containerId], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let containerGone = false;
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-6000);
  };
  follower.stdout.on('data', collect);
  follower.stderr.on('data', collect);
  follower.once('exit', () => {
    containerGone = true;
  });
  follower.once('error', () => {});
  try {
    await waitUntilReady(DEFAULT_ENDPOINT, {
      services: LOCALSTACK_SERVICES,
      deadline: Date.now() + opts.readyTimeoutMs,
      aborted: () => (containerGone ? `LocalStack container ${name} exited during startup` : undefined),
    });
  } catch (err) {
    await removeContainer();
    throw new Error(`${errorText(err)}\n--- docker logs ${name} ---\n${output.split('\n').slice(-30).join('\n')}`);
  } finally {
    follower.kill();
  }
  opts.log(`LocalStack: Docker container ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { endpoint: DEFAULT_ENDPOINT, mode: 'docker', stop: removeContainer };
}

// ---------------------------------------------------------------------------------------------
// Host mode

async function startHost(opts: {
  log: (m: string) => void;
  stateDir: string;
  readyTimeoutMs: number;
}): Promise<LocalStackHandle> {
  const { log, stateDir } = opts;
  await mkdir(stateDir, { recursive: true });
  const lockPath = join(stateDir, 'localstack.lock');

  // The lock keeps two runs from installing into the same venv or racing for port 4566.
  for (;;) {
    if (await tryLock(lockPath)) break;
    log('LocalStack: another process is installing/starting LocalStack; waiting for it');
    const outcome = await waitForOtherStarter(lockPath);
    if (outcome === 'ready') {
      await waitUntilReady(DEFAULT_ENDPOINT, { services: [], deadline: Date.now() + opts.readyTimeoutMs });
      return externalHandle(DEFAULT_ENDPOINT);
    }
  }

  try {
    const python = await ensureVenv(stateDir, log);
    return await spawnHost(python, opts);
  } finally {
    await unlink(lockPath).catch(() => {});
  }
}

async function tryLock(lockPath: string): Promise<boolean> {
  try {
    await writeFile(lockPath, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
  if (!Number.isInteger(holder) || !processAlive(holder)) {
    // Left behind by a run that crashed.
    await unlink(lockPath).catch(() => {});
  }
  return false;
}

/** Waits while the lock holder works: 'ready' once LocalStack answers, 'retry' when the lock is gone. */
async function waitForOtherStarter(lockPath: string): Promise<'ready' | 'retry'> {
  // An install can take minutes; the holder itself enforces the readiness deadline.
  const deadline = Date.now() + 15 * 60_000;
  while (Date.now() < deadline) {
    if (await fetchHealth(DEFAULT_ENDPOINT)) return 'ready';
    if (!existsSync(lockPath)) return 'retry';
    const holder = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(holder) && !processAlive(holder)) return 'retry';
    await delay(500);
  }
  throw new Error(`timed out waiting for the process holding ${lockPath}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function venvPython(venvDir: string): string {
  return process.platform === 'win32' ? join(venvDir, 'Scripts', 'python.exe') : join(venvDir, 'bin', 'python');
}

async function pythonVersion(python: string): Promise<[number, number] | undefined> {
  try {
    const { stdout } = await execFileAsync(
      python,
      ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
      { timeout: 15_000 },
    );
    const [major, minor] = stdout.trim().split('.').map(Number);
    return major !== undefined && minor !== undefined ? [major, minor] : undefined;
  } catch {
    return undefined;
  }
}

function newEnough(v: [number, number]): boolean {
  return v[0] > MIN_PYTHON[0] || (v[0] === MIN_PYTHON[0] && v[1] >= MIN_PYTHON[1]);
}

/** A Python >= 3.12: LOCALSTACK_PYTHON, then versioned names on PATH, then pyenv's installs. */
async function findPython(): Promise<string> {
  const candidates: string[] = [];
  if (process.env.LOCALSTACK_PYTHON) candidates.push(process.env.LOCALSTACK_PYTHON);
  candidates.push('python3.13', 'python3.12', 'python3.14', 'python3', 'python');
  // pyenv shims refuse versions that are installed but not selected, which is common.
  try {
    const { stdout } = await execFileAsync('pyenv', ['root'], { timeout: 10_000 });
    const versionsDir = join(stdout.trim(), 'versions');
    const versions = (await readdir(versionsDir))
      .filter((v) => /^3\.\d+\.\d+$/.test(v))
      .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    candidates.push(...versions.map((v) => join(versionsDir, v, 'bin', 'python3')));
  } catch {
    // no pyenv
  }
  const seen: string[] = [];
  for (const candidate of candidates) {
    const v = await pythonVersion(candidate);
    if (!v) continue;
    seen.push(`${candidate} (${v.join('.')})`);
    if (newEnough(v)) return candidate;
  }
  throw new Error(
    `LocalStack ${LOCALSTACK_VERSION} needs Python >= ${MIN_PYTHON.join('.')}; found ` +
      `${seen.length ? seen.join(', ') : 'no Python'}. Install one, set LOCALSTACK_PYTHON to it, ` +
      'or run a Docker engine.',
  );
}

/** Creates/repairs `<stateDir>/localstack-venv`; returns its python. A stamp skips pip when current. */
async function ensureVenv(stateDir: string, log: (m: string) => void): Promise<string> {
  const venvDir = join(stateDir, 'localstack-venv');
  const python = venvPython(venvDir);
  const stampPath = join(venvDir, '.candlekeep-install.json');
  const stamp = JSON.stringify({ spec: PIP_SPEC, constraints: PIP_CONSTRAINTS });

  if (existsSync(python)) {
    const v = await pythonVersion(python);
    if (!v || !newEnough(v)) {
      log(`LocalStack: ${venvDir} uses Python ${v?.join('.') ?? '(broken)'}; recreating it with >= ${MIN_PYTHON.join('.')}`);
      await rm(venvDir, { recursive: true, force: true });
    } else if ((await readFile(stampPath, 'utf8').catch(() => '')) === stamp) {
      return python;
    }
  }

  const pipLog = join(stateDir, 'localstack-pip.log');
  if (!existsSync(python)) {
    const base = await findPython();
    log(`LocalStack: creating ${venvDir} with ${base}`);
    await run(base, ['-m', 'venv', venvDir], { logFile: pipLog });
  }
  const constraintsPath = join(venvDir, 'candlekeep-constraints.txt');
  await writeFile(constraintsPath, PIP_CONSTRAINTS.join('\n') + '\n');
  const started = Date.now();
  // uv (itself a small wheel from PyPI) installs the ~80 packages in seconds where pip takes about
  // a minute; that is most of a first `npm run dev`. pip stays the fallback (e.g. a pip-only mirror).
  const viaUv = await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', 'uv'], { logFile: pipLog })
    .then(() => {
      log(`LocalStack: installing ${PIP_SPEC} with uv (output in ${pipLog})`);
      return run(python, ['-m', 'uv', 'pip', 'install', '--python', python, '-c', constraintsPath, PIP_SPEC], { logFile: pipLog });
    })
    .then(
      () => true,
      (err: unknown) => {
        log(`LocalStack: uv was not usable (${errorText(err).split('\n')[0]}); falling back to pip`);
        return false;
      },
    );
  if (!viaUv) {
    log(`LocalStack: pip install ${PIP_SPEC} (a few minutes the first time; output in ${pipLog})`);
    await run(
      python,
      ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', '-c', constraintsPath, PIP_SPEC],
      {
        logFile: pipLog,
        // pip prints ~150 "Collecting" lines; a count every 25 shows progress without the noise.
        onLine: (() => {
          let collected = 0;
          return (line: string) => {
            if (line.startsWith('Collecting ') && ++collected % 25 === 0) log(`  ... ${collected} packages resolved`);
            if (line.startsWith('Installing collected packages')) log(`  ... installing ${collected} packages`);
          };
        })(),
      },
    ).catch((err: unknown) => {
      throw new Error(`${errorText(err)}\nIf ${venvDir} is damaged, delete it and try again.`);
    });
  }
  await writeFile(stampPath, stamp);
  log(`LocalStack: installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return python;
}

/** Runs a command, appending its output to logFile and handing each output line to onLine. */
async function run(
  cmd: string,
  args: string[],
  opts: { logFile: string; onLine?: (line: string) => void },
): Promise<void> {
  const fd = openSync(opts.logFile, 'a');
  writeSync(fd, `\n$ ${cmd} ${args.join(' ')}\n`);
  try {
    await new Promise<void>((resolvePromise, reject) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let tail = '';
      const onData = (chunk: Buffer): void => {
        writeSync(fd, chunk);
        const text = chunk.toString();
        tail = (tail + text).slice(-4000);
        if (opts.onLine) for (const line of text.split('\n')) opts.onLine(line.trim());
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolvePromise() : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${tail}`)),
      );
    });
  } finally {
    closeSync(fd);
  }
}

async function spawnHost(
  python: string,
  opts: { log: (m: string) => void; stateDir: string; readyTimeoutMs: number },
): Promise<LocalStackHandle> {
  const { log, stateDir } = opts;
  const fsRoot = join(stateDir, 'localstack-state');
  await mkdir(fsRoot, { recursive: true });
  const logPath = join(stateDir, 'localstack.log');
  const logFd = openSync(logPath, 'a');
  writeSync(logFd, `\n=== ${new Date().toISOString()} candlekeep: starting LocalStack ${LOCALSTACK_VERSION} (host mode) ===\n`);

  const started = Date.now();
  let child: ChildProcess;
  try {
    child = spawn(python, ['-m', 'localstack.runtime.main'], {
      cwd: stateDir,
      env: {
        ...process.env,
        OVERRIDE_IN_DOCKER: '0',
        GATEWAY_LISTEN: '127.0.0.1:4566',
        LOCALSTACK_HOST: '127.0.0.1:4566',
        SQS_ENDPOINT_STRATEGY: 'path',
        DNS_ADDRESS: '0',
        SKIP_SSL_CERT_DOWNLOAD: '1',
        DISABLE_EVENTS: '1',
        SERVICES: LOCALSTACK_SERVICES.join(','),
        FILESYSTEM_ROOT: fsRoot,
        // So the log file shows a failure's last words.
        PYTHONUNBUFFERED: '1',
      },
      // Own process group: LocalStack may fork helpers, and stop() signals the whole group.
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
  } finally {
    closeSync(logFd);
  }

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolveExit();
    });
    child.once('error', (err) => {
      exited = { code: null, signal: null };
      log(`LocalStack: could not spawn ${python}: ${err.message}`);
      resolveExit();
    });
  });
  // Tracked but not holding the event loop open; the exit hook stops it if the caller never does.
  child.unref();
  const pid = child.pid;
  const killGroup = (signal: NodeJS.Signals): void => {
    if (pid === undefined || exited) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  };
  const onExit = (): void => killGroup('SIGTERM');
  process.once('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.removeListener('exit', onExit);
      if (exited) return;
      killGroup('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), 20_000);
      });
      if (await Promise.race([exitPromise.then(() => false), timedOut])) {
        log('LocalStack: did not exit within 20 s of SIGTERM; sending SIGKILL');
        killGroup('SIGKILL');
        await exitPromise;
      }
      clearTimeout(timer);
    })();
    return stopping;
  };

  try {
    await waitUntilReady(DEFAULT_ENDPOINT, {
      services: LOCALSTACK_SERVICES,
      deadline: Date.now() + opts.readyTimeoutMs,
      aborted: () =>
        exited ? `LocalStack exited during startup (code ${exited.code}, signal ${exited.signal})` : undefined,
    });
  } catch (err) {
    await stop();
    // Lost a race for the port to an instance started elsewhere: use that one.
    if (exited && (await fetchHealth(DEFAULT_ENDPOINT))) return externalHandle(DEFAULT_ENDPOINT);
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-25).join('\n');
    throw new Error(`${errorText(err)}\n--- tail of ${logPath} ---\n${tail}`);
  }
  log(
    `LocalStack: ${LOCALSTACK_VERSION} ready in host mode in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
      `(pid ${pid}, log ${logPath})`,
  );
  return { endpoint: DEFAULT_ENDPOINT, mode: 'host', stop };
}

// ---------------------------------------------------------------------------------------------

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function errorText(err: unknown): string {
  if (err && typeof err === 'object' && 'stderr' in err && typeof err.stderr === 'string' && err.stderr.trim()) {
    return err.stderr.trim();
  }
  return err instanceof Error ? err.message : String(err);
}

/** CLI: start (or find) LocalStack and keep it up until Ctrl-C. */
export async function main(): Promise<void> {
  const t0 = Date.now();
  const ls = await ensureLocalStack({ log: (m) => console.log(m) });
  console.log(`LocalStack ${ls.mode} at ${ls.endpoint} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (ls.mode === 'external') {
    console.log('It was already running; nothing to keep alive here.');
    return;
  }
  console.log('Press Ctrl-C to stop it.');
  // A pending timer keeps the process alive; the child process itself is unref'd.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const shutdown = (signal: string): void => {
    console.log(`\n${signal}: stopping LocalStack`);
    ls.stop().then(
      () => {
        clearInterval(keepAlive);
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

/** True when this file is the program being run (`tsx dev/localstack.ts`), not an import. */
export function isEntryPoint(moduleUrl: string = import.meta.url): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
