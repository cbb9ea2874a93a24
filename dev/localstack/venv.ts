/**
 * The pinned localstack-core in a project-local Python venv (host mode needs no Docker): finds a
 * new enough Python, creates or repairs the venv, and installs with uv, falling back to pip.
 */
import { spawn, execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorText } from './errors.ts';
import { LOCALSTACK_VERSION } from './pinned.ts';

const execFileAsync = promisify(execFile);

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

export function venvPython(venvDir: string): string {
  return process.platform === 'win32' ? join(venvDir, 'Scripts', 'python.exe') : join(venvDir, 'bin', 'python');
}

export async function pythonVersion(python: string): Promise<[number, number] | undefined> {
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
export async function ensureVenv(stateDir: string, log: (m: string) => void): Promise<string> {
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
export async function run(
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
