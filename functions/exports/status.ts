import * as z from 'zod';
import { EXPORT_FORMATS } from './request.ts';

/** The status resource of an export, as POST /v1/exports and GET /v1/exports/{id} answer it. */
export const EXPORT_STATUSES = ['queued', 'running', 'done', 'failed', 'expired'] as const;

export const exportStatusSchema = z.object({
  id: z.uuid().meta({ description: 'GET /v1/exports/{id} answers the status.' }),
  status: z.enum(EXPORT_STATUSES).meta({
    description: '`queued`, `running`, then `done` (with `download`) or `failed` (with `error`); `expired` once the bucket removed the file.',
  }),
  format: z.enum(EXPORT_FORMATS),
  request: z.record(z.string(), z.unknown()).meta({ description: 'The request as accepted (times in epoch ms).' }),
  requestedAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  finishedAt: z.iso.datetime().nullable(),
  progress: z.object({
    sourceCandles: z.number().int().meta({ description: 'Stored candles read so far.' }),
    totalSourceCandles: z.number().int().nullable().meta({ description: 'Stored candles the export reads in all; null until planned.' }),
    fraction: z.number().min(0).max(1).nullable().meta({ description: 'sourceCandles / totalSourceCandles (1 when done).' }),
    rows: z.number().int().meta({ description: 'Rows written so far.' }),
    bytes: z.number().int().meta({ description: 'Bytes of the file written so far.' }),
  }),
  error: z.string().nullable().meta({ description: 'Why a failed export failed.' }),
  download: z
    .object({
      url: z.string().meta({ description: 'A presigned GET of the file: no API key needed, valid until expiresAt. Ask the status again for a new one.' }),
      expiresAt: z.iso.datetime(),
      fileName: z.string(),
    })
    .nullable()
    .meta({ description: 'When done: where to download the file.' }),
  fileExpiresAt: z.iso.datetime().nullable().meta({ description: 'When the bucket removes the file (its lifecycle rule).' }),
});
export type ExportStatusBody = z.infer<typeof exportStatusSchema>;
