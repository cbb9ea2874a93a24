/**
 * The local stand-in for API Gateway in front of the API Lambda: `npm run dev`, `candlekeep serve`
 * and the API tests serve the same handler through it.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { CONSOLE_PATH, type ConsoleAsset } from '../console/build.ts';
import { matchRoute, type ApiContext } from '../functions/api/app.ts';
import { needsKey } from '../functions/api/route.ts';
import { allowed, UNAUTHORIZED_DETAIL, type AuthorizerResult } from '../functions/auth/authorizer.ts';
import { createAuthorizerHandler, type AuthorizerHandler } from '../functions/auth/authorizer-lambda.ts';
import { PROBLEM_CONTENT_TYPE, problemBody } from '../functions/http/problem.ts';
import type { Queryable } from '../functions/store/db.ts';

/** What API Gateway accepts before Lambda's own 6 MB invoke limit applies. */
export const LOCAL_MAX_BODY_BYTES = 6 * 1024 * 1024;

export type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

export interface LocalServerOptions {
  handler: ProxyHandler;
  /**
   * Who may call: the deployed API's REQUEST authorizer handler, called in-process before each
   * request that needs a key (see localAuthorizer). Not cached, so a revoked key stops at once.
   */
  authorizer: AuthorizerHandler;
  port?: number;
  host?: string;
  log?: (msg: string) => void;
  /** The web console's files, served under /console/ without a key (they hold no secret); none: no console. */
  console?: readonly ConsoleAsset[];
}

export interface LocalServer {
  url: string;
  close(): Promise<void>;
}

function sendProblem(res: ServerResponse, status: number, detail: string, parameter?: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': PROBLEM_CONTENT_TYPE, ...headers });
  res.end(JSON.stringify(problemBody(status, detail, parameter ? { parameter } : {})));
}

/**
 * The authorizer `candlekeep serve` and the tests put in front of the API: keys from the api_keys
 * table of `db`, and `apiKey` (CANDLEKEEP_API_KEY) as the configured admin key when given.
 */
export function localAuthorizer(opts: { db: () => Promise<Queryable>; apiKey?: string | undefined; now?: () => number }): AuthorizerHandler {
  const configured = opts.apiKey;
  return createAuthorizerHandler(
    { meterWithConfiguredKey: false },
    { db: opts.db, configuredKey: async () => configured, ...(opts.now ? { now: opts.now } : {}) },
  );
}

/** The fake account and API id of the local execute-api ARNs the authorizer sees. */
const LOCAL_API_ARN = 'arn:aws:execute-api:local:000000000000:local/local';

/** Asks the authorizer about a request as API Gateway does: its answer, or why there is none. */
async function authorize(
  authorizer: AuthorizerHandler,
  req: { method: string; resource: string; path: string; headers: Record<string, string | string[] | undefined> },
  log: ((msg: string) => void) | undefined,
): Promise<AuthorizerResult | 'unauthorized' | 'failed'> {
  const headers = Object.fromEntries(Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v.join(', ') : v]])));
  const event = { type: 'REQUEST', methodArn: `${LOCAL_API_ARN}/${req.method}${req.resource}`, resource: req.resource, path: req.path, httpMethod: req.method, headers };
  let answer: AuthorizerResult;
  try {
    answer = await authorizer(event);
  } catch (err) {
    // API Gateway answers a failed authorizer with a 503 too (AUTHORIZER_FAILURE); the authorizer logged why, redacted.
    log?.(`authorizer failed: ${(err as Error).message}`);
    return 'failed';
  }
  return allowed(answer) ? answer : 'unauthorized';
}

/** The request body, or undefined when it exceeds the limit (reading stops there). */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Builds the API Gateway REST (v1) proxy event for an HTTP request, as the gateway does after it
 * matched the route: resource template, path parameters, decoded single- and multi-value query
 * parameters and headers.
 */
export function toProxyEvent(
  req: { method: string; url: URL; headers: Record<string, string | string[] | undefined>; body: string | undefined },
  resource: string,
  pathParameters: Record<string, string>,
): APIGatewayProxyEvent {
  // Names are the client's: grouped in a Map and written with fromEntries (own properties), so
  // `__proto__` or `constructor` arrive as parameters like any other, as API Gateway sends them.
  const grouped = new Map<string, string[]>();
  for (const [k, v] of req.url.searchParams) grouped.set(k, [...(grouped.get(k) ?? []), v]);
  const multiQuery = Object.fromEntries(grouped);
  const query = Object.fromEntries([...grouped].map(([k, v]) => [k, v[v.length - 1]!]));
  const headerLists = Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v : [v]] as const]));
  const headers = Object.fromEntries(headerLists.map(([k, list]) => [k, list.join(', ')]));
  const multiHeaders = Object.fromEntries(headerLists);
  const hasQuery = grouped.size > 0;
  return {
    resource,
    path: req.url.pathname,
    httpMethod: req.method,
    headers,
    multiValueHeaders: multiHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: Object.keys(pathParameters).length ? pathParameters : null,
    stageVariables: null,
    body: req.body === undefined || req.body === '' ? null : req.body,
    isBase64Encoded: false,
    requestContext: {
      requestId: randomUUID(),
      stage: 'local',
      resourcePath: resource,
      httpMethod: req.method,
      path: req.url.pathname,
      identity: { apiKeyId: 'local', sourceIp: '127.0.0.1' },
    } as unknown as APIGatewayProxyEvent['requestContext'],
  };
}

