// The Node.js the project runs on. Its code needs Node.js >= 22.12 (JSON.parse source text access
// is what keeps exchange prices exact), while a fresh machine may ship an older one. Rather than fail minutes into a run, an older Node fetches Node 24 (the Lambda runtime)
// from the npm registry into .dev/node24 once and runs the command under it.
//
// Plain JavaScript on purpose: this file must run on the old Node before anything else can.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MINIMUM = '22.12';
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE_DIR = path.join(ROOT, '.dev', 'node24');

/** True when `version` (e.g. "20.20.2" or "v24.1.0") is at least `minimum`. */
export function isSupported(version, minimum = MINIMUM) {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  const [wantMajor, wantMinor] = minimum.split('.').map(Number);
  return major > wantMajor || (major === wantMajor && minor >= wantMinor);
}

/** The npm package that carries Node 24's binary for this machine. */
export function nodePackage(platform = process.platform, arch = process.arch) {
  const os = { linux: 'linux', darwin: 'darwin' }[platform];
  const cpu = { x64: 'x64', arm64: 'arm64' }[arch];
  if (!os || !cpu) {
    throw new Error(`no Node 24 package for ${platform}/${arch}: install Node.js ${MINIMUM} or newer yourself (https://nodejs.org)`);
  }
  return `node-${os}-${cpu}`;
}

/** The bin folder of Node 24 in .dev/node24, installed from the npm registry on first use. */
export function ensureNode24(log = (msg) => process.stderr.write(`${msg}\n`)) {
  const pkg = nodePackage();
  const bin = path.join(NODE_DIR, 'node_modules', pkg, 'bin');
  if (existsSync(path.join(bin, 'node'))) return bin;
  log(`Node.js ${process.versions.node} is older than the ${MINIMUM} candlekeep needs: installing Node 24 (${pkg}) from the npm registry into .dev/node24, once`);
  mkdirSync(NODE_DIR, { recursive: true });
  const npm = process.env.npm_execpath
    ? { cmd: process.execPath, args: [process.env.npm_execpath] }
    : { cmd: process.platform === 'win32' ? 'npm.cmd' : 'npm', args: [] };
  const out = spawnSync(npm.cmd, [...npm.args, 'install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', NODE_DIR, `${pkg}@24`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (out.status !== 0 || !existsSync(path.join(bin, 'node'))) {
    throw new Error(`could not install ${pkg}@24 from the npm registry; install Node.js ${MINIMUM} or newer (24 recommended) and run the command again`);
  }
  return bin;
}

/**
 * Runs `command args` with the project's tools on PATH, under this Node when it is new enough and
 * under Node 24 from .dev/node24 otherwise. Resolves with the command's exit code. Ctrl-C reaches
 * the command from the terminal; a signal sent to this process alone is passed on.
 */
export function run(command, args, { minimum = MINIMUM } = {}) {
  const dirs = [path.join(ROOT, 'node_modules', '.bin')];
  const env = { ...process.env };
  if (!isSupported(process.versions.node, minimum)) {
    dirs.unshift(ensureNode24());
    // A minimum raised by hand (CANDLEKEEP_NODE_MINIMUM, to try this path) is this process's
    // question only: the command under Node 24 must not ask it again.
    delete env.CANDLEKEEP_NODE_MINIMUM;
  }
  env.PATH = [...dirs, process.env.PATH ?? ''].join(path.delimiter);
  const child = spawn(command, args, { stdio: 'inherit', env });
  const forward = (signal) => child.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`could not start ${command}: ${err.message}`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1)));
  });
}

const signalNumbers = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15, SIGKILL: 9 };

/** `run`, as a program's last step: its exit code becomes this process's, a failure to start one line on stderr. */
export async function runAsMain(command, args) {
  try {
    process.exitCode = await run(command, args, { minimum: process.env.CANDLEKEEP_NODE_MINIMUM });
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
