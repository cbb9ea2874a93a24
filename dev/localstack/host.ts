/**
 * LocalStack as a process on this machine, from the venv, with the environment it needs outside a
 * container. The lock file makes a second run wait for the first instead of starting another.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorText } from './errors.ts';
import { externalHandle, fetchHealth, reuse, waitUntilReady, type LocalStackHandle } from './health.ts';
import { releaseLock, tryLock, waitForOtherStarter } from './lock.ts';
import { DEFAULT_PORT, LOCALSTACK_SERVICES, LOCALSTACK_VERSION } from './pinned.ts';
import { ensureVenv } from './venv.ts';

export interface HostOptions {
  log: (m: string) => void;
  /** The project's state folder: the venv, and this instance's state, log and start lock. */
  stateDir: string;
  readyTimeoutMs: number;
  /** Port on 127.0.0.1; default 4566. Another port gets its own state folder, log and lock. */
  port?: number;
}

/** Where an instance on `port` keeps its files: the default port's are the historical names. */
function instanceFiles(stateDir: string, port: number) {
  const suffix = port === DEFAULT_PORT ? '' : `-${port}`;
  return {
    lock: join(stateDir, `localstack${suffix}.lock`),
    fsRoot: join(stateDir, `localstack${suffix}-state`),
    log: join(stateDir, `localstack${suffix}.log`),
  };
}

/**
 * The environment LocalStack runs with on the host. It binds 127.0.0.1 only: 4.14.0's default
 * twisted gateway ignores the host part of GATEWAY_LISTEN and listens on every interface, which
 * would let anyone on the network read the dev secret and write candles; hypercorn honours it.
 */
export function hostEnvironment(port: number, fsRoot: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    OVERRIDE_IN_DOCKER: '0',
    GATEWAY_SERVER: 'hypercorn',
    GATEWAY_LISTEN: `127.0.0.1:${port}`,
    LOCALSTACK_HOST: `127.0.0.1:${port}`,
    SQS_ENDPOINT_STRATEGY: 'path',
    DNS_ADDRESS: '0',
    SKIP_SSL_CERT_DOWNLOAD: '1',
    DISABLE_EVENTS: '1',
    SERVICES: LOCALSTACK_SERVICES.join(','),
    FILESYSTEM_ROOT: fsRoot,
    // So the log file shows a failure's last words.
    PYTHONUNBUFFERED: '1',
  };
}

export async function startHost(opts: HostOptions): Promise<LocalStackHandle> {
  const { log, stateDir } = opts;
  const port = opts.port ?? DEFAULT_PORT;
  const endpoint = `http://127.0.0.1:${port}`;
  await mkdir(stateDir, { recursive: true });
  const files = instanceFiles(stateDir, port);

  for (;;) {
    if (await tryLock(files.lock)) break;
    log('LocalStack: another process is installing/starting LocalStack; waiting for it');
    if ((await waitForOtherStarter(files.lock)) === 'ready') return reuse(endpoint, opts.readyTimeoutMs);
  }

  try {
    const python = await ensureVenv(stateDir, log);
    return await spawnHost(python, { ...opts, endpoint, port, files });
  } finally {
    await releaseLock(files.lock);
  }
}

async function spawnHost(
  python: string,
  opts: HostOptions & { endpoint: string; port: number; files: ReturnType<typeof instanceFiles> },
): Promise<LocalStackHandle> {
  const { log, endpoint, files } = opts;
  const fsRoot = files.fsRoot;
  await mkdir(fsRoot, { recursive: true });
  const logPath = files.log;
  const logFd = openSync(logPath, 'a');
  writeSync(logFd, `\n=== ${new Date().toISOString()} candlekeep: starting LocalStack ${LOCALSTACK_VERSION} (host mode) ===\n`);

  const started = Date.now();
  let child: ChildProcess;
  try {
    child = spawn(python, ['-m', 'localstack.runtime.main'], {
      cwd: opts.stateDir,
      env: hostEnvironment(opts.port, fsRoot),
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
      // Held again while stopping: an unref'd child's exit event does not keep the event loop
      // alive, so a caller awaiting stop() at top level could end with that await unsettled
      // (exit code 13) when LocalStack needs the SIGKILL.
      child.ref();
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
    await waitUntilReady(endpoint, {
      services: LOCALSTACK_SERVICES,
      deadline: Date.now() + opts.readyTimeoutMs,
      aborted: () =>
        exited ? `LocalStack exited during startup (code ${exited.code}, signal ${exited.signal})` : undefined,
    });
  } catch (err) {
    await stop();
    // Lost a race for the port to an instance started elsewhere: use that one.
    // It may still be booting: wait for it as for any instance we reuse.
    if (exited && (await fetchHealth(endpoint))) return reuse(endpoint, opts.readyTimeoutMs);
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-25).join('\n');
    throw new Error(`${errorText(err)}\n--- tail of ${logPath} ---\n${tail}`);
  }
  log(
    `LocalStack: ${LOCALSTACK_VERSION} ready in host mode in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
      `(pid ${pid}, log ${logPath})`,
  );
  return { endpoint, mode: 'host', stop, pid };
}
