/**
 * Builds the web console: the page, its stylesheet, and one ES module bundled by esbuild with
 * lightweight-charts taken from node_modules (nothing is loaded from a CDN at run time).
 * `candlekeep serve` and `npm run dev` serve the result from memory; the CDK stack uploads it.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, buildSync, type BuildOptions } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The URL path the console lives under, locally and behind CloudFront. */
export const CONSOLE_PATH = '/console/';

export interface ConsoleAsset {
  /** Path below CONSOLE_PATH, e.g. `app.js`. */
  name: string;
  contentType: string;
  body: Buffer;
}

const options = (): BuildOptions => ({
  entryPoints: [join(HERE, 'src/main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  write: false,
  outfile: 'app.js',
  logLevel: 'silent',
});

function assets(js: Uint8Array): ConsoleAsset[] {
  return [
    { name: 'index.html', contentType: 'text/html; charset=utf-8', body: readFileSync(join(HERE, 'index.html')) },
    { name: 'style.css', contentType: 'text/css; charset=utf-8', body: readFileSync(join(HERE, 'style.css')) },
    { name: 'app.js', contentType: 'text/javascript; charset=utf-8', body: Buffer.from(js) },
  ];
}

/** The console's files, built in memory (about a second). */
export async function buildConsole(): Promise<ConsoleAsset[]> {
  const out = await build(options());
  return assets(out.outputFiles![0]!.contents);
}

/** The same, synchronously: CDK synthesis builds it while constructing the stack. */
export function buildConsoleSync(): ConsoleAsset[] {
  const out = buildSync(options());
  return assets(out.outputFiles![0]!.contents);
}

/** Writes the built console into a folder (for the stack's S3 deployment). */
export async function writeConsole(dir: string, files: readonly ConsoleAsset[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of files) await writeFile(join(dir, f.name), f.body);
}
