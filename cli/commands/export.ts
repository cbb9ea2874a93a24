import { exportToFile } from '../../functions/exports/export.ts';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportRequestInput, exportRequestSchema, type ExportRequest, type ExportRequestInput } from '../../functions/exports/request.ts';
import { apiClient } from '../api/output.ts';
import { defineCommand, progress, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { JSON_OPTION, OUT_OPTION, QUIET_OPTION, SERIES_OPTIONS } from '../options.ts';
import { endProgress, progressBar, requireSchema } from './pull.ts';

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

/** The request an export's options describe, checked by the same schema POST /v1/exports uses. */
export function exportRequestFromOptions(values: Record<string, string | boolean | undefined>) {
  const str = (k: string) => values[k] as string | undefined;
  const series = list(str('series'));
  const markets = str('exchange') !== undefined || str('symbol') !== undefined || str('interval') !== undefined;
  if (series && markets) throw new UsageError('give either --series or a market selection (--exchange/--symbol with --interval), not both');
  if (!series && !str('interval')) throw new UsageError('give --series, or --interval with an optional --exchange and --symbol');
  const out = str('out');
  const input: ExportRequestInput = {
    ...(series ? { series } : { markets: { interval: str('interval') as never, ...(str('exchange') ? { exchange: str('exchange') as never } : {}), ...(str('symbol') ? { symbols: list(str('symbol'))!.map((s) => s.toUpperCase()) } : {}) } }),
    ...(str('start') !== undefined ? { start: str('start') } : {}),
    ...(str('end') !== undefined ? { end: str('end') } : {}),
    ...(str('gaps') !== undefined ? { gaps: str('gaps') as never } : {}),
    ...(str('as-of') !== undefined ? { asOf: str('as-of') } : {}),
    format: (str('format') ?? (out?.endsWith('.csv.gz') ? 'csv.gz' : 'parquet')) as never,
  };
  const parsed = exportRequestSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.filter((p) => typeof p === 'string');
    const option = path[0] === 'markets' ? (path[1] === 'symbols' ? 'symbol' : String(path[1] ?? 'interval')) : path[0] === 'asOf' ? 'as-of' : String(path[0] ?? 'series');
    throw new UsageError(`--${option}: ${issue.message}`);
  }
  return parsed.data;
}

