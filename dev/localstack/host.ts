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
import { DEFAULT_ENDPOINT, LOCALSTACK_SERVICES, LOCALSTACK_VERSION } from './pinned.ts';
import { ensureVenv } from './venv.ts';

export async function startHost(opts: {
  log: (m: string) => void;
  stateDir: string;
  readyTimeoutMs: number;
}): Promise<LocalStackHandle> {
  const { log, stateDir } = opts;
  await mkdir(stateDir, { recursive: true });
  const lockPath = join(stateDir, 'localstack.lock');

  for (;;) {
    if (await tryLock(lockPath)) break;
    log('LocalStack: another process is installing/starting LocalStack; waiting for it');
    if ((await waitForOtherStarter(lockPath)) === 'ready') return reuse(DEFAULT_ENDPOINT, opts.readyTimeoutMs);
  }

  try {
    const python = await ensureVenv(stateDir, log);
    return await spawnHost(python, opts);
  } finally {
    await releaseLock(lockPath);
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
