import type { CandlesParams, Exchange, GapPolicy, Interval } from '../../client/index.ts';
import { defineCommand, progress } from '../command.ts';
import { apiClient, API_NOTES, fmtTime, outputMode, positiveInt, table } from '../api/output.ts';
import { ONE_SERIES_OPTIONS, OUTPUT_OPTIONS, PAGE_OPTIONS } from '../options.ts';

export const command = defineCommand({
  summary: 'candle history from the API (CANDLEKEEP_URL): table, --json or --csv',
  options: {
    ...ONE_SERIES_OPTIONS,
    start: { type: 'string', value: '<ISO|ms>', description: 'first open time (inclusive): ISO 8601 or epoch ms' },
    end: { type: 'string', value: '<ISO|ms>', description: 'end of the range (exclusive)' },
    gaps: { type: 'string', value: '<omit|null|ffill>', description: 'missing candles: left out (omit, the default), null rows, or forward-filled' },
    'as-of': { type: 'string', value: '<ISO|ms>', description: 'the candles as stored at this moment (restated candles show their values then)' },
    ...PAGE_OPTIONS,
    ...OUTPUT_OPTIONS,
  },
  notes: API_NOTES,
  async run({ values }) {
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
      ...(values['as-of'] ? { asOf: values['as-of'] } : {}),
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
});
