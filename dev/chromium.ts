/**
 * The headless Chromium the browser tests drive (through playwright-core): Debian's `chromium`
 * package. Playwright's own browser downloads are not needed. Found at CANDLEKEEP_CHROMIUM or the
 * usual paths; when missing on a Debian or Ubuntu machine where we may run apt-get, installed once.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/snap/bin/chromium'];

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.CANDLEKEEP_CHROMIUM;
  if (configured) {
    if (!executable(configured)) throw new Error(`CANDLEKEEP_CHROMIUM=${configured} is not an executable file`);
    return configured;
  }
  return CANDIDATES.find(executable);
}

const hasCommand = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * The Chromium to launch: found, or installed with `apt-get install chromium` (as root, or with
 * password-less sudo). Anything else stops with what to do.
 */
export function ensureChromium(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)): string {
  const found = findChromium();
  if (found) return found;
  const root = process.getuid?.() === 0;
  const sudo = !root && hasCommand('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  if (!hasCommand('apt-get') || (!root && !sudo)) {
    throw new Error(
      'the browser tests need Chromium: install Debian/Ubuntu\'s package (`sudo apt-get install -y chromium`), or set CANDLEKEEP_CHROMIUM to a Chromium or Chrome binary',
    );
  }
  log('Chromium not found: installing Debian\'s chromium package with apt-get (once; about a minute)');
  const run = (args: string[]) =>
    execFileSync(root ? 'apt-get' : 'sudo', root ? args : ['apt-get', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  run(['update', '-qq']);
  run(['install', '-y', '-qq', 'chromium']);
  const installed = findChromium();
  if (!installed) throw new Error('apt-get installed chromium, but no chromium binary is on the usual paths; set CANDLEKEEP_CHROMIUM');
  log(`Chromium installed at ${installed}`);
  return installed;
}
