import { negotiateFormat, type Format } from '../http/negotiate.ts';
import { badRequest, HttpProblem } from '../http/problem.ts';
import { issuesToProblem, parseQuery } from '../http/query.ts';
import { proxyEventSchema, toApiRequest, type ApiRequest } from '../http/request.ts';
import { csv, json, type ApiResponse } from '../http/response.ts';
import { ANSWER_BUDGET_BYTES, LAMBDA_RESPONSE_BYTES, lambdaResponseBytes, withinLambdaBytes } from '../http/size.ts';
import { unstorableText } from '../http/text.ts';
import type { CursorCodec } from '../http/cursor.ts';
import type { BackfillRequest } from '../ingest/backfill-request.ts';
import type { ExportService } from '../exports/service.ts';
import { boundedQueryable, type Db } from '../store/db.ts';
import { flushBudget, liveExchangeAccess, type ExchangeAccess } from '../exchanges/access.ts';
import { once } from '../lambda-kit/env.ts';
import { UNAUTHORIZED_DETAIL } from '../auth/authorizer.ts';
import { isKeyScope, scopeCovers } from '../auth/keys.ts';
import { needsKey, type Route } from './route.ts';
import { ROUTES } from './routes/index.ts';

export interface ApiDeps {
  /** The container's pool, obtained on first use (health and openapi.json may not need it). */
  db: () => Promise<Db>;
  /** Statement timeout cap, ms; each statement also stops before the request's deadline. */
  statementTimeoutMs: number;
  /** Database sessions the API may hold at once across all its containers; unset: no bound. */
  dbSessions?: number | undefined;
  /** Governed exchange access over the pool (budgets live in it), built on first use. */
  exchanges?: () => Promise<ExchangeAccess>;
  /** Signs and checks pagination cursors, with the key obtained on first use. */
  cursors: () => Promise<CursorCodec>;
  now?: () => number;
  /** Puts a backfill request on the backfill bus, returning the event id; absent when this API has none. */
  requestBackfill?: (req: BackfillRequest) => Promise<string>;
  /** Exports: queued to the worker, downloads signed; absent when this API has no exports bucket. */
  exports?: ExportService;
}

/** Kept free below Lambda's limit for what the gateway adds to a response. */
const RESPONSE_HEADROOM_BYTES = 64 * 1024;
if (ANSWER_BUDGET_BYTES > LAMBDA_RESPONSE_BYTES - RESPONSE_HEADROOM_BYTES) throw new Error('the answer budget must lie inside the Lambda response limit');

const byKey = new Map(ROUTES.map((r) => [`${r.method} ${r.path}`, r]));

/** A path that names a route template but not with this method: API Gateway forwards it too (the `ANY` method), for a 405. */
export interface MethodMismatch {
  resource: string;
  pathParameters: Record<string, string>;
  allowed: string[];
  /** Whether any route of the template needs the API key (then asking with another method needs it too). */
  apiKey: boolean;
}

/**
 * Resolves a concrete path to its route template, as API Gateway does before invoking the Lambda:
 * literal segments win over `{param}` ones. Used by the local server to build proxy events.
 */
