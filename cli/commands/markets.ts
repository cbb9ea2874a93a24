import type { Exchange, Interval } from '../../client/index.ts';
import { toCsv } from '../../functions/http/csv.ts';
import { defineCommand } from '../command.ts';
import { apiClient, API_NOTES, fmtTime, outputMode, table } from '../api/output.ts';
import { OUTPUT_OPTIONS, SERIES_OPTIONS } from '../options.ts';

export const command = defineCommand({
  summary: 'stored series with first/last candle, count, gaps and dead-lettered messages (from the API)',
  options: { ...SERIES_OPTIONS, ...OUTPUT_OPTIONS },
  notes: API_NOTES,
  async run({ values }) {
    const mode = outputMode(values);
    const { markets } = await apiClient().markets({
      ...(values.exchange ? { exchange: values.exchange as Exchange } : {}),
      ...(values.symbol ? { symbol: values.symbol } : {}),
      ...(values.interval ? { interval: values.interval as Interval } : {}),
    });
    const columns = ['exchange', 'symbol', 'interval', 'candles', 'first', 'last', 'gaps', 'missing', 'dead-lettered'];
    const rows = markets.map((m) => [
      m.exchange,
      m.symbol,
      m.interval,
      m.candles,
      fmtTime(m.firstOpenTime),
      fmtTime(m.lastOpenTime),
      m.gapCount,
      m.missingCandles,
      // Messages (candles) waiting in the dead-letter queue: a redrive, not a backfill, stores them.
      m.deadLetteredMessages ? `${m.deadLetteredMessages} (${m.deadLetteredCandles})` : 0,
    ]);
    if (mode === 'json') console.log(JSON.stringify({ markets }));
    else if (mode === 'csv') process.stdout.write(toCsv(columns, rows));
    else console.log(markets.length ? table(columns, rows) : 'no series stored yet');
    return 0;
  },
});