/** A Lambda context for one request, plus the signal of the client's connection (see ApiContext). */
function lambdaContext(requestId: string, clientGone: AbortSignal): Context & ApiContext {
  const deadline = Date.now() + 29_000;
  return {
    clientGone,
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'candlekeep-api-local',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:candlekeep-api-local',
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: 'local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** Headers of the console's files: no framing, no sniffing, no referrer, and a policy that allows only this origin. */
const CONSOLE_HEADERS = {
  'Cache-Control': 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

/**
 * Answers a request for the console (`/`, `/console`, `/console/<file>`), as CloudFront serves the
 * deployed one from S3; false when the path is not the console's.
 */
function serveConsole(files: readonly ConsoleAsset[], method: string, path: string, res: ServerResponse): boolean {
  if (path === '/' || path === CONSOLE_PATH.slice(0, -1)) {
    res.writeHead(302, { Location: CONSOLE_PATH });
    res.end();
    return true;
  }
  if (!path.startsWith(CONSOLE_PATH)) return false;
  const name = path.slice(CONSOLE_PATH.length) || 'index.html';
  const file = files.find((f) => f.name === name);
  if (!file) {
    sendProblem(res, 404, `no console file ${name}`);
    return true;
  }
  if (method !== 'GET' && method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' });
    res.end();
    return true;
  }
  res.writeHead(200, { ...CONSOLE_HEADERS, 'Content-Type': file.contentType, 'Content-Length': String(file.body.length) });
  res.end(method === 'HEAD' ? undefined : file.body);
  return true;
}

/**
 * Serves the API handler over HTTP the way API Gateway fronts it in AWS: unknown paths are 404,
 * routes other than health go through the authorizer (401 without a good key), bodies above the gateway's limit are
 * refused, and everything else becomes a proxy event for the very same middy handler.
 */
export async function startLocalServer(opts: LocalServerOptions): Promise<LocalServer> {
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const method = (req.method ?? 'GET').toUpperCase();
      if (opts.console && serveConsole(opts.console, method, url.pathname, res)) return;
      const match = matchRoute(method, url.pathname);
      if (!match) {
        sendProblem(res, 404, `no route ${method} ${url.pathname}; GET /v1/openapi.json lists the routes`);
        return;
      }
      // Another method on a known path goes to the handler, as the stack's ANY methods send it, for its 405.
      const [resource, keyNeeded] = 'route' in match ? [match.route.path, needsKey(match.route)] : [match.resource, match.apiKey];
      let caller: AuthorizerResult | undefined;
      if (keyNeeded) {
        const answer = await authorize(opts.authorizer, { method, resource, path: url.pathname, headers: req.headers }, opts.log);
        if (answer === 'unauthorized') {
          sendProblem(res, 401, UNAUTHORIZED_DETAIL, 'x-api-key');
          req.resume();
          return;
        }
        if (answer === 'failed') {
          sendProblem(res, 503, 'the API key could not be checked; retry shortly', undefined, { 'Retry-After': '5' });
          req.resume();
          return;
        }
        caller = answer;
      }
      const body = await readBody(req, LOCAL_MAX_BODY_BYTES);
      if (body === undefined) {
        sendProblem(res, 413, `request body exceeds ${LOCAL_MAX_BODY_BYTES / 1048576} MB`, '(body)');
        req.resume();
        return;
      }
      const event = toProxyEvent({ method, url, headers: req.headers, body }, resource, match.pathParameters);
      // As API Gateway passes a Lambda authorizer's answer on: its principal and context, never the usage key.
      if (caller) (event.requestContext as { authorizer?: unknown }).authorizer = { principalId: caller.principalId, ...caller.context };
      // A client that hangs up before its answer is written: its statements are cancelled.
      const gone = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) gone.abort();
      });
      const result = await opts.handler(event, lambdaContext(event.requestContext.requestId, gone.signal));
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
      for (const [k, v] of Object.entries(result.multiValueHeaders ?? {})) headers[k] = v.map(String);
      const payload = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
      headers['Content-Length'] = String(payload.length);
      res.writeHead(result.statusCode, headers);
      res.end(payload);
      opts.log?.(`${method} ${url.pathname}${url.search} ${result.statusCode}`);
    })().catch((err: unknown) => {
      opts.log?.(`local server error: ${(err as Error).stack ?? String(err)}`);
      if (!res.headersSent) sendProblem(res, 500, 'internal error in the local server');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
