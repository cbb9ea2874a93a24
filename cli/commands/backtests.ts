import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Backtest, CreateBacktestInput } from '../../client/index.ts';
import { toCsv } from '../../functions/http/csv.ts';
import { reproduceRun } from '../../functions/backtests/reproduce.ts';
import { withLocalDatabase } from '../database.ts';
import { endProgress, progressBar, requireSchema } from './pull.ts';
import { defineCommand, defineGroup, progress, UsageError } from '../command.ts';
import { apiClient, API_NOTES, outputMode, positiveInt, table, type Cell } from '../api/output.ts';
import { JSON_OPTION, OUTPUT_OPTIONS, PAGE_OPTIONS, QUIET_OPTION } from '../options.ts';

const SHOWN_METRICS = ['totalReturn', 'cagr', 'sharpe', 'maxDrawdown', 'winRate', 'tradeCount'];
const num = (v: number | null | undefined): Cell => (v === null || v === undefined ? '' : Number.isInteger(v) ? v : Number(v.toPrecision(6)));

async function readInput(path: string): Promise<string> {
  if (path !== '-') return readFile(path, 'utf8');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function runsTable(runs: Backtest[]): string {
  return table(
    ['id', 'created', 'strategy', 'version', ...SHOWN_METRICS, 'tags'],
    runs.map((r) => [r.id, r.createdAt.replace(/\.\d+Z$/, 'Z'), r.strategy, r.strategyVersion, ...SHOWN_METRICS.map((m) => num(r.metrics[m])), r.tags.join(',')]),
  );
}

const list = defineCommand({
  summary: 'list runs, newest first, filtered and sorted by the API',
  options: {
    strategy: { type: 'string', multiple: true, value: '<name>', description: 'only runs of this strategy' },
    tag: { type: 'string', multiple: true, value: '<tag>', description: 'only runs with every tag given' },
    filter: { type: 'string', multiple: true, value: '<name=value>', description: 'an API filter, e.g. metric.sharpe.gte=1, param.fast=10, or.1.tag=prod' },
    sort: { type: 'string', value: '<key>', description: '-created (default), created, -metric.<name> or metric.<name>' },
    ...PAGE_OPTIONS,
    ...OUTPUT_OPTIONS,
  },
  notes: API_NOTES,
  async run({ values }) {
    const mode = outputMode(values);
    const query: [string, string][] = [];
    for (const s of values.strategy ?? []) query.push(['strategy', s]);
    if (values.tag?.length) query.push(['tag', values.tag.join(',')]);
    for (const f of values.filter ?? []) {
      const eq = f.indexOf('=');
      if (eq <= 0) throw new UsageError(`--filter ${f}: write name=value, e.g. metric.sharpe.gte=1 or param.fast=10 or or.1.tag=prod`);
      query.push([f.slice(0, eq), f.slice(eq + 1)]);
    }
    if (values.sort) query.push(['sort', values.sort]);
    const limit = positiveInt('limit', values.limit);
    if (limit !== undefined) query.push(['limit', String(limit)]);
    const client = apiClient();
    const runs: Backtest[] = [];
    let cursor = values.cursor;
    let next: string | null = null;
    do {
      const res = await client.request('GET', '/v1/backtests', { query: [...query, ...(cursor ? ([['cursor', cursor]] as [string, string][]) : [])] });
      const page = (await res.json()) as { runs: Backtest[]; nextCursor: string | null };
      runs.push(...page.runs);
      next = page.nextCursor;
      cursor = next ?? undefined;
    } while (cursor && values.all);
    if (mode === 'json') console.log(JSON.stringify({ runs, nextCursor: next }));
    else if (mode === 'csv') {
      const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
      const params = [...new Set(runs.flatMap((r) => Object.keys(r.parameters)))].sort();
      process.stdout.write(
        toCsv(
          ['id', 'created_at', 'strategy', 'strategy_version', 'tags', ...metrics.map((m) => `metric.${m}`), ...params.map((p) => `param.${p}`)],
          runs.map((r) => [
            r.id,
            r.createdAt,
            r.strategy,
            r.strategyVersion,
            r.tags.join(';'),
            ...metrics.map((m) => r.metrics[m] ?? null),
            ...params.map((p) => {
              const v = r.parameters[p];
              return v === undefined || v === null ? null : typeof v === 'object' ? JSON.stringify(v) : (v as Cell);
            }),
          ]),
        ),
      );
    } else console.log(runs.length ? runsTable(runs) : 'no runs match');
    if (next && !values.all) progress(`more runs: --cursor ${next} (or --all)`);
    return 0;
  },
});

const get = defineCommand({
  summary: 'one run with its metrics and parameters',
  args: '<id>',
  options: {
    include: { type: 'string', value: '<parts>', description: 'also fetch equityCurve and/or trades, comma-separated' },
    json: JSON_OPTION,
  },
  notes: API_NOTES,
  async run({ values, positionals }) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError('give one run id');
    const include = (values.include?.split(',').filter(Boolean) ?? []) as ('equityCurve' | 'trades')[];
    const run = await apiClient().getBacktest(id, { include });
    if (values.json) {
      console.log(JSON.stringify(run));
      return 0;
    }
    console.log(`${run.strategy} ${run.strategyVersion}  (${run.id})`);
    console.log(`created ${run.createdAt}, range ${run.start} .. ${run.end}`);
    console.log(`instruments ${run.instruments.map((i) => `${i.exchange}:${i.symbol}:${i.interval}`).join(', ')}`);
    console.log(`tags ${run.tags.join(', ') || '-'}; fingerprint ${run.fingerprint.value} (${run.fingerprint.candles} candles)`);
    if (run.reproducedFrom) console.log(`reproduces ${run.reproducedFrom}`);
    console.log(`parameters ${JSON.stringify(run.parameters)}`);
    console.log(table(['metric', 'value'], Object.entries(run.metrics).map(([k, v]) => [k, num(v)])));
    if (run.notes) console.log(`notes: ${run.notes}`);
    return 0;
  },
});

