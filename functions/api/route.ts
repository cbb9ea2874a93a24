import type { z } from 'zod';
import type { Format } from '../http/negotiate.ts';
import type { DynamicParams } from '../http/query.ts';
import type { ApiRequest } from '../http/request.ts';
import type { ApiResponse } from '../http/response.ts';
import type { Queryable } from '../store/db.ts';

/** What a route handler gets: the parsed request, and its dependencies as arguments. */
export interface RouteContext<Q, P = Record<string, string>> {
  req: ApiRequest;
  query: Q;
  /** Query parameters of the route's dynamic families (e.g. metric.*), validated by the route. */
  dynamic: Map<string, string[]>;
  params: P;
  format: Format;
  db: () => Promise<Queryable>;
  now: () => number;
}

export interface ResponseDoc {
  description: string;
  /** JSON body schema (a registered component). */
  schema?: z.ZodType;
  /** The route can answer text/csv too. */
  csv?: boolean;
  headers?: Record<string, string>;
}

export interface HeaderDoc {
  name: string;
  description: string;
  required?: boolean;
  schema: z.ZodType;
}

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** The API Gateway resource template, e.g. `/v1/backtests/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** False only for health: every other route needs the API key. */
  apiKey: boolean;
  query?: z.ZodObject;
  dynamicQuery?: DynamicParams[];
  pathParams?: z.ZodObject;
  headers?: HeaderDoc[];
  body?: z.ZodType;
  csv?: boolean;
  responses: Record<number, ResponseDoc>;
  handle(ctx: RouteContext<unknown, unknown>): Promise<ApiResponse>;
}

type Out<S> = S extends z.ZodType ? z.output<S> : Record<string, never>;

/** Declares a route with its handler typed by its own query and path schemas. */
export function defineRoute<Q extends z.ZodObject | undefined = undefined, P extends z.ZodObject | undefined = undefined>(
  route: Omit<Route, 'handle' | 'query' | 'pathParams'> & {
    query?: Q;
    pathParams?: P;
    handle(ctx: RouteContext<Out<Q>, Out<P>>): Promise<ApiResponse>;
  },
): Route {
  return route as unknown as Route;
}
