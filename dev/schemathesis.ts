/**
 * `npm run fuzz:api`: a schemathesis pass over the HTTP API as users run it.
 *
 *  1. installs schemathesis (pinned) into `.dev/schemathesis-venv` once;
 *  2. creates a fresh database on DATABASE_URL's server (or the embedded PostgreSQL) and seeds it
 *     with candles (three series, with gaps) and backtest runs;
 *  3. starts `candlekeep serve` on it, on a free port;
 *  4. runs `schemathesis run` against /v1/openapi.json with every check, a fixed seed and
 *     --max-examples per operation;
 *  5. prints a summary (cases, server errors, response-schema violations, other failures by check)
 *     and a last line of JSON; exits 1 when anything failed. The database is dropped afterwards.
 *     schemathesis' own report (each failure with a curl to reproduce it) is written to
 *     `.dev/schemathesis-output.txt`, or shown as it runs with --verbose.
 *
 *   npm run fuzz:api -- [--seed 20261201] [--max-examples 100] [--keep-report] [--verbose]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CandlekeepClient } from '../client/index.ts';
import type { CandleRow } from '../functions/candles/candle-batch.ts';
import { CandleStore } from '../functions/store/candles.ts';
import { startFakeExchange } from './fake-exchange/server.ts';
import { openLocalDatabase } from './local-db.ts';
import { REPO_ROOT, STATE_DIR } from './paths.ts';
import { pythonVersion, run, venvPython } from './localstack/venv.ts';
import { findPython } from './python-venv.ts';
import { ensureLocalStack } from './localstack/index.ts';
import { randomWalk, seededRandom, type WalkShape } from './sample-candles.ts';

export const SCHEMATHESIS = 'schemathesis==4.32.5';
export const DEFAULT_SEED = 20261201;
export const DEFAULT_MAX_EXAMPLES = 100;

export interface FuzzSummary {
  seed: number;
  maxExamples: number;
  operations: number;
  cases: number;
  serverErrors: number;
  schemaViolations: number;
  /** Operations that failed each check (server errors and schema violations included); empty when clean. */
  failures: Record<string, number>;
  seconds: number;
  /** schemathesis' own report (every failure with its curl to reproduce), unless it went to the terminal. */
  outputFile?: string | undefined;
}

const log = (msg: string) => process.stderr.write(`[fuzz] ${msg}\n`);

const SHAPE: WalkShape = { step: 2, wick: 1, minLow: 0.01, priceDecimals: 4, volume: { max: 10, decimals: 6 }, quoteVolume: { max: 1000, decimals: 2 }, maxTrades: 100 };
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Candles of three series (one with gaps, one with an open last candle) and a few runs. */
async function seed(db: Parameters<CandleStore['upsert']>[0], client: CandlekeepClient): Promise<void> {
  const store = new CandleStore();
  const start = Date.UTC(2024, 0, 1);
  const series = [
    { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m', step: MINUTE, count: 3 * 1440, skip: (i: number) => i % 500 >= 490 },
    { exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', step: HOUR, count: 24 * 60, skip: () => false },
    { exchange: 'okx', symbol: 'ETH/USDT', interval: '1h', step: HOUR, count: 24 * 30, skip: (i: number) => i >= 100 && i < 130 },
  ] as const;
  for (const [n, s] of series.entries()) {
    const bars = [...randomWalk({ rand: seededRandom(n + 1), startPrice: 100 + n, count: s.count, shape: SHAPE, skip: s.skip })];
    const rows: CandleRow[] = bars.map((b, i) => [start + b.index * s.step, b.open, b.high, b.low, b.close, b.volume, b.quoteVolume, b.trades, i === bars.length - 1 ? 0 : 1]);
    for (let i = 0; i < rows.length; i += 5000) {
      await store.upsert(db, [{ v: 1, exchange: s.exchange, symbol: s.symbol, interval: s.interval, fetchedAt: Date.UTC(2025, 0, 1), rows: rows.slice(i, i + 5000) }]);
    }
  }
  for (let i = 0; i < 6; i++) {
    await client.createBacktest(
      {
        strategy: i % 2 ? 'sma_cross' : 'breakout',
        strategyVersion: `1.${i}.0`,
        parameters: { fast: 5 + i, slow: 30, risk: { stop: 0.01 * (i + 1) }, mode: i % 3 ? 'long' : 'both' },
        instruments: [{ exchange: 'binance', symbol: 'BTC/USDT', interval: '1h' }],
        start: '2024-01-01',
        end: '2024-01-03',
        metrics: { totalReturn: 0.01 * i - 0.02, sharpe: 0.4 * i, maxDrawdown: 0.05 + 0.01 * i, tradeCount: 10 + i },
        equityCurve: Array.from({ length: 24 }, (_, h) => ({ t: Date.UTC(2024, 0, 1, h), equity: 10_000 + h * (i - 2) })),
        trades: [{ symbol: 'BTC/USDT', side: i % 2 ? 'long' : 'short', entryTime: Date.UTC(2024, 0, 1, 3), exitTime: Date.UTC(2024, 0, 1, 9), entryPrice: 42000 + i, exitPrice: 42100, quantity: 0.1, pnl: 10 - i }],
        tags: i % 2 ? ['research', 'fuzz'] : ['fuzz'],
      },
      { idempotencyKey: `fuzz-seed-${i}` },
    );
  }
}

/** `candlekeep serve` on a free port; resolves with its base URL once it listens. */
function startServe(databaseUrl: string, apiKey: string, exchangeUrls: Record<string, string>, awsEndpoint: string): Promise<{ url: string; child: ChildProcess }> {
  // Exports go to a bucket on LocalStack's S3, so POST /v1/exports answers as deployed rather than 501.
  const exportsEnv = {
    AWS_ENDPOINT_URL: awsEndpoint,
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
    CANDLEKEEP_EXPORTS_BUCKET: `candlekeep-fuzz-${randomBytes(4).toString('hex')}`,
  };
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/candlekeep.js'), 'serve', '--port', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...exchangeUrls, ...exportsEnv, DATABASE_URL: databaseUrl, CANDLEKEEP_API_KEY: apiKey },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const m = /candlekeep API on (http:\/\/[^/\s]+)\/v1/.exec(text);
      if (m) resolve({ url: m[1]!, child });
    });
    child.once('exit', (code) => reject(new Error(`candlekeep serve exited with ${code}: ${text.trim()}`)));
  });
}