export function matchRoute(method: string, path: string): { route: Route; pathParameters: Record<string, string> } | MethodMismatch | undefined {
  const segments = path.split('/').filter(Boolean);
  const candidates: { route: Route; params: Record<string, string>; literals: number }[] = [];
  for (const route of ROUTES) {
    const tpl = route.path.split('/').filter(Boolean);
    if (tpl.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let literals = 0;
    let ok = true;
    for (let i = 0; i < tpl.length && ok; i++) {
      const t = tpl[i]!;
      const s = segments[i]!;
      if (t.startsWith('{') && t.endsWith('}')) {
        try {
          params[t.slice(1, -1)] = decodeURIComponent(s);
        } catch {
          ok = false;
        }
      } else if (t === s) literals++;
      else ok = false;
    }
    if (ok) candidates.push({ route, params, literals });
  }
  if (candidates.length === 0) return undefined;
  const best = Math.max(...candidates.map((c) => c.literals));
  const top = candidates.filter((c) => c.literals === best);
  const hit = top.find((c) => c.route.method === method.toUpperCase());
  if (hit) return { route: hit.route, pathParameters: hit.params };
  return { resource: top[0]!.route.path, pathParameters: top[0]!.params, allowed: top.map((c) => c.route.method), apiKey: top.some((c) => needsKey(c.route)) };
}

/**
 * The one place a key's scope is checked against a route, for the deployed API and the local server
 * alike: both put the authorizer's answer for the key into the event (`requestContext.authorizer`)
 * before the function runs. A route that needs a key and arrives without that answer is refused, so
 * a gateway method that lost its authorizer fails closed.
 */
function checkScope(req: ApiRequest, route: Pick<Route, 'method' | 'path' | 'scope'>): void {
  if (!needsKey(route)) return;
  const caller = req.caller;
  if (!caller || !isKeyScope(caller.scope)) {
    throw new HttpProblem(401, UNAUTHORIZED_DETAIL, { parameter: 'x-api-key' });
  }
  if (!scopeCovers(caller.scope, route.scope)) {
    throw new HttpProblem(
      403,
      `${route.method} ${route.path} needs a key with scope ${route.scope}; this key (${caller.keyName}) has scope ${caller.scope}. ` +
        `Ask for a ${route.scope} key (candlekeep keys create --scope ${route.scope})`,
      { parameter: 'x-api-key', slug: 'insufficient-scope', requiredScope: route.scope },
    );
  }
}

/** The first query parameter or path parameter whose name or value PostgreSQL could not store as text. */
function refuseUnstorable(req: ApiRequest): void {
  for (const [name, values] of req.query) {
    const bad = unstorableText(name) ?? values.map(unstorableText).find(Boolean);
    if (bad) throw badRequest(`query parameter ${JSON.stringify(name)} ${bad}; such text cannot be stored or matched`, name, 'invalid-text');
  }
  for (const [name, value] of Object.entries(req.pathParams)) {
    const bad = unstorableText(value);
    if (bad) throw badRequest(`path parameter ${name} ${bad}`, name, 'invalid-text');
  }
}

/**
 * The API as one function of an API Gateway proxy event: find the route API Gateway matched,
 * validate path and query parameters with the route's zod schemas, negotiate JSON or CSV (a route
 * replies with its body; this is the one place that shapes it as either), and call the route's
 * handler with its dependencies.
 */
/** The Lambda context as far as the API reads it; the local server adds the signal of the client's connection. */
export interface ApiContext {
  getRemainingTimeInMillis?: () => number;
  /** Aborted when the client closed its connection (the local server; API Gateway gives a Lambda no such signal). */
  clientGone?: AbortSignal;
}

export function createApi(deps: ApiDeps): (event: unknown, context?: ApiContext, opts?: { signal?: AbortSignal }) => Promise<ApiResponse> {
  const now = deps.now ?? Date.now;
  const exchanges = deps.exchanges ?? once(async () => liveExchangeAccess(await deps.db()));
  return async (event, context, opts) => {
    // The deadline is the Lambda's own; the signal fires when middy gives up on the handler just
    // before it, or when the client went away: either way the running statement is cancelled.
    const remaining = context?.getRemainingTimeInMillis?.();
    const deadline = remaining === undefined ? undefined : now() + remaining;
    const signals = [opts?.signal, context?.clientGone].filter((s): s is AbortSignal => s !== undefined);
    const bounds = {
      timeoutMs: deps.statementTimeoutMs,
      deadline: deadline === undefined ? undefined : () => deadline,
      signal: signals.length ? AbortSignal.any(signals) : undefined,
      sessions: deps.dbSessions,
      now,
    };
    const db = async () => boundedQueryable(await deps.db(), bounds);
    const parsed = proxyEventSchema.safeParse(event);
    if (!parsed.success) throw new Error(`the API received an event that is not an API Gateway proxy event: ${parsed.error.issues[0]?.message}`);
    const req = toApiRequest(parsed.data);
    const route = byKey.get(`${req.method} ${req.resource}`);
    if (!route) {
      const others = ROUTES.filter((r) => r.path === req.resource);
      const allowed = others.map((r) => r.method);
      // Which methods a path has is for callers with a key, as the route itself would be.
      const weakest = others.find((r) => !needsKey(r)) ?? others[0];
      if (weakest) checkScope(req, { ...weakest, scope: needsKey(weakest) ? 'read' : 'public' });
      if (allowed.length) {
        throw new HttpProblem(405, `${req.method} is not supported on ${req.resource}; use ${allowed.join(' or ')}`, {
          headers: { Allow: allowed.join(', ') },
        });
      }
      throw new HttpProblem(404, `no route ${req.method} ${req.path}; GET /v1/openapi.json lists the routes`);
    }
    checkScope(req, route);
    refuseUnstorable(req);
    let query: unknown = {};
    let dynamic = new Map<string, string[]>();
    if (route.query) {
      const q = parseQuery(req.query, route.query, route.dynamicQuery);
      query = q.values;
      dynamic = q.dynamic;
    } else {
      const unknown = req.query.keys().next().value;
      if (unknown !== undefined) throw badRequest(`unknown query parameter ${JSON.stringify(unknown)}; this endpoint accepts no query parameters`, unknown, 'unknown-parameter');
    }
    let params: unknown = req.pathParams;
    if (route.pathParams) {
      const p = route.pathParams.safeParse(req.pathParams);
      if (!p.success) throw issuesToProblem(p.error.issues, 400);
      params = p.data;
    }
    const format: Format = negotiateFormat((query as { format?: Format }).format, req.headers.accept, route.csv !== undefined);
    const shape = (body: unknown, headers: Record<string, string> = {}): ApiResponse => {
      if (format !== 'csv' || !route.csv) return json(200, body, headers);
      const table = route.csv(body);
      return csv(table.columns, table.rows, { ...table.headers, ...headers });
    };
    // A page measured by `fits` and then sent is serialised once.
    const measured = new WeakMap<object, ApiResponse>();
    const reply = (body: unknown, headers?: Record<string, string>): ApiResponse => {
      const known = headers === undefined && typeof body === 'object' && body !== null ? measured.get(body) : undefined;
      return known ?? shape(body, headers);
    };
    // Answers `fits` found within the answer budget, which lies inside the net below: not measured twice.
    const withinBudget = new WeakSet<ApiResponse>();
    const fits = (body: unknown): boolean => {
      const res = shape(body);
      if (typeof body === 'object' && body !== null) measured.set(body, res);
      const ok = withinLambdaBytes(res, ANSWER_BUDGET_BYTES);
      if (ok) withinBudget.add(res);
      return ok;
    };
    // A route that asked an exchange sends its budget's settles before the answer (the container may freeze then).
    let asked: ExchangeAccess | undefined;
    const exchangesOnce = async () => (asked = await exchanges());
    let res: ApiResponse;
    try {
      res = await route.handle({ req, query, dynamic, params, format, reply, fits, routes: ROUTES, db, pool: deps.db, exchanges: exchangesOnce, cursors: deps.cursors, now, requestBackfill: deps.requestBackfill, exports: deps.exports });
    } finally {
      await flushBudget(asked);
    }
    // Every route bounds its answer; this is the net under them, so a client gets a problem it can
    // read rather than the gateway's 502 for a response Lambda refuses.
    if (!withinBudget.has(res) && !withinLambdaBytes(res, LAMBDA_RESPONSE_BYTES - RESPONSE_HEADROOM_BYTES)) {
      const bytes = lambdaResponseBytes(res);
      throw new HttpProblem(500, `the answer would take ${(bytes / 1048576).toFixed(1)} MB, more than an API answer can carry; narrow the request`, {
        slug: 'response-too-large',
      });
    }
    return res;
  };
}
