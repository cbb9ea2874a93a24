import type { Exchange, Interval, Markets } from '../../client/index.ts';
import { INTERVALS } from '../../functions/candles/intervals.ts';
import { toCsv } from '../../functions/http/csv.ts';
import { defineCommand, defineGroup, progress, UsageError } from '../command.ts';
import { apiClient, API_NOTES, fmtTime, outputMode, positiveInt, table } from '../api/output.ts';
import { EXCHANGE, INTERVAL, JSON_OPTION, OUTPUT_OPTIONS, SERIES_OPTIONS, SYMBOL } from '../options.ts';

/** A comma-separated option as a list, empty entries dropped. */
const listOf = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/** A lag in plain units. */
function fmtLag(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

const RETENTION_OPTION = {
  type: 'string',
  value: '<[interval=]days,...>',
  description: 'days of candles to keep: 365d sets the market default, 1m=365d,1d=forever sets intervals (forever: never delete)',
} as const;

/**
 * `--retention 1m=365d,1d=forever` (intervals), `--retention 90d` or `default=90d` (the market's
 * default, followed by every interval without its own) as the API's retentionDays.
 */
export function parseRetention(v: string | undefined): Record<string, number | null> | undefined {
  if (v === undefined) return undefined;
  const items = listOf(v);
  if (items.length === 0) throw new UsageError('--retention needs a value, e.g. 1m=365d,1d=forever or 90d');
  const out: Record<string, number | null> = {};
  for (const item of items) {
    const m = /^(?:([^=]+)=)?(.*)$/.exec(item)!;
    const key = m[1]?.trim() ?? 'default';
    const value = m[2]!.trim();
    if (key !== 'default' && !(INTERVALS as readonly string[]).includes(key)) {
      throw new UsageError(`--retention: unknown interval ${JSON.stringify(key)} in ${JSON.stringify(item)}; expected default or one of ${INTERVALS.join(' ')}`);
    }
    if (key in out) throw new UsageError(`--retention: ${key} is given twice`);
    if (value === 'forever') out[key] = null;
    else {
      const days = /^(\d+)d$/.exec(value);
      if (!days || Number(days[1]) < 1 || Number(days[1]) > 36500) {
        throw new UsageError(`--retention: ${JSON.stringify(item)} is not a retention; write days as 365d (1 to 36500 days) or forever`);
      }
      out[key] = Number(days[1]);
    }
  }
  return out;
}

/** A followed market's retention in a few words: `1m 365d, 1d forever, 30d otherwise` (just the default when no interval differs). */
export function fmtRetention(r: Record<string, number | null>, intervals: readonly string[]): string {
  const days = (d: number | null | undefined) => (d === null || d === undefined ? 'forever' : `${d}d`);
  const def = r.default ?? null;
  const own = intervals.filter((i) => (r[i] ?? null) !== def).map((i) => `${i} ${days(r[i])}`);
  return own.length ? `${own.join(', ')}, ${days(def)} otherwise` : days(def);
}

const ONE_MARKET = { exchange: { ...EXCHANGE, required: true }, symbol: { ...SYMBOL, required: true } } as const;

const list = defineCommand({
  summary: "every stored or followed series: its state, newest closed candle, lag, gaps, dead-lettered messages and last pull error",
  options: {
    ...SERIES_OPTIONS,
    followed: { type: 'boolean', default: false, description: 'list the followed markets themselves: intervals, state, start, source' },
    ...OUTPUT_OPTIONS,
  },
  notes: API_NOTES,
  async run({ values }) {
    const mode = outputMode(values);
    const client = apiClient();
    const filter = {
      ...(values.exchange ? { exchange: values.exchange as Exchange } : {}),
      ...(values.symbol ? { symbol: values.symbol } : {}),
    };
    if (values.followed) {
      if (values.interval) throw new UsageError('--followed lists markets, not series: leave out --interval');
      const { markets } = await client.followedMarkets(filter);
      const columns = ['exchange', 'symbol', 'intervals', 'state', 'start', 'retention', 'source', 'added'];
      const rows = markets.map((m) => [
        m.exchange,
        m.symbol,
        m.intervals.join(','),
        m.removedAt !== null ? `removed ${fmtTime(m.removedAt)}` : m.paused ? 'paused' : 'following',
        fmtTime(m.start),
        fmtRetention(m.retentionDays, m.intervals),
        m.source,
        fmtTime(m.addedAt),
      ]);
      if (mode === 'json') console.log(JSON.stringify({ markets }));
      else if (mode === 'csv') process.stdout.write(toCsv(columns, rows));
      else console.log(markets.length ? table(columns, rows) : 'no market followed yet: candlekeep markets add --exchange ... --symbol ...');
      return 0;
    }
    const { markets }: Markets = await client.markets({ ...filter, ...(values.interval ? { interval: values.interval as Interval } : {}) });
    const columns = ['exchange', 'symbol', 'interval', 'state', 'retention', 'candles', 'first', 'newest closed', 'lag', 'gaps', 'missing', 'dead-lettered', 'last error'];
    const rows = markets.map((m) => [
      m.exchange,
      m.symbol,
      m.interval,
      m.state,
      // Days kept, and how far candles are expired (deleted, or due at the next run).
      m.retentionDays === null ? (m.expiredBefore === null ? '' : `expired < ${fmtTime(m.expiredBefore)}`) : `${m.retentionDays}d (expired < ${fmtTime(m.expiredBefore)})`,
      m.candles,
      fmtTime(m.firstOpenTime),
      fmtTime(m.newestClosedOpenTime),
      fmtLag(m.lagMs),
      m.gapCount,
      m.missingCandles,
      // Messages (candles) waiting in the dead-letter queue: a redrive, not a backfill, stores them.
      m.deadLetteredMessages ? `${m.deadLetteredMessages} (${m.deadLetteredCandles})` : 0,
      m.lastError ?? '',
    ]);
    if (mode === 'json') console.log(JSON.stringify({ markets }));
    else if (mode === 'csv') process.stdout.write(toCsv(columns, rows));
    else console.log(markets.length ? table(columns, rows) : 'no series stored or followed yet');
    return 0;
  },
});

const add = defineCommand({
  summary: "follow markets from the next tick on: named symbols, or an exchange's top N by 24h quote volume",
  options: {
    exchange: { ...EXCHANGE, required: true },
    symbol: { ...SYMBOL, value: '<BASE/QUOTE,...>', description: 'one unified symbol, or several separated by commas' },
    quote: { type: 'string', value: '<currency>', description: 'with --top: only pairs quoted in this currency, e.g. USDT' },
    top: { type: 'string', value: '<n>', description: 'the N most traded pairs by 24h quote volume (not on coinbase)' },
    interval: { ...INTERVAL, value: '<1m,...>', description: 'intervals to follow, separated by commas (default 1m)' },
    start: { type: 'string', value: '<ISO|ms>', description: 'first candle to backfill from (default: only the newest page)' },
    retention: RETENTION_OPTION,
    json: JSON_OPTION,
  },
  notes: [
    'Refused at once, all or nothing, when the exchange lacks an interval or does not list a symbol, in its own words.',
    ...API_NOTES,
  ],
  async run({ values }) {
    const exchange = values.exchange as Exchange;
    const client = apiClient();
    const top = positiveInt('top', values.top);
    let symbols = listOf(values.symbol);
    if (symbols.length > 0 && (top !== undefined || values.quote)) throw new UsageError('choose --symbol, or a selection with --quote and --top, not both');
    if (symbols.length === 0) {
      if (top === undefined) throw new UsageError('--symbol is required (one, or several separated by commas), or --top N [--quote USDT]');
      // The N most traded by 24h quote volume, from the exchange's own listing.
      const { instruments } = await client.instruments({ exchange, top, ...(values.quote ? { quote: values.quote } : {}) });
      symbols = instruments.map((i) => i.symbol);
      if (symbols.length === 0) throw new UsageError(`${exchange} lists no instrument open for trading${values.quote ? ` quoted in ${values.quote}` : ''}`);
      if (!values.json) progress(`${exchange}: the ${symbols.length} most traded${values.quote ? ` ${values.quote}` : ''} pairs by 24h quote volume`);
    }
    const intervals = listOf(values.interval ?? '1m') as Interval[];
    const retention = parseRetention(values.retention);
    const { markets } = await client.followMarkets({
      markets: symbols.map((symbol) => ({
        exchange,
        symbol,
        intervals,
        ...(values.start ? { start: values.start } : {}),
        ...(retention ? { retentionDays: retention } : {}),
      })),
    });
    if (values.json) console.log(JSON.stringify({ markets }));
    else {
      for (const m of markets) {
        console.log(`following ${m.exchange} ${m.symbol} ${m.intervals.join(',')}${m.paused ? ' (paused)' : ''}, keeping ${fmtRetention(m.retentionDays, m.intervals)}`);
      }
      console.log('pulled from the next tick on; candlekeep markets list shows their freshness');
    }
    return 0;
  },
});

const instruments = defineCommand({
  summary: "an exchange's spot instruments from its own listing, most traded first: what can be followed",
  options: {
    exchange: { ...EXCHANGE, required: true },
    quote: { type: 'string', value: '<currency>', description: 'only pairs quoted in this currency, e.g. USDT' },
    top: { type: 'string', value: '<n>', description: 'the N most traded by 24h quote volume (not on coinbase)' },
    all: { type: 'boolean', short: 'a', default: false, description: 'halted and delisted instruments too' },
    ...OUTPUT_OPTIONS,
  },
  notes: API_NOTES,
  async run({ values }) {
    const mode = outputMode(values);
    const top = positiveInt('top', values.top);
    const listing = await apiClient().instruments({
      exchange: values.exchange as Exchange,
      ...(values.quote ? { quote: values.quote } : {}),
      ...(top !== undefined ? { top } : {}),
      ...(values.all ? { trading: false } : {}),
    });
    const columns = ['symbol', 'native', 'status', '24h quote volume'];
    const rows = listing.instruments.map((i) => [i.symbol, i.native, i.status, i.quoteVolume24h === null ? '' : Math.round(i.quoteVolume24h)]);
    if (mode === 'json') console.log(JSON.stringify(listing));
    else if (mode === 'csv') process.stdout.write(toCsv(columns, rows));
    else console.log(rows.length ? table(columns, rows) : 'no instrument matches');
    return 0;
  },
});

function change(what: 'set' | 'pause' | 'resume') {
  return defineCommand({
    summary:
      what === 'set'
        ? 'change the intervals a market follows from now on, or how long it keeps their candles'
        : what === 'pause'
          ? 'stop pulling a market (every interval) until resumed; its data stays'
          : 'pull a paused market again from the next tick',
    options: {
      ...ONE_MARKET,
      ...(what === 'set'
        ? {
            interval: { ...INTERVAL, value: '<1m,...>', description: 'the intervals to follow, separated by commas' },
            retention: RETENTION_OPTION,
          }
        : {}),
      json: JSON_OPTION,
    },
    notes: what === 'set' ? ['Give --interval, --retention or both; intervals left out of --retention keep theirs.', ...API_NOTES] : API_NOTES,
    async run({ values }) {
      const intervals = 'interval' in values && typeof values.interval === 'string' ? (listOf(values.interval) as Interval[]) : undefined;
      const retention = 'retention' in values && typeof values.retention === 'string' ? parseRetention(values.retention) : undefined;
      if (what === 'set' && intervals === undefined && retention === undefined) throw new UsageError('give --interval, --retention or both');
      const m = await apiClient().changeMarket({
        exchange: values.exchange as Exchange,
        symbol: values.symbol,
        ...(what === 'set' ? { ...(intervals ? { intervals } : {}), ...(retention ? { retentionDays: retention } : {}) } : { paused: what === 'pause' }),
      });
      if (values.json) console.log(JSON.stringify(m));
      else console.log(`${m.exchange} ${m.symbol}: ${m.paused ? 'paused' : 'following'} ${m.intervals.join(',')}, keeping ${fmtRetention(m.retentionDays, m.intervals)}`);
      return 0;
    },
  });
}

const remove = defineCommand({
  summary: 'stop following a market; its stored candles are kept (and counted) unless --purge',
  options: {
    ...ONE_MARKET,
    purge: { type: 'boolean', default: false, description: 'also delete its candles, coverage, restatements and backfills' },
    json: JSON_OPTION,
  },
  notes: API_NOTES,
  async run({ values }) {
    const removal = await apiClient().removeMarket({ exchange: values.exchange as Exchange, symbol: values.symbol, purge: values.purge });
    console.log(values.json ? JSON.stringify(removal) : removal.detail);
    return 0;
  },
});

export const command = defineGroup({
  summary: 'followed markets through the API: list | add | instruments | set | pause | resume | remove',
  subcommands: { list, add, instruments, set: change('set'), pause: change('pause'), resume: change('resume'), remove },
  default: list,
});
