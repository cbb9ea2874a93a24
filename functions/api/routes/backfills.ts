import * as z from 'zod';
import { listBackfills } from '../../ingest/backfill-progress.ts';
import { backfillRequestSchema, toEventDetail } from '../../ingest/backfill-request.ts';
import { parseJsonBody } from '../../http/body.ts';
import { queryHash } from '../../http/cursor.ts';
import { nextCursorHeader } from '../../http/csv.ts';
import { HttpProblem } from '../../http/problem.ts';
import { json } from '../../http/response.ts';
import { COMMON, defineRoute, problems } from '../route.ts';
import { backfillPageSchema, backfillRequestedSchema, backfillsQuerySchema, type BackfillPage } from '../schemas.ts';

export const listBackfillsRoute = defineRoute({
  method: 'GET',
  path: '/v1/backfills',
  operationId: 'listBackfills',
  tag: 'backfills',
  scope: 'read',
  summary: 'Backfills, newest first, with progress, ETA and errors',
  description:
    'Each backfill with its chunks done of total, candles written, the ETA at the pace so far, and the message of a failed or ' +
    'partly unsupported one. `status=planned,running` lists the ones still working.',
  query: backfillsQuerySchema,
  csv: (page: BackfillPage) => ({
    columns: ['id', 'exchange', 'symbol', 'interval', 'from', 'to', 'status', 'chunks_done', 'chunks_total', 'chunks_failed', 'candles_written', 'eta', 'requested_at', 'finished_at', 'message'],
    rows: page.backfills.map((b) => [
      b.id,
      b.exchange,
      b.symbol,
      b.interval,
      b.from,
      b.to,
      b.status,
      b.chunks.done,
      b.chunks.total,
      b.chunks.failed,
      b.candlesWritten,
      b.eta,
      b.requestedAt,
      b.finishedAt,
      b.message,
    ]),
    headers: nextCursorHeader(page.nextCursor),
  }),
  responses: { 200: { description: 'A page of backfills, newest first.', schema: backfillPageSchema }, ...problems(...COMMON) },
  async handle({ query: q, db, cursors, reply }) {
    const codec = await cursors();
    const hash = queryHash(['backfills', q.exchange, q.symbol, q.interval, q.status?.join(',')]);
    const beforeId = q.cursor ? codec.decode(q.cursor, hash, z.number().int().positive()) : undefined;
    const rows = await listBackfills(await db(), { exchange: q.exchange, symbol: q.symbol, interval: q.interval, status: q.status, beforeId, limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    const nextCursor = rows.length > q.limit ? codec.encode(page[page.length - 1]!.id, hash) : null;
    return reply({ backfills: page, nextCursor });
  },
});

export const requestBackfillRoute = defineRoute({
  method: 'POST',
  path: '/v1/backfills',
  operationId: 'requestBackfill',
  tag: 'backfills',
  scope: 'write',
  summary: 'Ask for a backfill of one series and range',
  description:
    'Puts a backfill request on the backfill bus, as `candlekeep backfill` does; the planner skips every range already in the coverage ' +
    'ledger, so asking for a range that is partly stored fetches only its holes. `GET /v1/backfills` shows its progress once planned.',
  body: backfillRequestSchema,
  responses: {
    202: { description: 'Accepted: the request is on the bus.', schema: backfillRequestedSchema },
    ...problems(...COMMON, 413, 415, 422, 501),
  },
  async handle({ req, requestBackfill }) {
    const body = parseJsonBody(req.body, req.headers['content-type'], backfillRequestSchema);
    if (!requestBackfill) {
      throw new HttpProblem(501, 'this API has no backfill bus (CANDLEKEEP_BACKFILL_BUS is unset); run `candlekeep gaps --backfill --local` instead');
    }
    const request = { ...body, requestedBy: body.requestedBy ?? `api:${req.apiKeyId ?? 'key'}` };
    const eventId = await requestBackfill(request);
    return json(202, { eventId, request: toEventDetail(request) });
  },
});
