import * as z from 'zod';
import { sourceInterval } from '../../candles/intervals.ts';
import { NotFound } from '../../errors.ts';
import { exportFileName, exportRequestInput, exportRequestSchema, type ExportRequest } from '../../exports/request.ts';
import type { ExportService } from '../../exports/service.ts';
import { exportStatusSchema, type ExportStatusBody } from '../../exports/status.ts';
import { parseJsonBody } from '../../http/body.ts';
import { HttpProblem } from '../../http/problem.ts';
import { json } from '../../http/response.ts';
import { iso, isoOrNull } from '../../http/time.ts';
import type { Queryable } from '../../store/db.ts';
import { getExportJob, insertExportJob, type ExportJob } from '../../store/export-jobs.ts';
import { listSeries } from '../../store/series.ts';
import { resolveSource } from '../candles/source.ts';
import { COMMON, defineRoute, problems } from '../route.ts';


async function statusBody(job: ExportJob, exports: ExportService | undefined, now: number): Promise<ExportStatusBody> {
  const expired = job.status === 'done' && job.expiresAt !== null && job.expiresAt <= now;
  const total = job.totalSourceCandles;
  const fraction = job.status === 'done' ? 1 : total === null ? null : total === 0 ? 0 : Math.min(1, job.sourceCandles / total);
  let download: ExportStatusBody['download'] = null;
  if (job.status === 'done' && !expired && job.resultKey) {
    const fileName = exportFileName(job.id, job.format);
    const link = await requireExports(exports).downloadUrl(job.resultKey, fileName);
    // A link never outlives the file it points at.
    download = { url: link.url, expiresAt: iso(Math.min(link.expiresAt, job.expiresAt ?? link.expiresAt)), fileName };
  }
  return {
    id: job.id,
    status: expired ? 'expired' : job.status,
    format: job.format,
    request: job.request as Record<string, unknown>,
    requestedAt: iso(job.requestedAt),
    startedAt: isoOrNull(job.startedAt),
    finishedAt: isoOrNull(job.finishedAt),
    progress: { sourceCandles: job.sourceCandles, totalSourceCandles: total, fraction, rows: job.rows, bytes: job.bytes },
    error: job.error,
    download,
    fileExpiresAt: job.status === 'done' && job.expiresAt !== null ? iso(job.expiresAt) : null,
  };
}

function requireExports(exports: ExportService | undefined): ExportService {
  if (!exports) {
    throw new HttpProblem(501, 'this API has no exports bucket (CANDLEKEEP_EXPORTS_BUCKET is unset); run `candlekeep export --out FILE` against the database instead');
  }
  return exports;
}

/**
 * What a read of the same series would refuse, refused now rather than by the worker: series that
 * are not stored or cannot give the interval, a market selection that matches nothing.
 */
async function checkStored(db: Queryable, req: ExportRequest): Promise<void> {
  if (req.series) {
    for (const [i, s] of req.series.entries()) {
      try {
        await resolveSource(db, s.exchange, s.symbol, s.interval);
      } catch (err) {
        if (err instanceof NotFound) throw new NotFound(`series[${i}] ${s.exchange}:${s.symbol}:${s.interval}: ${err.message}`, `series[${i}]`);
        throw err;
      }
    }
    return;
  }
  const m = req.markets!;
  const stored = await listSeries(db, { exchange: m.exchange, symbols: m.symbols });
  if (stored.length === 0) throw new NotFound(`no stored series match the market selection${m.exchange ? ` on ${m.exchange}` : ''}; GET /v1/markets lists them`, 'markets');
  const bySymbol = new Map<string, (typeof stored)[number]['interval'][]>();
  for (const s of stored) bySymbol.set(`${s.exchange} ${s.symbol}`, [...(bySymbol.get(`${s.exchange} ${s.symbol}`) ?? []), s.interval]);
  if (![...bySymbol.values()].some((intervals) => sourceInterval(m.interval, intervals) !== undefined)) {
    throw new NotFound(`no selected market has ${m.interval} candles or a finer stored interval that divides ${m.interval}`, 'markets.interval');
  }
}

export const requestExport = defineRoute({
  method: 'POST',
  path: '/v1/exports',
  operationId: 'requestExport',
  tag: 'exports',
  scope: 'read',
  summary: 'Export candles of series or markets to a Parquet or csv.gz file, asynchronously',
  description:
    'Records the export and hands it to the export worker, which writes the file into the stack\'s exports bucket by multipart upload. ' +
    'The rows are what GET /v1/candles answers for the same query (whole buckets in [start, end), resampled from the finest stored ' +
    'interval when the interval is not stored, the same gap policy). Poll the `Location` (GET /v1/exports/{id}) until `status` is ' +
    '`done`, then download `download.url` (presigned, no key). A read scope is enough: an export reads candles and changes nothing.',
  body: exportRequestSchema,
  responses: {
    202: { description: 'Accepted: the export is queued; the status resource is in Location.', schema: exportStatusSchema, headers: { Location: 'The status resource, /v1/exports/{id}.' } },
    ...problems(...COMMON, 404, 413, 415, 422, 501),
  },
  async handle({ req, db, exports, now }) {
    const request = parseJsonBody(req.body, req.headers['content-type'], exportRequestSchema);
    const conn = await db();
    await checkStored(conn, request);
    const service = requireExports(exports);
    const job = await insertExportJob(conn, { request: exportRequestInput(request), format: request.format, requestedBy: `api:${req.apiKeyId ?? 'key'}` });
    await service.start(job.id);
    return json(202, await statusBody(job, service, now()), { Location: `/v1/exports/${job.id}` });
  },
});

export const getExport = defineRoute({
  method: 'GET',
  path: '/v1/exports/{id}',
  operationId: 'getExport',
  tag: 'exports',
  scope: 'read',
  summary: 'An export\'s status and progress; when done, a presigned download URL',
  description: 'Each answer signs a new download link, valid for a bounded time (15 minutes by default) and never past the file\'s expiry.',
  pathParams: z.object({ id: z.string().min(1).max(64).meta({ description: 'The export id POST /v1/exports answered.' }) }),
  responses: { 200: { description: 'The export.', schema: exportStatusSchema }, ...problems(...COMMON, 404, 501) },
  async handle({ params, db, exports, reply, now }) {
    const job = await getExportJob(await db(), params.id);
    if (!job) throw new NotFound(`no export ${params.id}`, 'id');
    return reply(await statusBody(job, exports, now()));
  },
});