const compare = defineCommand({
  summary: 'compare 2 to 10 runs side by side: metrics, differing parameters, data changes',
  args: '<id> <id> [<id>...]',
  options: OUTPUT_OPTIONS,
  notes: API_NOTES,
  async run({ values, positionals }) {
    const mode = outputMode(values);
    const ids = positionals.flatMap((p) => p.split(',')).filter(Boolean);
    if (ids.length < 2 || ids.length > 10) throw new UsageError('give 2 to 10 run ids');
    const cmp = await apiClient().compareBacktests(ids);
    const short = cmp.runs.map((r) => r.id.slice(-8));
    const rows: Cell[][] = [
      ['strategy', ...cmp.runs.map((r) => `${r.strategy} ${r.strategyVersion}`)],
      ...cmp.metrics.map((m) => [m.name, ...m.values.map(num)]),
      ...cmp.parameters.differing.map((p) => [`param ${p.name}`, ...p.values.map((v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : (v as Cell)))]),
      ['data changed', ...cmp.data.map((d) => (d.changed ? `yes (${d.expired ? 'expired by retention; ' : ''}${d.restatedCandles} restated, ${d.addedCandles} added, ${d.changedOpenCandles} open)` : 'no'))],
    ];
    if (mode === 'json') console.log(JSON.stringify(cmp));
    else if (mode === 'csv') process.stdout.write(toCsv(['name', ...cmp.runs.map((r) => r.id)], rows));
    else {
      console.log(table(['', ...short], rows));
      if (cmp.parameters.identical.length) progress(`identical parameters: ${cmp.parameters.identical.join(', ')}`);
    }
    return 0;
  },
});

