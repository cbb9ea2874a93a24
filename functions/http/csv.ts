/**
 * RFC 4180 CSV with a header row: what `pandas.read_csv(url)` and spreadsheets read without options.
 * Text cells a spreadsheet would evaluate as a formula get a leading `'`.
 */
export type CsvValue = string | number | boolean | null | undefined;

const NEEDS_QUOTES = /[",\r\n]/;
// A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in a
// strategy version would become a live link), so OWASP's advice is to prefix it with a quote.
const FORMULA_START = /^[=+\-@\t\r]/;
// Numbers and decimal text (-0.5, +1e-3) start with a sign too, but they are data, not formulas.
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function field(v: CsvValue): string {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : String(v);
  if (typeof v === 'string' && FORMULA_START.test(s) && !NUMBER.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(columns: readonly string[], rows: Iterable<readonly CsvValue[]>): string {
  return columns.map(field).join(',') + '\n' + csvRows(rows);
}

/** Rows without a header: what a streamed CSV appends after its first part. */
export function csvRows(rows: Iterable<readonly CsvValue[]>): string {
  let out = '';
  for (const r of rows) {
    let line = '';
    for (let i = 0; i < r.length; i++) {
      if (i > 0) line += ',';
      line += field(r[i]);
    }
    out += line + '\n';
  }
  return out;
}

/** A CSV answer: the header row, the rows, and the response headers that carry what a JSON body would hold beside them. */
export interface CsvTable {
  columns: readonly string[];
  rows: Iterable<readonly CsvValue[]>;
  headers?: Record<string, string>;
}

/** CSV has no room for the next page's cursor: it travels in a header. */
export const nextCursorHeader = (cursor: string | null): Record<string, string> => (cursor ? { 'X-Next-Cursor': cursor } : {});
