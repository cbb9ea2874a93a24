import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { exchangeSchema, symbolSchema } from '../../functions/candles/candle.ts';
import { intervalSchema } from '../../functions/candles/intervals.ts';
import { parseImportFile, type ImportHints, type ParsedFile } from '../../functions/imports/formats.ts';
import { importFiles } from '../../functions/imports/import.ts';
import { CandleStore } from '../../functions/store/candles.ts';
import { defineCommand, UsageError } from '../command.ts';
import { withLocalDatabase } from '../database.ts';
import { JSON_OPTION, QUIET_OPTION, SERIES_OPTIONS } from '../options.ts';
import { endProgress, progressBar, requireSchema } from './pull.ts';

function hints(values: { exchange?: string | undefined; symbol?: string | undefined; interval?: string | undefined }): ImportHints {
  const out: ImportHints = {};
  if (values.exchange !== undefined) {
    const r = exchangeSchema.safeParse(values.exchange);
    if (!r.success) throw new UsageError(r.error.issues[0]?.message ?? 'bad --exchange');
    out.exchange = r.data;
  }
  if (values.symbol !== undefined) {
    const r = symbolSchema.safeParse(values.symbol.toUpperCase());
    if (!r.success) throw new UsageError(`--symbol ${JSON.stringify(values.symbol)}: ${r.error.issues[0]?.message}`);
    out.symbol = r.data;
  }
  if (values.interval !== undefined) {
    const r = intervalSchema.safeParse(values.interval);
    if (!r.success) throw new UsageError(r.error.issues[0]?.message ?? 'bad --interval');
    out.interval = r.data;
  }
  return out;
}

export const command = defineCommand({
  summary: 'store candle files of freqtrade, CCXT or Binance public data through the writer (all or nothing), into DATABASE_URL or the embedded database',
  args: '<file> [...]',
  options: {
    ...SERIES_OPTIONS,
    json: JSON_OPTION,
    quiet: QUIET_OPTION,
  },
  notes: [
    'freqtrade: <datadir>/<exchange>/BASE_QUOTE-<tf>.json or .json.gz; CCXT OHLCV arrays: .json or .csv (with -e, -s and -i);',
    'Binance public data: SYMBOL-<interval>-YYYY-MM(-DD).zip, checked against SYMBOL-...zip.CHECKSUM when it is beside it.',
    '--exchange, --symbol and --interval name what the file cannot say, and must agree with what it says.',
  ],
  async run({ values, positionals }) {
    if (positionals.length === 0) throw new UsageError('give the files to import');
    const h = hints(values);
    const now = Date.now();
    // Every file is read and checked before anything is written.
    const files: { parsed: ParsedFile; mtime: number }[] = [];
    for (const path of positionals) {
      if (!existsSync(path)) throw new UsageError(`${path}: no such file`);
      const checksumPath = `${path}.CHECKSUM`;
      const checksum = existsSync(checksumPath) ? await readFile(checksumPath, 'utf8') : undefined;
      const parsed = parseImportFile(path, await readFile(path), h, now, checksum);
      files.push({ parsed, mtime: Math.min(now, Math.floor((await stat(path)).mtimeMs)) });
    }
    const mtimes = new Map(files.map((f) => [f.parsed, f.mtime]));
    return withLocalDatabase(async (pool) => {
      await requireSchema(pool);
      let result;
      try {
        result = await importFiles(pool, new CandleStore(), files.map((f) => f.parsed), (f) => mtimes.get(f)!, (p) => {
          if (!values.quiet) progressBar('import', p.total ? p.candles / p.total : 1, `${p.candles}/${p.total} candles`);
        });
      } finally {
        if (!values.quiet) endProgress();
      }
      const summary = {
        files: files.map(({ parsed: f }) => ({
          file: f.path, format: f.format, ...f.series, candles: f.candles.length, timeUnit: f.timeUnit,
          ...(f.checksum ? { checksum: f.checksum } : {}),
          ...(f.range ? { range: { start: new Date(f.range.start).toISOString(), end: new Date(f.range.end).toISOString() } } : {}),
        })),
        ...result,
      };
      if (values.json) console.log(JSON.stringify(summary));
      else {
        for (const f of summary.files) {
          console.log(`${f.file}: ${f.format}, ${f.exchange} ${f.symbol} ${f.interval}, ${f.candles} candles (${f.timeUnit})${f.checksum ? `, checksum ${f.checksum}` : ''}`);
        }
        console.log(`${result.received} candles read, ${result.written} written, ${result.unchanged} already stored as they are`);
      }
      return 0;
    });
  },
});
