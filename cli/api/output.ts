import { CandlekeepClient } from '../../client/index.ts';
import { UsageError } from '../command.ts';

/** The API client the CLI commands use: CANDLEKEEP_URL and CANDLEKEEP_API_KEY. */
export function apiClient(): CandlekeepClient {
  if (!process.env.CANDLEKEEP_URL) {
    throw new UsageError('set CANDLEKEEP_URL (e.g. http://127.0.0.1:8080 for `candlekeep serve`, or the deployed ApiUrl) and CANDLEKEEP_API_KEY');
  }
  return new CandlekeepClient();
}

/** What --help says about the commands that call the API. */
export const API_NOTES = ['Environment: CANDLEKEEP_URL (e.g. http://127.0.0.1:8080 for candlekeep serve, or the deployed ApiUrl) and CANDLEKEEP_API_KEY.'];

export type Cell = string | number | boolean | null | undefined;

const text = (v: Cell) => (v === null || v === undefined ? '' : String(v));

/** A plain aligned table for people; numbers align right. */
export function table(columns: string[], rows: Cell[][]): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => text(r[i]).length)));
  const line = (cells: Cell[]) =>
    cells
      .map((v, i) => (typeof v === 'number' ? text(v).padStart(widths[i]!) : text(v).padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Output mode from --json / --csv; both at once is a usage error. */
export function outputMode(values: { json?: boolean | undefined; csv?: boolean | undefined }): 'table' | 'json' | 'csv' {
  if (values.json && values.csv) throw new UsageError('choose one of --json and --csv');
  return values.json ? 'json' : values.csv ? 'csv' : 'table';
}

export const fmtTime = (ms: number | null | undefined) => (ms === null || ms === undefined ? '' : new Date(ms).toISOString().replace('.000Z', 'Z'));

export function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--${name} must be a positive whole number`);
  return Number(v);
}