export const command = defineCommand({
  summary: 'write candles of series or markets to a Parquet or csv.gz file, from DATABASE_URL or the embedded database',
  options: {
    series: { type: 'string', value: '<exchange:BASE/QUOTE:interval,...>', description: 'the series to export (or a market selection below)' },
    ...SERIES_OPTIONS,
    symbol: { ...SERIES_OPTIONS.symbol, value: '<BASE/QUOTE,...>', description: 'market selection: these symbols (default: every stored one) at --interval' },
    start: { type: 'string', value: '<ISO|ms>', description: 'first open time (inclusive): ISO 8601 or epoch ms' },
    end: { type: 'string', value: '<ISO|ms>', description: 'end of the range (exclusive)' },
    gaps: { type: 'string', value: '<omit|null|ffill>', description: 'missing candles: left out (omit, the default), null rows, or forward-filled' },
    'as-of': { type: 'string', value: '<ISO|ms>', description: 'the candles as stored at this moment, from the restatement history' },
    format: { type: 'string', value: '<parquet|csv.gz>', description: 'file format (default: from the --out name, else parquet)' },
    out: { ...OUT_OPTION, required: true, description: 'the file to write (written as FILE.partial, renamed when complete)' },
    remote: { type: 'boolean', description: 'export through the API (CANDLEKEEP_URL, CANDLEKEEP_API_KEY): the stack writes the file, this downloads it' },
    json: JSON_OPTION,
    quiet: QUIET_OPTION,
  },
  notes: [
    'It reads DATABASE_URL, or the embedded PostgreSQL. Rows are what GET /v1/candles returns for the same query:',
    'whole buckets in [--start, --end), resampled from the finest stored interval when the interval is not stored.',
    'With --remote the API makes the file (POST /v1/exports) and this command follows its progress and downloads it.',
    'e.g. candlekeep export --series binance:BTC/USDT:1m --start 2024-01-01 --out btc.parquet',
    '     candlekeep export -e binance -i 1h --start 2024-01-01 -o binance-1h.csv.gz',
    '     CANDLEKEEP_URL=... CANDLEKEEP_API_KEY=... candlekeep export --remote --series binance:BTC/USDT:1h -o btc-1h.parquet',
  ],
  async run({ values }) {
    const out = values.out;
    const request = exportRequestFromOptions(values);
    if (values.remote) return remoteExport(request, out, { json: values.json === true, quiet: values.quiet === true });
    return withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      const started = performance.now();
      let result;
      try {
        result = await exportToFile(pool, request, out, { onProgress: (p) => {
          const fraction = p.totalSourceCandles > 0 ? p.sourceCandles / p.totalSourceCandles : 1;
          if (!values.quiet) progressBar('export', fraction, `${p.rows} rows`);
        } });
      } finally {
        if (!values.quiet) endProgress();
      }
      const seconds = (performance.now() - started) / 1000;
      const summary = { file: out, ...result, seconds: Number(seconds.toFixed(2)), bytesPerRow: result.rows ? Number((result.bytes / result.rows).toFixed(2)) : null };
      if (values.json) console.log(JSON.stringify(summary));
      else {
        for (const s of result.skipped) console.error(`skipped ${s.key.exchange} ${s.key.symbol}: ${s.reason}`);
        console.log(
          `${out}: ${result.rows} rows of ${result.series.length} series (${result.format}, ${result.bytes} bytes) in ${summary.seconds} s` +
            result.series.map((s) => `\n  ${s.exchange} ${s.symbol} ${s.interval}: ${s.rows}${s.resampledFrom ? ` (resampled from ${s.resampledFrom})` : ''}`).join(''),
        );
      }
      return 0;
    });
  },
});

/** How often --remote asks for the export's progress. */
const POLL_MS = 1000;

/**
 * The export made by the stack: POST /v1/exports, the status followed with a progress bar until
 * done, then the file downloaded from its presigned URL into FILE.partial and renamed, so an
 * interrupted download never leaves a file that looks finished. A failed export exits 1 with its reason.
 */
async function remoteExport(request: ExportRequest, out: string, opts: { json: boolean; quiet: boolean }): Promise<number> {
  const client = apiClient();
  const started = performance.now();
  let status = await client.requestExport(exportRequestInput(request));
  if (!opts.quiet) progress(`export ${status.id} ${status.status}`);
  try {
    while (status.status === 'queued' || status.status === 'running') {
      await sleep(POLL_MS);
      status = await client.getExport(status.id);
      const p = status.progress;
      if (!opts.quiet && p.fraction !== null) progressBar('export', p.fraction, `${p.rows} rows, ${p.bytes} bytes (${status.status})`);
    }
  } finally {
    if (!opts.quiet) endProgress();
  }
  if (status.status !== 'done' || !status.download) {
    throw new Error(`export ${status.id} ${status.status}${status.error ? `: ${status.error}` : ''}`);
  }
  const res = await fetch(status.download.url);
  if (!res.ok || !res.body) throw new Error(`downloading export ${status.id} answered ${res.status} ${res.statusText}`);
  const partial = `${out}.partial`;
  try {
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(partial));
    await rename(partial, out);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  const bytes = (await stat(out)).size;
  const seconds = Number(((performance.now() - started) / 1000).toFixed(2));
  const summary = { file: out, id: status.id, format: status.format, rows: status.progress.rows, bytes, seconds };
  if (opts.json) console.log(JSON.stringify(summary));
  else console.log(`${out}: ${summary.rows} rows (${summary.format}, ${bytes} bytes) exported by the API as ${status.id} in ${seconds} s`);
  return 0;
}
