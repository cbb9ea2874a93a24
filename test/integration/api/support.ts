import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsImport from 'ajv-formats';
import { afterAll, beforeAll, expect } from 'vitest';
import { localAuthorizer, startLocalServer, type LocalServer, type ProxyHandler } from '../../../dev/local-api.ts';
import { randomWalk, seededRandom, type WalkShape } from '../../../dev/sample-candles.ts';
import { matchRoute } from '../../../functions/api/app.ts';
import { createApiHandler, type ApiConfig, type ApiHandlerDeps } from '../../../functions/api/api-lambda.ts';
import { buildOpenApi } from '../../../functions/api/openapi.ts';
import { ROUTES } from '../../../functions/api/routes/index.ts';
import { CandleStore, type StoredCandle } from '../../../functions/store/candles.ts';
import type { Db } from '../../../functions/store/db.ts';
import type { Exchange } from '../../../functions/candles/candle.ts';
import { liveExchangeAccess, resolveBaseUrls } from '../../../functions/exchanges/access.ts';
import { once } from '../../../functions/lambda-kit/env.ts';
import type { CandleRow } from '../../../functions/candles/candle-batch.ts';
import type { Interval } from '../../../functions/candles/intervals.ts';
import { CandlekeepClient } from '../../../client/index.ts';
import { isolatedDatabase, testPool } from '../../support/db.ts';

export const API_KEY = 'test-key-0123456789';

// ---- contract: every response is checked against the generated OpenAPI document ----

const doc = buildOpenApi(ROUTES) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };
const ajv = new Ajv2020({ strict: false, allErrors: true });
const addFormats = ((addFormatsImport as unknown as { default?: unknown }).default ?? addFormatsImport) as (a: Ajv2020) => void;
addFormats(ajv);
const DOC_ID = 'https://candlekeep.dev/openapi.json';
ajv.addSchema({ ...doc, $id: DOC_ID });
const validators = new Map<string, ValidateFunction>();