const put = defineCommand({
  summary: 'store a run from a JSON file (- for stdin); the same file twice stores it once',
  args: '<run.json|->',
  options: {
    'idempotency-key': { type: 'string', value: '<key>', description: 'retry key (default: sha256 of the file)' },
    json: JSON_OPTION,
  },
  notes: API_NOTES,
  async run({ values, positionals }) {
    const [file] = positionals;
    if (!file || positionals.length > 1) throw new UsageError('give one JSON file (or - for stdin)');
    const text = await readInput(file);
    let body: CreateBacktestInput;
    try {
      body = JSON.parse(text) as CreateBacktestInput;
    } catch (err) {
      throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`);
    }
    // Default key: the content hash, so running the same put twice stores the run once.
    const idempotencyKey = values['idempotency-key'] ?? `sha256:${createHash('sha256').update(text).digest('hex')}`;
    const { run, created } = await apiClient().createBacktest(body, { idempotencyKey });
    if (values.json) console.log(JSON.stringify(run));
    else console.log(run.id);
    progress(created ? `stored run ${run.id} (fingerprint ${run.fingerprint.value})` : `already stored as ${run.id} (same idempotency key)`);
    return 0;
  },
});

const remove = defineCommand({
  summary: 'delete one run',
  args: '<id>',
  options: {},
  notes: API_NOTES,
  async run({ positionals }) {
    if (positionals.length !== 1) throw new UsageError('give one run id');
    await apiClient().deleteBacktest(positionals[0]!);
    progress(`deleted ${positionals[0]}`);
    return 0;
  },
});

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const reproduce = defineCommand({
  summary: "write a run's configuration and its exact input candles as of the run, and check them against its fingerprint",
  args: '<id>',
  options: {
    out: { type: 'string', short: 'o', value: '<dir>', description: 'folder to write run.json, candles.parquet and rerun.json into (default: reproduce-<id>)' },
    json: JSON_OPTION,
    quiet: QUIET_OPTION,
  },
  notes: [
    'It reads DATABASE_URL, or the embedded PostgreSQL. candles.parquet holds the source candles of every instrument in the',
    "run's range as they were stored when the run was recorded (restated candles with their values then, candles stored",
    'since left out); run.json holds the stored run and its fingerprint; rerun.json the body to record the re-run with',
    '(fill in its metrics, then `candlekeep backtests put rerun.json`): it carries reproducedFrom. Exit status 1 when the candles as of',
    'the run do not match the stored fingerprint (a candle that was still open then has changed; its earlier values are not kept),',
    'or when retention has deleted candles the run read since it ran (said so, naming retention: they cannot be given back).',
    'e.g. candlekeep backtests reproduce 0190a6c2-7f7e-7d4e-9b1a-3c5d7e9f1a2b --out rerun/',
  ],
  async run({ values, positionals }) {
    const [id] = positionals;
    if (!id || positionals.length > 1) throw new UsageError('give one run id');
    if (!UUID_RE.test(id)) throw new UsageError(`${id} is not a run id (a UUID, as \`candlekeep backtests list\` shows them)`);
    const dir = values.out ?? `reproduce-${id}`;
    return withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      let r;
      try {
        r = await reproduceRun(pool, id, dir, {
          onProgress: (p) => {
            if (!values.quiet) progressBar('candles', p.totalSourceCandles > 0 ? p.sourceCandles / p.totalSourceCandles : 1, `${p.rows} rows`);
          },
        });
      } finally {
        if (!values.quiet) endProgress();
      }
      const { check } = r;
      if (values.json) console.log(JSON.stringify({ id: r.run.id, asOf: r.asOf, files: r.files, rows: r.rows, ...check }));
      else {
        console.log(`${r.files.run}: the run's configuration (${r.run.strategy} ${r.run.strategyVersion})`);
        console.log(`${r.files.candles}: ${r.rows} candles as of ${r.asOf}`);
        console.log(`${r.files.rerun}: the body to record the re-run with (fill in its metrics, then \`candlekeep backtests put\`)`);
        console.log(
          check.matches
            ? `fingerprint matches: ${check.asOfRun} (${check.candles} candles)`
            : check.expired.length > 0
              ? `cannot reproduce: retention has deleted candles this run read (fingerprint ${check.asOfRun} of what is left, ${check.stored} stored)\n  ${check.mismatches.join('\n  ')}`
              : `fingerprint does NOT match: ${check.asOfRun} as of the run, ${check.stored} stored\n  ${check.mismatches.join('\n  ')}`,
        );
        console.log(
          check.expired.length > 0
            ? `${r.files.candles} holds only the candles retention left (${check.candles} as of the run)`
            : check.current === check.stored
              ? 'the data stored now is the same'
              : `the data stored now differs (${check.current}, ${check.currentCandles} candles): the file holds what the run saw`,
        );
      }
      return check.matches ? 0 : 1;
    });
  },
});

export const command = defineGroup({
  summary: 'backtest records from the API: list | get | compare | put | delete; reproduce (from the database)',
  subcommands: { list, get, compare, put, delete: remove, reproduce },
});