/** `.dev/schemathesis-venv` with the pinned schemathesis (Python >= 3.11); a stamp skips pip when current. */
async function ensureSchemathesis(): Promise<string> {
  const dir = path.join(STATE_DIR, 'schemathesis-venv');
  const python = venvPython(dir);
  const stampPath = path.join(dir, '.candlekeep-install');
  if (existsSync(python) && (await pythonVersion(python)) && (await readFile(stampPath, 'utf8').catch(() => '')) === SCHEMATHESIS) return python;
  const logFile = path.join(STATE_DIR, 'schemathesis-pip.log');
  if (!existsSync(python)) {
    const base = await findPython([3, 11], 'schemathesis');
    log(`creating ${dir} with ${base}`);
    await run(base, ['-m', 'venv', dir], { logFile });
  }
  log(`pip install ${SCHEMATHESIS} (once; output in ${logFile})`);
  await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', SCHEMATHESIS], { logFile });
  await writeFile(stampPath, SCHEMATHESIS);
  return python;
}

interface CheckResult {
  name?: string;
  status?: string;
}

/**
 * Reads schemathesis' ndjson event stream: the test cases it ran, the API operations they covered,
 * and the failed checks by name, each failure counted once per operation (as its own summary does).
 */
export function summarise(ndjson: string): { operations: number; cases: number; failures: Record<string, number> } {
  let cases = 0;
  const operations = new Set<string>();
  const failed = new Set<string>();
  for (const line of ndjson.split('\n')) {
    if (!line.trim()) continue;
    const finished = (JSON.parse(line) as { ScenarioFinished?: { recorder?: { label?: string; cases?: Record<string, unknown>; checks?: Record<string, CheckResult[]> } } }).ScenarioFinished;
    if (!finished?.recorder) continue;
    const label = finished.recorder.label ?? '';
    if (/^[A-Z]+ \//.test(label)) operations.add(label);
    cases += Object.keys(finished.recorder.cases ?? {}).length;
    for (const checks of Object.values(finished.recorder.checks ?? {})) {
      for (const c of checks) if (c.status?.toLowerCase() === 'failure') failed.add(`${c.name ?? 'unknown'}\u0000${label}`);
    }
  }
  const failures: Record<string, number> = {};
  for (const key of failed) {
    const name = key.split('\u0000')[0]!;
    failures[name] = (failures[name] ?? 0) + 1;
  }
  return { operations: operations.size, cases, failures };
}

export async function fuzzApi(opts: { seed: number; maxExamples: number; keepReport?: boolean; verbose?: boolean }): Promise<FuzzSummary> {
  const started = Date.now();
  const python = await ensureSchemathesis();
  const local = await openLocalDatabase({ log });
  const aws = await ensureLocalStack({ log });
  const name = `candlekeep_fuzz_${randomBytes(4).toString('hex')}`;
  const apiKey = `fuzz-${randomBytes(12).toString('hex')}`;
  let serve: ChildProcess | undefined;
  // Routes that ask an exchange (market discovery, following a market) talk to the fake one: offline and deterministic.
  const fake = await startFakeExchange({ enforceLimits: false });
  const exchangeUrls = Object.fromEntries(Object.entries(fake.baseUrls).map(([e, url]) => [`CANDLEKEEP_${e.toUpperCase()}_URL`, url]));
  const reportDir = path.join(STATE_DIR, 'schemathesis-report');
  try {
    const url = await local.prepare(name, { fresh: true });
    const started_ = await startServe(url, apiKey, exchangeUrls, aws.endpoint);
    serve = started_.child;
    log(`candlekeep serve on ${started_.url}, database ${name}; seeding`);
    const pool = local.pool(url, 2);
    await seed(pool, new CandlekeepClient({ baseUrl: started_.url, apiKey }));
    await rm(reportDir, { recursive: true, force: true });
    await mkdir(reportDir, { recursive: true });
    const ndjsonPath = path.join(reportDir, 'events.ndjson');
    const args = [
      '-m', 'schemathesis.cli', 'run', `${started_.url}/v1/openapi.json`,
      '--url', started_.url,
      '--checks', 'all',
      '--seed', String(opts.seed),
      '--max-examples', String(opts.maxExamples),
      '--header', `x-api-key:${apiKey}`,
      '--workers', '2',
      '--report', 'ndjson,junit',
      '--report-dir', reportDir,
      '--report-ndjson-path', ndjsonPath,
    ];
    log(`schemathesis run --checks all --seed ${opts.seed} --max-examples ${opts.maxExamples}`);
    // schemathesis' own report goes to a file, not to this process's output: its closing line is
    // pytest's ("== 14 failures in 168 s ==") and would read, to anything scanning a CI log, as a
    // test run that passed nothing. The summary below says what it found; the file says where.
    const outputFile = path.join(STATE_DIR, 'schemathesis-output.txt');
    log(`schemathesis' report: ${opts.verbose ? 'below' : outputFile}`);
    const out = opts.verbose ? 'inherit' : await open(outputFile, 'w');
    const code = await new Promise<number>((resolve, reject) => {
      const fd = typeof out === 'string' ? out : out.fd;
      const st = spawn(python, args, { cwd: reportDir, stdio: ['ignore', fd, fd], env: { ...process.env, NO_COLOR: '1' } });
      st.once('error', reject);
      st.once('exit', (c) => resolve(c ?? 1));
    }).finally(() => (typeof out === 'string' ? undefined : out.close()));
    const { operations, cases, failures } = summarise(await readFile(ndjsonPath, 'utf8'));
    if (code !== 0 && Object.keys(failures).length === 0) failures['schemathesis exit status'] = code;
    return {
      seed: opts.seed,
      maxExamples: opts.maxExamples,
      operations,
      cases,
      serverErrors: failures.not_a_server_error ?? 0,
      schemaViolations: failures.response_schema_conformance ?? 0,
      failures,
      seconds: Math.round((Date.now() - started) / 1000),
      outputFile: opts.verbose ? undefined : outputFile,
    };
  } finally {
    serve?.kill('SIGTERM');
    if (serve && serve.exitCode === null) await new Promise((resolve) => serve!.once('exit', resolve));
    await local.drop(name).catch((err: unknown) => log(`could not drop ${name}: ${(err as Error).message}`));
    await local.close();
    await fake.close();
    await aws.stop();
    if (!opts.keepReport) await rm(reportDir, { recursive: true, force: true }).catch(() => {});
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      'max-examples': { type: 'string' },
      'keep-report': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
    },
  });
  const summary = await fuzzApi({
    seed: values.seed === undefined ? DEFAULT_SEED : Number(values.seed),
    maxExamples: values['max-examples'] === undefined ? DEFAULT_MAX_EXAMPLES : Number(values['max-examples']),
    keepReport: values['keep-report'],
    verbose: values.verbose,
  });
  const other = Object.entries(summary.failures).filter(([k]) => k !== 'not_a_server_error' && k !== 'response_schema_conformance');
  console.log(
    `schemathesis: ${summary.cases} cases over ${summary.operations} operations (seed ${summary.seed}, ${summary.maxExamples} examples each) in ${summary.seconds} s: ` +
      `${summary.serverErrors} server errors, ${summary.schemaViolations} response-schema violations` +
      (other.length ? `, other failures: ${other.map(([k, n]) => `${k} ${n}`).join(', ')}` : ', no other failures'),
  );
  console.log(JSON.stringify(summary));
  process.exitCode = Object.keys(summary.failures).length ? 1 : 0;
}
