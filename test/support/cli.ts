import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { projectPath } from '../../lib/constructs/candlekeep-function.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `npx candlekeep <args>` as a user runs it: the real entry (bin/candlekeep.js) in a child
 * process, from the project folder. A non-zero exit is a result, not an exception.
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  return runProcess(process.execPath, [projectPath('bin/candlekeep.js'), ...args], env, opts);
}

/** Runs a program from the project folder with the test environment plus `env` (undefined unsets); a non-zero exit is a result. */
export async function runProcess(
  file: string,
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: { timeoutMs?: number } = {},
): Promise<CliResult> {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
  try {
    const out = await promisify(execFile)(file, args, { cwd: projectPath(''), env: merged, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: out.stdout, stderr: out.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released), for "could not reach" checks. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs a Python script of the test support folder with the Python client's venv (global setup made it). */
export async function runPython(script: string, args: string[], timeout = 120_000): Promise<string> {
  const python = process.env.CANDLEKEEP_TEST_PYTHON;
  if (!python) throw new Error('CANDLEKEEP_TEST_PYTHON is not set: run integration tests through vitest (global setup)');
  const { stdout } = await promisify(execFile)(python, [projectPath(`test/support/${script}`), ...args], { timeout, maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}
