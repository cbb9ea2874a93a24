/**
 * Writes openapi.json at the repository root from the API's zod schemas (`npm run openapi`).
 * With --check it only compares and exits 1 when the file is stale.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildOpenApi } from './openapi.ts';
import { ROUTES } from './routes/index.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi.json', import.meta.url));
export const renderOpenApi = () => `${JSON.stringify(buildOpenApi(ROUTES), null, 2)}\n`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderOpenApi();
  if (process.argv.includes('--check')) {
    const current = await readFile(OPENAPI_FILE, 'utf8').catch(() => '');
    if (current !== text) {
      process.stderr.write('openapi.json is stale: run npm run openapi\n');
      process.exitCode = 1;
    }
  } else {
    await writeFile(OPENAPI_FILE, text);
    process.stderr.write(`wrote ${OPENAPI_FILE}\n`);
  }
}
