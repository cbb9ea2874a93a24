/**
 * The Python client (python/) installed in a project-local venv with its test extras (pandas,
 * pyarrow, polars, DuckDB, pytest): the tests read exported files with it and run the client's
 * pytest suite against `candlekeep serve`. Created on first use; a stamp of python/pyproject.toml
 * skips pip while nothing changed.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pythonVersion, run, venvPython } from './localstack/venv.ts';

const MIN_PYTHON: readonly [number, number] = [3, 9];
const root = new URL('..', import.meta.url).pathname;

/** A Python of at least `min` (CANDLEKEEP_PYTHON, then python3, then python), for `purpose` in the error. */
export async function findPython(min: readonly [number, number] = MIN_PYTHON, purpose = 'the Python client'): Promise<string> {
  const seen: string[] = [];
  for (const candidate of [process.env.CANDLEKEEP_PYTHON, 'python3', 'python'].filter((c): c is string => !!c)) {
    const v = await pythonVersion(candidate);
    if (!v) continue;
    seen.push(`${candidate} (${v.join('.')})`);
    if (v[0] > min[0] || (v[0] === min[0] && v[1] >= min[1])) return candidate;
  }
  throw new Error(`${purpose} needs Python >= ${min.join('.')} with venv; found ${seen.join(', ') || 'none'}. Set CANDLEKEEP_PYTHON to one.`);
}

/** Creates or refreshes `.dev/python-venv` with `pip install -e python[test]`; returns its python. */
export async function ensurePythonClientVenv(opts: { log?: (m: string) => void } = {}): Promise<string> {
  const log = opts.log ?? (() => {});
  const stateDir = join(root, '.dev');
  const venvDir = join(stateDir, 'python-venv');
  const python = venvPython(venvDir);
  const stampPath = join(venvDir, '.candlekeep-install');
  const stamp = createHash('sha256').update(await readFile(join(root, 'python', 'pyproject.toml'))).digest('hex');
  if (existsSync(python)) {
    if (!(await pythonVersion(python))) await rm(venvDir, { recursive: true, force: true });
    else if ((await readFile(stampPath, 'utf8').catch(() => '')) === stamp) return python;
  }
  const logFile = join(stateDir, 'python-venv.log');
  const started = Date.now();
  if (!existsSync(python)) {
    const base = await findPython();
    log(`Python client: creating ${venvDir} with ${base}`);
    await run(base, ['-m', 'venv', venvDir], { logFile });
  }
  log(`Python client: pip install -e python[test] (about a minute the first time; output in ${logFile})`);
  await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', '-e', `${join(root, 'python')}[test]`], { logFile });
  await writeFile(stampPath, stamp);
  log(`Python client: installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return python;
}