function validatorFor(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = validators.get(key);
  if (!v) {
    const ref = (schema as { $ref?: string }).$ref;
    v = ref ? ajv.getSchema(`${DOC_ID}${ref}`)! : ajv.compile(schema as object);
    validators.set(key, v);
  }
  return v;
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Fails the test when a response's status, media type or body is not what the OpenAPI document says. */
export function expectContract(method: string, path: string, a: Answer): void {
  const match = matchRoute(method, path);
  if (!match || !('route' in match)) return; // gateway-level 404: no operation to check against
  const op = doc.paths[match.route.path]?.[method.toLowerCase()];
  const response = op?.responses[String(a.status)];
  expect(response, `${method} ${match.route.path} answered ${a.status}, which the OpenAPI document does not list`).toBeDefined();
  const type = (a.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (a.status === 204) return;
  const media = response!.content?.[type];
  expect(media, `${method} ${match.route.path} ${a.status} answered ${type}, not in the OpenAPI document`).toBeDefined();
  if (type.endsWith('json')) {
    const validate = validatorFor(media!.schema);
    const ok = validate(a.body);
    expect(ok, `${method} ${path} ${a.status} body does not match the OpenAPI schema: ${ajv.errorsText(validate.errors)}`).toBe(true);
  }
}

// ---- the API behind the local server, on this run's database ----

export interface Api {
  url: string;
  pool: Db;
  client: CandlekeepClient;
  handler: ProxyHandler;
  store: CandleStore;
  call(method: string, path: string, opts?: CallOptions): Promise<Answer>;
  get(path: string, query?: Query, opts?: Omit<CallOptions, 'query'>): Promise<Answer>;
}

export type Query = Record<string, string | number | (string | number)[]> | [string, string][];

export interface CallOptions {
  query?: Query;
  headers?: Record<string, string>;
  body?: string | object;
  /** null sends no key. */
  key?: string | null;
}

export interface ApiOptions {
  /** Settings beyond the defaults (a lowered statement timeout, a session bound). */
  config?: Partial<ApiConfig>;
  /** A migrated database of the file's own instead of the run's shared one (for tests that lock tables, or follow markets). */
  isolated?: boolean;
  /** Where the API asks exchanges (e.g. the fake exchange's base URLs, known once it started). */
  exchangeUrls?: () => Partial<Record<Exchange, string>>;
  /** Handler dependencies beyond the pool (e.g. an export service writing to LocalStack's S3). */
  deps?: (pool: Db) => Promise<Partial<ApiHandlerDeps>>;
}

/** Starts the local server (API Gateway stand-in) over the API handler for the test file. */
export function useApi(opts: ApiOptions = {}): Api {
  const api = {} as Api;
  let server: LocalServer;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (opts.isolated) {
      const isolated = await isolatedDatabase(6);
      api.pool = isolated.pool;
      drop = isolated.drop;
    } else api.pool = testPool(4);
    api.store = new CandleStore();
    const pool = api.pool;
    const exchangeUrls = opts.exchangeUrls;
    const exchanges = exchangeUrls ? once(async () => ({ ...liveExchangeAccess(pool), baseUrls: resolveBaseUrls(exchangeUrls()) })) : undefined;
    const extra = opts.deps ? await opts.deps(pool) : {};
    api.handler = createApiHandler({ poolMax: 4, corsOrigins: [], ...opts.config }, { db: async () => pool, ...(exchanges ? { exchanges } : {}), ...extra }) as unknown as ProxyHandler;
    server = await startLocalServer({ handler: api.handler, authorizer: localAuthorizer({ db: async () => pool, apiKey: API_KEY }), port: 0 });
    api.url = server.url;
    api.client = new CandlekeepClient({ baseUrl: server.url, apiKey: API_KEY });
    api.call = async (method, path, opts = {}) => {
      const url = new URL(server.url + path);
      const entries = Array.isArray(opts.query) ? opts.query : Object.entries(opts.query ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, String(x)]) : [[k, String(v)]]));
      for (const [k, v] of entries) url.searchParams.append(k!, v!);
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.key !== null) headers['x-api-key'] ??= opts.key ?? API_KEY;
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(url, { method, headers, body });
      const text = await res.text();
      const type = res.headers.get('content-type') ?? '';
      const answer: Answer = { status: res.status, headers: res.headers, text, body: type.includes('json') && text ? JSON.parse(text) : undefined };
      expectContract(method, url.pathname, answer);
      return answer;
    };
    api.get = (path, query, opts = {}) => api.call('GET', path, { ...opts, query: query ?? {} });
  });
  afterAll(async () => {
    await server?.close();
    if (drop) await drop();
    else await api.pool?.end();
  });
  return api;
}

// ---- data ----

const WALK_SHAPE: WalkShape = { step: 2, wick: 1, minLow: 0.01, priceDecimals: 4, volume: { max: 10, decimals: 6 }, quoteVolume: { max: 1000, decimals: 2 }, maxTrades: 100 };

/** Deterministic candles with varied decimals, so aggregation mistakes show. */
export function walk(start: number, count: number, stepMs: number, seed = 1, skip: (i: number) => boolean = () => false): StoredCandle[] {
  const bars = randomWalk({ rand: seededRandom(seed), startPrice: 100 + seed, count, shape: WALK_SHAPE, skip });
  return Array.from(bars, ({ index, ...bar }) => ({ openTime: start + index * stepMs, ...bar, closed: true }));
}

export async function load(api: Api, symbol: string, interval: Interval, bars: StoredCandle[], fetchedAt = Date.UTC(2025, 0, 1)): Promise<void> {
  const rows: CandleRow[] = bars.map((b) => [b.openTime, b.open, b.high, b.low, b.close, b.volume, b.quoteVolume, b.trades, b.closed ? 1 : 0]);
  for (let i = 0; i < rows.length; i += 5000) {
    await api.store.upsert(api.pool, [{ v: 1, exchange: 'binance', symbol, interval, fetchedAt, rows: rows.slice(i, i + 5000) }]);
  }
}

/** A small RFC 4180 parser for checking CSV answers. */
export function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else if (c !== '\r') field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...body] = rows;
  return body.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
}
