import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import { closedPort } from '../../support/cli.ts';
import { API_KEY, useApi } from '../api/support.ts';

const run = promisify(execFile);
const npm = (args: string[], cwd: string) => run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });

/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the tarball
 * installed into a fresh folder, and the client imported from node_modules by plain Node (no TypeScript
 * loader) and by the TypeScript compiler.
 */
describe('the packed package', () => {
  const api = useApi();
  let folder: string;

  beforeAll(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'candlekeep-consumer-'));
    await npm(['pack', '--pack-destination', folder], projectPath(''));
    const tarball = (await readdir(folder)).find((f) => f.endsWith('.tgz'));
    expect(tarball, 'npm pack wrote a tarball').toBeDefined();
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await npm(['install', '--prefer-offline', '--ignore-scripts', `./${tarball}`, '@types/node@24'], folder);
  }, 300_000);
  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('imports the client as JavaScript from node_modules and calls the API with it', async () => {
    const gone = await closedPort();
    const script = `
      import { CandlekeepClient, CandlekeepConnectionError, CandlekeepError } from 'candlekeep';
      const ck = new CandlekeepClient({ baseUrl: process.env.URL, apiKey: process.env.KEY });
      const health = await ck.health();
      const bad = await ck.candles({ exchange: 'binance', symbol: 'BTC/USDT', interval: '2m' }).catch((e) => e);
      const gone = await new CandlekeepClient({ baseUrl: process.env.GONE, apiKey: 'k' }).markets().catch((e) => e);
      console.log(JSON.stringify({ health: health.status, bad: bad instanceof CandlekeepError && bad.status, gone: gone instanceof CandlekeepConnectionError && gone.endpoint }));
    `;
    const out = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: folder, env: { ...process.env, URL: api.url, KEY: API_KEY, GONE: `http://127.0.0.1:${gone}` }, timeout: 60_000 });
    expect(JSON.parse(out.stdout)).toEqual({ health: 'ok', bad: 400, gone: `http://127.0.0.1:${gone}/v1/markets` });
  });

  it('type-checks a TypeScript file against the declarations it ships', async () => {
    await writeFile(
      path.join(folder, 'check.ts'),
      `import { CandlekeepClient, type Candle, type CandlePage } from 'candlekeep';
const ck = new CandlekeepClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: 'k' });
const page: Promise<CandlePage> = ck.candles({ exchange: 'binance', symbol: 'BTC/USDT', interval: '1h' });
const close = (c: Candle): string | null => c.close;
// @ts-expect-error the declarations know the exchanges: this is not one
void ck.candles({ exchange: 'nasdaq', symbol: 'BTC/USDT', interval: '1h' });
void page;
void close;
`,
    );
    await writeFile(
      path.join(folder, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['check.ts'] }),
    );
    const tsc = await run(process.execPath, [projectPath('node_modules/typescript/bin/tsc'), '-p', folder], { cwd: folder, timeout: 120_000 }).catch((e: { stdout?: string; code?: number }) => e);
    expect((tsc as { stdout?: string }).stdout ?? '').toBe('');
    expect((tsc as { code?: number }).code ?? 0).toBe(0);
  });

  it('ships the compiled client and its declarations, not the repository\'s tests or dev state', async () => {
    const { stdout } = await npm(['pack', '--dry-run', '--json', '--ignore-scripts'], projectPath(''));
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['dist/client/index.js', 'dist/client/index.d.ts', 'dist/functions/api/schemas.d.ts', 'bin/candlekeep.js', 'migrations/0001_candles.sql']));
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('.dev') || f.startsWith('node_modules/'))).toEqual([]);
  });
});
