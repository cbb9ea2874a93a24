/**
 * A lock file in the state folder, so two runs neither install into the same venv nor race for
 * port 4566; a lock left by a process that no longer exists is taken over.
 */
import { existsSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fetchHealth } from './health.ts';
import { DEFAULT_ENDPOINT } from './pinned.ts';

export async function tryLock(lockPath: string): Promise<boolean> {
  try {
    await writeFile(lockPath, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = await lockHolder(lockPath);
  if (!Number.isInteger(holder) || !processAlive(holder)) {
    // Left behind by a run that crashed.
    await unlink(lockPath).catch(() => {});
  }
  return false;
}

export async function releaseLock(lockPath: string): Promise<void> {
  await unlink(lockPath).catch(() => {});
}

/** Waits while the lock holder works: 'ready' once LocalStack answers, 'retry' when the lock is gone. */
export async function waitForOtherStarter(lockPath: string): Promise<'ready' | 'retry'> {
  // An install can take minutes; the holder itself enforces the readiness deadline.
  const deadline = Date.now() + 15 * 60_000;
  while (Date.now() < deadline) {
    if (await fetchHealth(DEFAULT_ENDPOINT)) return 'ready';
    if (!existsSync(lockPath)) return 'retry';
    const holder = await lockHolder(lockPath);
    if (Number.isInteger(holder) && !processAlive(holder)) return 'retry';
    await delay(500);
  }
  throw new Error(`timed out waiting for the process holding ${lockPath}`);
}

async function lockHolder(lockPath: string): Promise<number> {
  return Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
