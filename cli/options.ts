import type { OptionSpec } from './command.ts';

/**
 * The short flags. Each means one long option in every command: defineCommand refuses a
 * declaration that gives a letter to another option, and `candlekeep --help` prints this table.
 * (-V, --version is the program's own.)
 */
export const SHORT_FLAGS: Readonly<Record<string, string>> = {
  e: 'exchange',
  s: 'symbol',
  i: 'interval',
  f: 'from',
  t: 'to',
  l: 'limit',
  a: 'all',
  j: 'json',
  c: 'csv',
  q: 'quiet',
  o: 'out',
  n: 'dry-run',
  w: 'workers',
  p: 'port',
  h: 'help',
};

/*
 * The options several commands share, declared once with their short flag and help text. New
 * commands spread these into their options instead of declaring their own.
 */

const opt = <const O extends OptionSpec>(o: O) => o;

export const EXCHANGE = opt({ type: 'string', short: 'e', value: '<id>', description: 'exchange: binance, okx, bybit, coinbase or kraken' });
export const SYMBOL = opt({ type: 'string', short: 's', value: '<BASE/QUOTE>', description: 'unified symbol, e.g. BTC/USDT' });
export const INTERVAL = opt({ type: 'string', short: 'i', value: '<1m..1w>', description: 'candle interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w' });

/** Which series, to filter by (the API, or the command's own check, names a bad value). */
export const SERIES_OPTIONS = { exchange: EXCHANGE, symbol: SYMBOL, interval: INTERVAL } as const;
/** Which series, for commands that work on exactly one. */
export const ONE_SERIES_OPTIONS = {
  exchange: { ...EXCHANGE, required: true },
  symbol: { ...SYMBOL, required: true },
  interval: { ...INTERVAL, required: true },
} as const;

/** A time range: ISO 8601 (UTC unless a zone is given) or epoch milliseconds. */
export const RANGE_OPTIONS = {
  from: opt({ type: 'string', short: 'f', value: '<ISO|ms>', description: 'start of the range (inclusive): ISO 8601, UTC unless a zone is given, or epoch ms' }),
  to: opt({ type: 'string', short: 't', value: '<ISO|ms>', description: 'end of the range (exclusive), same forms as --from' }),
} as const;

/** Paging through a listing: page size, where to resume, or every page. */
export const PAGE_OPTIONS = {
  limit: opt({ type: 'string', short: 'l', value: '<n>', description: 'items per page' }),
  cursor: opt({ type: 'string', value: '<cursor>', description: 'resume from the cursor a previous page printed' }),
  all: opt({ type: 'boolean', short: 'a', default: false, description: 'follow every page' }),
} as const;

export const JSON_OPTION = opt({ type: 'boolean', short: 'j', default: false, description: 'print JSON (one document) for scripts' });
export const CSV_OPTION = opt({ type: 'boolean', short: 'c', default: false, description: 'print CSV' });
export const QUIET_OPTION = opt({ type: 'boolean', short: 'q', default: false, description: 'no progress on stderr' });
export const OUT_OPTION = opt({ type: 'string', short: 'o', value: '<file>', description: 'write to this file instead of stdout' });
export const DRY_RUN_OPTION = opt({ type: 'boolean', short: 'n', default: false, description: 'show what would happen, change nothing' });
export const WORKERS_OPTION = opt({ type: 'string', short: 'w', value: '<n>', description: 'parallel workers, 1 to 32 (default 2)' });
export const PORT_OPTION = opt({ type: 'string', short: 'p', value: '<port>', description: 'port to listen on' });

/** How to print: a table for people by default (see outputMode). */
export const OUTPUT_OPTIONS = { json: JSON_OPTION, csv: CSV_OPTION } as const;
