import type { CandlesParams, Exchange, GapPolicy, Interval } from '../../client/index.ts';
import type { Command } from '../command.ts';
import { progress, UsageError } from '../command.ts';
import { apiClient, fmtTime, outputMode, positiveInt, table } from '../api/output.ts';
import { OUTPUT_OPTIONS, PAGE_OPTIONS, parseOptions, SERIES_OPTIONS } from '../options.ts';

export const command: Command = {
  summary: 'candle history from the API (CANDLEKEEP_URL): table, --json or --csv',
  usage:
    'candlekeep candles --exchange binance --symbol BTC/USDT --interval 1h [--start 2024-01-01] [--end ...] [--limit N] [--gaps omit|null|ffill] [--all] [--json|--csv]',
  async run(argv) {
    const values = parseOptions(argv, { ...SERIES_OPTIONS, start: { type: 'string' }, end: { type: 'string' }, gaps: { type: 'string' }, ...PAGE_OPTIONS, ...OUTPUT_OPTIONS });
    if (!values.exchange || !values.symbol || !values.interval) throw new UsageError('--exchange, --symbol and --interval are required');
    const mode = outputMode(values);
    const client = apiClient();
    // The API validates every value and answers with a message naming the bad one.
    const params: CandlesParams = {
      exchange: values.exchange as Exchange,
      symbol: values.symbol,
      interval: values.interval as Interval,
      ...(values.start ? { start: values.start } : {}),
      ...(values.end ? { end: values.end } : {}),
      ...(values.gaps ? { gaps: values.gaps as GapPolicy } : {}),
      ...(values.cursor ? { cursor: values.cursor } : {}),
    };
    const limit = positiveInt('limit', values.limit);
    if (limit !== undefined) params.limit = limit;

    if (mode === 'csv') {
      let cursor = params.cursor;
      let first = true;
      do {
        const page = await client.candlesCsv({ ...params, ...(cursor ? { cursor } : {}) });
        process.stdout.write(first ? page.csv : page.csv.slice(page.csv.indexOf('\n') + 1));
        first = false;
        cursor = page.nextCursor ?? undefined;
        if (cursor && !values.all) progress(`more candles: --cursor ${cursor} (or --all)`);
      } while (cursor && values.all);
      return 0;
    }
    const pages = [];
    let cursor = params.cursor;
    do {
      const page = await client.candles({ ...params, ...(cursor ? { cursor } : {}) });
      pages.push(page);
      cursor = page.nextCursor ?? undefined;
      if (values.all && cursor) progress(`${pages.reduce((n, p) => n + p.count, 0)} candles...`);
    } while (cursor && values.all);
    const last = pages[pages.length - 1]!;
    const candles = pages.flatMap((p) => p.candles);
    if (mode === 'json') {
      console.log(JSON.stringify({ ...last, count: candles.length, candles }));
      return 0;
    }
    console.log(
      table(
        ['time', 'open', 'high', 'low', 'close', 'volume', 'closed', ...(last.resampledFrom ? ['from'] : [])],
        candles.map((c) => [
          fmtTime(c.openTime),
          c.open,
          c.high,
          c.low,
          c.close,
          c.volume,
          c.gap ? 'gap' : c.closed ? 'yes' : 'open',
          ...(last.resampledFrom ? [`${c.sourceCandles}/${last.sourceCandlesPerBucket}`] : []),
        ]),
      ),
    );
    progress(
      `${candles.length} candles${last.resampledFrom ? `, resampled from ${last.resampledFrom}` : ''}, gaps=${last.gaps}` +
        (last.nextCursor ? `; more: --cursor ${last.nextCursor} (or --all)` : ''),
    );
    return 0;
  },
};
