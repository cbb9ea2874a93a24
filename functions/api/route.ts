import type { z } from 'zod';
import type { CsvTable } from '../http/csv.ts';
import type { CursorCodec } from '../http/cursor.ts';
import type { Format } from '../http/negotiate.ts';
import type { DynamicParams } from '../http/query.ts';
import type { ApiRequest } from '../http/request.ts';
import type { ApiResponse } from '../http/response.ts';
import type { ExchangeAccess } from '../exchanges/access.ts';
import type { BackfillRequest } from '../ingest/backfill-request.ts';
import type { ExportService } from '../exports/service.ts';
import type { Db, Queryable } from '../store/db.ts';
import type { Scope } from '../auth/keys.ts';
import { problemSchema } from './schemas.ts';

/** What a key may do (read < write < admin), defined with the keys themselves; `public` routes need no key. */
export { SCOPES, type Scope } from '../auth/keys.ts';

/** Whether a route needs an API key at all. */
export const needsKey = (route: { scope: Scope }): boolean => route.scope !== 'public';

/** The API's version, in health answers and the OpenAPI document. */
export const API_VERSION = '1.0.0';

/** What a route handler gets: the parsed request, and its dependencies as arguments. */
export interface RouteContext<Q, P = Record<string, string>, B = unknown> {
  req: ApiRequest;
  query: Q;
  /** Query parameters of the route's dynamic families (e.g. metric.*), validated by the route. */
  dynamic: Map<string, string[]>;
  params: P;
  format: Format;
  /** A 200 answer in the negotiated format: the body as JSON, or as the route's CSV table. */
  reply(body: B, headers?: Record<string, string>): ApiResponse;
  /** Whether `reply(body)` stays within the answer budget (ANSWER_BUDGET_BYTES): routes page by it. */
  fits(body: B): boolean;
  /** Every route being served (the OpenAPI route documents them). */
  routes: readonly Route[];
  db: () => Promise<Queryable>;
  cursors: () => Promise<CursorCodec>;
  /** The pool for routes that change several tables in one transaction (the followed markets). */
  pool: () => Promise<Db>;
  /** Governed exchange access, for routes that ask an exchange (whether it lists a market). */
  exchanges: () => Promise<ExchangeAccess>;
  now: () => number;
  /** Puts a backfill request on the backfill bus and returns the event id; undefined when this API has no bus. */
  requestBackfill: ((req: BackfillRequest) => Promise<string>) | undefined;
  /** Hands exports to the worker and signs downloads; undefined when this API has no exports bucket. */
  exports: ExportService | undefined;
}

export interface ResponseDoc {
  description: string;
  /** JSON body schema (a registered component). */
  schema?: z.ZodType;
  headers?: Record<string, string>;
}

export interface HeaderDoc {
  name: string;
  description: string;
  required?: boolean;
  schema: z.ZodType;
}

export interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The API Gateway resource template, e.g. `/v1/backtests/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /**
   * Who may call it: `public` (no key: health), `read` (any key: notebooks and dashboards), `write`
   * (keys that record runs), `admin` (keys that delete or manage). Each route declares its own.
   */
  scope: Scope;
  query?: z.ZodObject;
  dynamicQuery?: DynamicParams[];
  pathParams?: z.ZodObject;
  headers?: HeaderDoc[];
  body?: z.ZodType;
  /** The 200 body as CSV: routes that have it also answer text/csv (`format=csv` or the Accept header). */
  csv?: (body: unknown) => CsvTable;
  responses: Record<number, ResponseDoc>;
  handle(ctx: RouteContext<unknown, unknown>): Promise<ApiResponse>;
}

type Out<S> = S extends z.ZodType ? z.output<S> : Record<string, never>;

/** Declares a route with its handler typed by its own query and path schemas and its CSV body. */
export function defineRoute<Q extends z.ZodObject | undefined = undefined, P extends z.ZodObject | undefined = undefined, B = unknown>(
  route: Omit<Route, 'handle' | 'query' | 'pathParams' | 'csv'> & {
    query?: Q;
    pathParams?: P;
    csv?: (body: B) => CsvTable;
    handle(ctx: RouteContext<Out<Q>, Out<P>, B>): Promise<ApiResponse>;
  },
): Route {
  return route as unknown as Route;
}

const PROBLEM_TEXT: Record<number, string> = {
  400: 'Invalid parameter: the problem names it.',
  401: 'Missing, unknown or revoked API key (x-api-key header).',
  403: "The API key's scope does not cover this route: `requiredScope` names the scope it needs.",
  404: 'No such series, run or followed market.',
  406: 'The Accept header asks for a format this route does not produce.',
  413: 'Body too large.',
  415: 'Body is not application/json.',
  422: 'Body is well-formed JSON but not a valid record: the problem names the field.',
  429: 'Throttled or over quota (usage plan).',
  501: 'This API instance is not configured for it (e.g. no backfill bus).',
  503: 'Database unavailable; retry after Retry-After seconds.',
};

/** The documented problem answers of a route. */
export const problems = (...statuses: number[]): Record<number, ResponseDoc> =>
  Object.fromEntries(statuses.map((s) => [s, { description: PROBLEM_TEXT[s] ?? 'Error', schema: problemSchema }]));

/** What any route with parameters and the API key can answer (406: every route answers JSON, which an Accept header can rule out). */
export const COMMON = [400, 401, 403, 406, 429, 503];
