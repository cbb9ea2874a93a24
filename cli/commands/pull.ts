import { setTimeout as sleep } from 'node:timers/promises';
import { exchangeSchema, symbolSchema, type SeriesKey } from '../../functions/candles/candle.ts';
import { INTERVALS, intervalSchema } from '../../functions/candles/intervals.ts';
import { UnknownSymbolError, UnsupportedIntervalError } from '../../functions/exchanges/errors.ts';
import { Governor } from '../../functions/exchanges/governor.ts';
import { adapters } from '../../functions/exchanges/index.ts';
import { requestTimeSchema } from '../../functions/ingest/backfill-request.ts';
import { DirectSink, QueueSink, type CandleSink } from '../../functions/ingest/candle-sink.ts';
import { baseUrlsFromEnv, type ExchangeAccess } from '../../functions/exchanges/access.ts';
import { DEFAULT_PULL_MAX_PAGES, pullLatest, pullRange, type PullResult } from '../../functions/ingest/pull.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import type { Db, Queryable } from '../../functions/store/db.ts';
import { hasIngestionSchema } from '../../functions/store/migrate.ts';
import { defineCommand, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { JSON_OPTION, ONE_SERIES_OPTIONS, RANGE_OPTIONS } from '../options.ts';

// ---- shared by pull, backfill and gaps --------------------------------------------------------

/** Options every command on one stored series takes. */
export const SERIES_RANGE_OPTIONS = { ...ONE_SERIES_OPTIONS, ...RANGE_OPTIONS, json: JSON_OPTION } as const;

/** Where an exchange is reached, for the commands that call one. */
export const BASE_URL_OPTION = {
  type: 'string',
  value: '<url>',
  description: "the exchange's base URL, e.g. the fake exchange's (default: CANDLEKEEP_<EXCHANGE>_URL, else the real one)",
} as const;

/** Validates --exchange/--symbol/--interval; a mistake is a UsageError (exit code 2) that names the fix. */
export function parseSeries(values: { exchange?: string | undefined; symbol?: string | undefined; interval?: string | undefined }): SeriesKey {
  for (const name of ['exchange', 'symbol', 'interval'] as const) {
    if (!values[name]) throw new UsageError(`--${name} is required`);
  }
  const exchange = exchangeSchema.safeParse(values.exchange);
  if (!exchange.success) throw new UsageError(exchange.error.issues[0]?.message ?? 'bad --exchange');
  const symbol = symbolSchema.safeParse(values.symbol?.toUpperCase());
  if (!symbol.success) throw new UsageError(`--symbol ${JSON.stringify(values.symbol)}: ${symbol.error.issues[0]?.message}`);
  const interval = intervalSchema.safeParse(values.interval);
  if (!interval.success) throw new UsageError(interval.error.issues[0]?.message ?? 'bad --interval');
  const adapter = adapters[exchange.data];
  if (!adapter.supports(interval.data)) {
    throw new UsageError(`${exchange.data} has no ${interval.data} candles; it offers ${INTERVALS.filter((i) => adapter.supports(i)).join(' ')}`);
  }
  return { exchange: exchange.data, symbol: symbol.data, interval: interval.data };
}

/** An ISO 8601 date/time (UTC when no zone is given) or epoch milliseconds. */
export function parseTime(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  let value: string | number = text;
  if (/^\d+$/.test(text)) value = Number(text);
  else {
    // People type `2024-01-01T09:30`: seconds and zone are optional here, UTC unless given.
    const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(text);
    if (m) value = `${m[1]}${m[2] ?? ':00'}${m[3] ?? 'Z'}`;
  }
  const parsed = requestTimeSchema.safeParse(value);
  if (!parsed.success) throw new UsageError(`--${name} ${JSON.stringify(text)}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}


/** One process, one in-memory budget per exchange; base URLs from --base-url or CANDLEKEEP_<EXCHANGE>_URL. */
export function cliAccess(series: Pick<SeriesKey, 'exchange'>, baseUrl: string | undefined): ExchangeAccess {
  let baseUrls;
  try {
    baseUrls = baseUrlsFromEnv(process.env, { [series.exchange]: baseUrl });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { governor: new Governor({ now: Date.now, sleep }), baseUrls, now: Date.now };
}

/** Exchange answers that mean the command line is wrong (exit code 2) rather than that something failed. */
export function asUsageError(err: unknown): unknown {
  if (err instanceof UnknownSymbolError) return new UsageError(`${err.message}: check --symbol (unified BASE/QUOTE, e.g. BTC/USDT)`);
  if (err instanceof UnsupportedIntervalError) return new UsageError(err.message);
  return err;
}

/** Fails with an actionable message when the database was never migrated (or is behind). */
export async function requireSchema(db: Queryable): Promise<void> {
  if (!(await hasIngestionSchema(db))) throw new Error('the database has no (or an older) candlekeep schema: run `npx candlekeep migrate` first');
}

/** A progress line on stderr: redrawn in place on a terminal, one line per update otherwise. */
export function progressBar(label: string, fraction: number, detail: string): void {
  const width = 24;
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}% ${detail}`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}\x1b[K`);
  else process.stderr.write(`${line}\n`);
}
export function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
}

// ---- pull ------------------------------------------------------------------------------------

export const command = defineCommand({
  summary: 'fetch candles of one series from its exchange and store them (directly, or through the candles queue)',
  options: {
    ...SERIES_RANGE_OPTIONS,
    'base-url': BASE_URL_OPTION,
    'queue-url': { type: 'string', value: '<url>', description: 'send to this candles queue instead of writing to the database (default: CANDLEKEEP_CANDLES_QUEUE_URL)' },
    'max-pages': { type: 'string', value: '<n>', description: `most requests one pull makes (default ${DEFAULT_PULL_MAX_PAGES})` },
  },
  notes: [
    'Without --from it fetches from the newest stored candle to now. It writes to DATABASE_URL, or the embedded PostgreSQL.',
  ],
  async run({ values }) {
    const series = parseSeries(values);
    const from = parseTime(values.from, 'from');
    const to = parseTime(values.to, 'to');
    if (to !== undefined && from === undefined) throw new UsageError('--to needs --from');
    if (from !== undefined && to !== undefined && to <= from) throw new UsageError('--to must be after --from');
    const maxPages = values['max-pages'] === undefined ? DEFAULT_PULL_MAX_PAGES : Number(values['max-pages']);
    if (!Number.isInteger(maxPages) || maxPages < 1) throw new UsageError('--max-pages must be a positive integer');
    const access = cliAccess(series, values['base-url']);
    const queueUrl = values['queue-url'] ?? process.env.CANDLEKEEP_CANDLES_QUEUE_URL;

    return withLocalDatabase(async (pool: Db) => {
      await requireSchema(pool);
      const sink: CandleSink = queueUrl ? new QueueSink(await sqsClient(), queueUrl) : new DirectSink(pool, new CandleStore());
      const started = performance.now();
      const end = to ?? Date.now();
      let result: PullResult;
      try {
        const deps = {
          db: pool,
          access,
          sink,
          maxPages,
          onProgress: (p: { range: { start: number; end: number }; through: number; candles: number }) => {
            const span = p.range.end - p.range.start;
            progressBar(`${series.exchange} ${series.symbol} ${series.interval}`, span > 0 ? (p.through - p.range.start) / span : 1, `${p.candles} candles`);
          },
        };
        result = from !== undefined ? await pullRange(series, { start: from, end }, deps) : await pullLatest(series, {}, deps);
      } catch (err) {
        throw asUsageError(err);
      } finally {
        endProgress();
      }
      const seconds = (performance.now() - started) / 1000;
      const summary = {
        exchange: series.exchange,
        symbol: series.symbol,
        interval: series.interval,
        from: new Date(result.range.start).toISOString(),
        to: new Date(result.range.end).toISOString(),
        mode: sink.kind,
        candles: result.candles,
        closed: result.closed,
        open: result.open,
        written: result.written ?? null,
        messages: result.messages,
        requests: result.pages,
        weight: result.weight,
        seconds: Number(seconds.toFixed(2)),
      };
      if (values.json) console.log(JSON.stringify(summary));
      else {
        const where = sink.kind === 'queue' ? `sent to the candles queue in ${result.messages} message(s)` : `${result.written ?? 0} row(s) written`;
        console.log(
          `${summary.exchange} ${summary.symbol} ${summary.interval} ${summary.from} .. ${summary.to}: ${result.candles} candles ` +
            `(${result.closed} closed, ${result.open} forming), ${where}, ${result.pages} request(s) in ${summary.seconds} s`,
        );
      }
      return 0;
    });
  },
});

async function sqsClient() {
  const { SQSClient } = await import('@aws-sdk/client-sqs');
  return new SQSClient({});
}
