import * as z from 'zod';
import { exchangeSchema, symbolSchema } from '../candles/candle.ts';
import { intervalSchema } from '../candles/intervals.ts';
import { gapPolicySchema, seriesRefSchema } from '../api/schemas.ts';
import { parseTime } from '../http/time.ts';

export const EXPORT_FORMATS = ['parquet', 'csv.gz'] as const;
export const exportFormatSchema = z.enum(EXPORT_FORMATS, {
  error: (i) => `unknown export format ${JSON.stringify(i.input)}; expected parquet or csv.gz`,
});
export type ExportFormat = z.infer<typeof exportFormatSchema>;

const exportTime = (description: string) =>
  z
    .union([z.string(), z.number()])
    .transform((v, ctx) => {
      const r = parseTime(String(v));
      if (r.ok) return r.ms;
      ctx.issues.push({ code: 'custom', message: r.message, input: v });
      return z.NEVER;
    })
    .meta({ description: `${description} ISO 8601 or epoch milliseconds.` });

/**
 * What to export: a list of series, or a market selection (every stored symbol of an exchange, or
 * some symbols, at one interval). Intervals that are not stored are resampled exactly as candle
 * reads resample them, and the gap policy is the reads' too.
 */
export const exportRequestSchema = z
  .object({
    series: z.array(seriesRefSchema).min(1).max(1000).optional().meta({ description: 'Series as exchange:BASE/QUOTE:interval.' }),
    markets: z
      .object({
        exchange: exchangeSchema.optional(),
        symbols: z.array(symbolSchema).min(1).max(1000).optional(),
        interval: intervalSchema,
      })
      .strict()
      .optional()
      .meta({ description: 'Every stored symbol (of `exchange`, or the listed `symbols`) at `interval`.' }),
    start: exportTime('First open time (inclusive); default: the first stored candle.').optional(),
    end: exportTime('Open time to stop before (exclusive); default: no limit.').optional(),
    gaps: gapPolicySchema.default('omit'),
    asOf: exportTime('Point-in-time export: the candles as stored at this moment, from the restatement history (see GET /v1/candles).').optional(),
    format: exportFormatSchema.default('parquet'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (!r.series === !r.markets) ctx.addIssue({ code: 'custom', message: 'give either series or markets', path: ['series'] });
    if (r.start !== undefined && r.end !== undefined && r.start >= r.end) ctx.addIssue({ code: 'custom', message: 'start must be before end', path: ['end'] });
  });
export type ExportRequest = z.output<typeof exportRequestSchema>;
export type ExportRequestInput = z.input<typeof exportRequestSchema>;

/** Where an export's file goes in the bucket; the bucket's lifecycle rule expires this prefix. */
export const EXPORTS_PREFIX = 'exports/';
/** Days the exports bucket keeps a file before its lifecycle rule removes it. */
export const EXPORT_RETENTION_DAYS = 7;
export const CONTENT_TYPES: Record<ExportFormat, string> = { parquet: 'application/vnd.apache.parquet', 'csv.gz': 'application/gzip' };

export const exportKey = (id: string, format: ExportFormat) => `${EXPORTS_PREFIX}${id}.${format}`;
export const exportFileName = (id: string, format: ExportFormat) => `candlekeep-export-${id}.${format}`;

/** The request in the form the schema reads back: what the exports table stores. */
export function exportRequestInput(req: ExportRequest): ExportRequestInput {
  return {
    ...(req.series ? { series: req.series.map((s) => `${s.exchange}:${s.symbol}:${s.interval}`) } : {}),
    ...(req.markets ? { markets: req.markets } : {}),
    ...(req.start !== undefined ? { start: req.start } : {}),
    ...(req.end !== undefined ? { end: req.end } : {}),
    ...(req.asOf !== undefined ? { asOf: req.asOf } : {}),
    gaps: req.gaps,
    format: req.format,
  };
}
