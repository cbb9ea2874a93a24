/**
 * Bundle benchmark: synthesizes the stack as `cdk synth` does (every function bundled by the local
 * esbuild), then reports each function's bundle size and its cold init time: the median, over
 * fresh Node processes (the one running this script, i.e. Node 24), of `await import()` of the
 * synthesized bundle with the function's own environment, NODE_OPTIONS included. The AWS SDK's
 * service clients stay external as in Lambda (resolved here from node_modules). Progress goes to stderr; the last stdout
 * line is one JSON object.
 *
 *   npm run bench:bundles -- --json [--runs 9]
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { App, AssetStaging, Stack } from 'aws-cdk-lib';
import { REPO_ROOT } from '../dev/paths.ts';
import { cdkJsonContext } from '../dev/template/synthesize.ts';
import { CandlekeepStack } from '../lib/candlekeep-stack.ts';
import { CandlekeepFunction } from '../lib/constructs/candlekeep-function.ts';
import { log, positiveInt } from './support.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '9' },
    json: { type: 'boolean', default: false },
  },
});
const RUNS = positiveInt('runs', args.runs);
/** The limits the project holds every bundle to. */
const LIMITS = { init_ms: 150, bytes: 1024 * 1024 };

/** Stand-ins for values CloudFormation fills in at deploy time, shaped as the functions' config checks expect. */
function placeholder(name: string): string {
  if (name.endsWith('_URL')) return `https://sqs.us-east-1.amazonaws.com/123456789012/candlekeep-bench-${name.toLowerCase()}`;
  if (name.endsWith('_ARN')) return 'arn:aws:secretsmanager:us-east-1:123456789012:secret:candlekeep-bench-AbCdEf';
  if (name.endsWith('_ID')) return 'a1b2c3d4e5';
  return `candlekeep-bench-${name.toLowerCase()}`;
}

function environmentOf(stack: Stack, fn: CandlekeepFunction): Record<string, string> {
  const resolved = stack.resolve((fn.node.defaultChild as { environment?: unknown }).environment) as { variables?: Record<string, unknown> } | undefined;
  return Object.fromEntries(Object.entries(resolved?.variables ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : placeholder(k)]));
}

const run = promisify(execFile);
const IMPORT_AND_TIME = 'const t = performance.now(); await import(process.argv[1]); process.stdout.write(String(performance.now() - t));';

async function coldImportMs(bundle: string, env: Record<string, string>): Promise<number> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', IMPORT_AND_TIME, pathToFileURL(bundle).href], {
    env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', AWS_LAMBDA_FUNCTION_NAME: 'bench', ...env },
  });
  return Number(stdout);
}

function dirBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? dirBytes(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).size), 0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 10) / 10;

// Inside the repository, so the bundles resolve the external AWS SDK from its node_modules.
const outdir = path.join(REPO_ROOT, '.dev', 'bench-bundles');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
log('synthesizing the stack and bundling every function');
const app = new App({ outdir, context: cdkJsonContext() });
const stack = new CandlekeepStack(app, 'Candlekeep-bench');
app.synth();

const bundles = [];
for (const fn of stack.node.findAll().filter((c): c is CandlekeepFunction => c instanceof CandlekeepFunction)) {
  const dir = (fn.node.findChild('Code').node.findChild('Stage') as AssetStaging).absoluteStagedPath;
  const bundle = path.join(dir, 'index.mjs');
  const env = environmentOf(stack, fn);
  await coldImportMs(bundle, env); // once to warm the file system cache, not counted
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await coldImportMs(bundle, env));
  const entry = {
    function: fn.node.path.replace(`${stack.node.id}/`, ''),
    bundle_bytes: statSync(bundle).size,
    asset_bytes: dirBytes(dir),
    init_ms_median: round(median(times)),
    // On a busy machine the fastest run is the closest to the cost itself.
    init_ms_min: round(Math.min(...times)),
    init_ms_runs: times.map(round),
  };
  log(`${entry.function}: ${(entry.bundle_bytes / 1024).toFixed(0)} KiB, init ${entry.init_ms_median} ms (median of ${RUNS})`);
  bundles.push(entry);
}
rmSync(outdir, { recursive: true, force: true });

const result = {
  node: process.version,
  runs: RUNS,
  bundles,
  max_init_ms: Math.max(...bundles.map((b) => b.init_ms_median)),
  max_bundle_bytes: Math.max(...bundles.map((b) => b.bundle_bytes)),
  limits: LIMITS,
  meets_limits: bundles.every((b) => b.init_ms_median <= LIMITS.init_ms && b.bundle_bytes <= LIMITS.bytes),
};
if (!args.json) log(JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
if (!result.meets_limits) process.exitCode = 1;
