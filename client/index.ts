/**
 * Typed client for the candlekeep HTTP API (the package's main export).
 *
 *   import { CandlekeepClient } from 'candlekeep';
 *   const ck = new CandlekeepClient(); // CANDLEKEEP_URL, CANDLEKEEP_API_KEY
 *   const page = await ck.candles({ exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', start: '2024-01-01' });
 *
 * It depends on nothing but `fetch`; the types come from the zod schemas the API validates with.
 */
import type {
  CandleOut,
  CandlePage,
  FollowedMarket,
  FollowedMarkets,
  FollowMarketsInput,
  GapPage,
  GapPolicy,
  Instruments,
  LatestCandles,
  MarketChangeInput,
  MarketRemoval,
  Markets,
} from '../functions/api/schemas.ts';
import type { Backtest, BacktestPage, Comparison, CreateBacktestInput, EquityCurvePage, TradePage } from '../functions/backtests/record.ts';
import type { Exchange } from '../functions/candles/candle.ts';
import type { ExportRequestInput } from '../functions/exports/request.ts';
import type { ExportStatusBody } from '../functions/exports/status.ts';
import type { Interval } from '../functions/candles/intervals.ts';
import type { Problem } from '../functions/http/problem.ts';

export type {
  Backtest,
  BacktestPage,
  CandleOut as Candle,
  CandlePage,
  Comparison,
  CreateBacktestInput,
  EquityCurvePage,
  Exchange,
  FollowedMarket,
  FollowedMarkets,
  FollowMarketsInput,
  GapPage,
  GapPolicy,
  Instruments,
  Interval,
  LatestCandles,
  MarketChangeInput,
  MarketRemoval,
  Markets,
  Problem,
  TradePage,
};

/** ISO 8601 text, epoch milliseconds, or a Date. */
export type TimeInput = string | number | Date;

export interface ClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080` or `https://abc.execute-api.eu-west-1.amazonaws.com/dev`. Default: CANDLEKEEP_URL. */
  baseUrl?: string;
  /** Default: CANDLEKEEP_API_KEY. */
  apiKey?: string;
  fetch?: typeof fetch;
  /** Per-request timeout. @default 30000 */
  timeoutMs?: number;
}

/** An error answer from the API, with its problem details. */
export class CandlekeepError extends Error {
  override name = 'CandlekeepError';
  readonly status: number;
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.status = problem.status;
    this.problem = problem;
  }
}

/**
 * The API could not be reached at all (refused, unknown host, timeout, TLS): the message names the
 * endpoint, without credentials or query, and why, e.g.
 * `could not reach http://127.0.0.1:8080/v1/candles: connection refused`.
 */
export class CandlekeepConnectionError extends Error {
  override name = 'CandlekeepConnectionError';
  /** Origin and path of the request. */
  readonly endpoint: string;
  constructor(endpoint: string, reason: string, options?: { cause?: unknown }) {
    super(`could not reach ${endpoint}: ${reason}`, options);
    this.endpoint = endpoint;
  }
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the API running there? check CANDLEKEEP_URL)',
  ENOTFOUND: 'host not found (check CANDLEKEEP_URL)',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
};

/** Why a fetch failed, in words: the system error's code when there is one, not undici's bare "fetch failed". */
function networkReason(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string; cause?: unknown } };
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (e.name === 'AbortError') return 'aborted';
  for (let c: typeof e.cause = e.cause, depth = 0; c && depth < 4; c = c.cause as typeof e.cause, depth++) {
    if (c.code && NETWORK_REASONS[c.code]) return NETWORK_REASONS[c.code]!;
    if (c.code) return `${c.code}${c.message ? ` (${c.message})` : ''}`;
  }
  return e.cause?.message ?? e.message ?? String(err);
}

export interface CandlesParams {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
  start?: TimeInput;
  end?: TimeInput;
  limit?: number;
  cursor?: string;
  gaps?: GapPolicy;
  /** Point-in-time read: the candles as stored at this moment (repeat it with every cursor). */
  asOf?: TimeInput;
}

export interface SeriesRef {
  exchange: Exchange;
  symbol: string;
  interval: Interval;
}

export type Comparison_ = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte';
export type MetricFilter = number | Partial<Record<Comparison_, number>> | { exists: boolean };
export type ParamValue = string | number | boolean | null;
export type ParamFilter = ParamValue | Partial<Record<Comparison_, ParamValue>> | { exists: boolean };

/** Filters of GET /v1/backtests; fields combine with AND, `or` adds alternative groups. */
export interface BacktestFilter {
  strategy?: string | string[];
  strategyVersion?: string | string[];
  /** Has every one of these tags. */
  tags?: string[];
  anyTag?: string[];
  noTag?: string[];
  createdFrom?: TimeInput;
  createdBefore?: TimeInput;
  /** e.g. `{ sharpe: { gte: 1 }, maxDrawdown: { lt: 0.2 } }` */
  metric?: Record<string, MetricFilter>;
  /** e.g. `{ fast: 10, 'risk.stop': { lte: 0.05 } }` (dotted paths for nested parameters) */
  param?: Record<string, ParamFilter>;
}

export interface ListBacktestsParams extends BacktestFilter {
  /** Alternatives: a run matches when it matches all the fields above and at least one group. */
  or?: BacktestFilter[];
  /** `-created` (default), `created`, `-metric.<name>`, `metric.<name>` */
  sort?: string;
  limit?: number;
  cursor?: string;
}

const time = (t: TimeInput) => (t instanceof Date ? t.toISOString() : String(t));
const paramText = (v: ParamValue) => (typeof v === 'string' && /^(-?[\d.]+([eE][-+]?\d+)?|true|false|null|".*")$/.test(v) ? JSON.stringify(v) : String(v));

function filterEntries(f: BacktestFilter, prefix = ''): [string, string][] {
  const out: [string, string][] = [];
  const list = (v: string | string[]) => (Array.isArray(v) ? v.join(',') : v);
  if (f.strategy !== undefined) out.push([`${prefix}strategy`, list(f.strategy)]);
  if (f.strategyVersion !== undefined) out.push([`${prefix}strategyVersion`, list(f.strategyVersion)]);
  if (f.tags?.length) out.push([`${prefix}tag`, f.tags.join(',')]);
  if (f.anyTag?.length) out.push([`${prefix}tag.any`, f.anyTag.join(',')]);
  if (f.noTag?.length) out.push([`${prefix}tag.none`, f.noTag.join(',')]);
  if (f.createdFrom !== undefined) out.push([`${prefix}created.gte`, time(f.createdFrom)]);
  if (f.createdBefore !== undefined) out.push([`${prefix}created.lt`, time(f.createdBefore)]);
  for (const [name, m] of Object.entries(f.metric ?? {})) {
    if (typeof m === 'number') out.push([`${prefix}metric.${name}.eq`, String(m)]);
    else for (const [op, v] of Object.entries(m)) out.push([`${prefix}metric.${name}.${op}`, String(v)]);
  }
  for (const [path, p] of Object.entries(f.param ?? {})) {
    if (p === null || typeof p !== 'object') out.push([`${prefix}param.${path}.eq`, paramText(p)]);
    else for (const [op, v] of Object.entries(p)) out.push([`${prefix}param.${path}.${op}`, op === 'exists' ? String(v) : paramText(v as ParamValue)]);
  }
  return out;
}

export class CandlekeepClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(opts: ClientOptions = {}) {
    const base = opts.baseUrl ?? process.env.CANDLEKEEP_URL;
    if (!base) throw new Error('candlekeep client: set CANDLEKEEP_URL or pass baseUrl (e.g. http://127.0.0.1:8080)');
    this.baseUrl = base.replace(/\/+$/, '');
    this.apiKey = opts.apiKey ?? process.env.CANDLEKEEP_API_KEY;
    this.fetchFn = opts.fetch ?? fetch;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Sends one request; answers other than 2xx throw CandlekeepError. */
  async request(
    method: string,
    path: string,
    opts: { query?: [string, string][]; body?: unknown; headers?: Record<string, string>; accept?: string } = {},
  ): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of opts.query ?? []) url.searchParams.append(k, v);
    const headers: Record<string, string> = { Accept: opts.accept ?? 'application/json', ...opts.headers };
    if (this.apiKey) headers['x-api-key'] = this.apiKey;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.fetchFn(url, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new CandlekeepConnectionError(`${url.origin}${url.pathname}`, networkReason(err, this.timeoutMs), { cause: err });
    }
    if (res.ok) return res;
    const text = await res.text();
    let problem: Problem;
    try {
      problem = JSON.parse(text) as Problem;
      if (typeof problem.detail !== 'string') throw new Error('not a problem');
    } catch {
      problem = { type: 'about:blank', title: res.statusText || 'Error', status: res.status, detail: text.slice(0, 500) || res.statusText };
    }
    throw new CandlekeepError(problem);
  }

  private async json<T>(method: string, path: string, query: [string, string][] = []): Promise<T> {
    return (await (await this.request(method, path, { query })).json()) as T;
  }

  health(): Promise<{ status: 'ok'; database: 'ok'; version: string }> {
    return this.json('GET', '/v1/health');
  }

  openapi(): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/openapi.json');
  }

  private candleQuery(p: CandlesParams): [string, string][] {
    const q = seriesPageQuery(p);
    if (p.gaps !== undefined) q.push(['gaps', p.gaps]);
    if (p.asOf !== undefined) q.push(['asOf', time(p.asOf)]);
    return q;
  }

  /** One page of candles. */
  candles(p: CandlesParams): Promise<CandlePage> {
    return this.json('GET', '/v1/candles', this.candleQuery(p));
  }

  /** One page as CSV text, with the cursor of the next page. */
  async candlesCsv(p: CandlesParams): Promise<{ csv: string; nextCursor: string | null }> {
    const res = await this.request('GET', '/v1/candles', { query: [...this.candleQuery(p), ['format', 'csv']], accept: 'text/csv' });
    return { csv: await res.text(), nextCursor: res.headers.get('x-next-cursor') };
  }

  /** Every candle of the range, page after page. */
  async *iterateCandles(p: CandlesParams): AsyncGenerator<CandleOut> {
    yield* followPages(p.cursor, (cursor) => this.candles({ ...p, ...cursor }), (page) => page.candles);
  }

  async allCandles(p: CandlesParams): Promise<CandleOut[]> {
    const out: CandleOut[] = [];
    for await (const c of this.iterateCandles(p)) out.push(c);
    return out;
  }

  /** Newest closed candle of the given series (or of every series matching the filter). */
  latest(p: { series?: SeriesRef[]; exchange?: Exchange; symbol?: string; interval?: Interval } = {}): Promise<LatestCandles> {
    const series = p.series?.map((s) => `${s.exchange}:${s.symbol}:${s.interval}`).join(',');
    return this.json('GET', '/v1/candles/latest', queryOf({ series, exchange: p.exchange || undefined, symbol: p.symbol || undefined, interval: p.interval || undefined }));
  }

  markets(p: { exchange?: Exchange; symbol?: string; interval?: Interval } = {}): Promise<Markets> {
    return this.json('GET', '/v1/markets', queryOf(p));
  }

  /** Markets ever followed, with their intervals, start and paused flag (removed ones carry removedAt). */
  followedMarkets(p: { exchange?: Exchange; symbol?: string } = {}): Promise<FollowedMarkets> {
    return this.json('GET', '/v1/markets/followed', queryOf(p));
  }

  /** An exchange's spot instruments, most traded first (`top`: the N most traded by 24h quote volume). */
  instruments(p: { exchange: Exchange; quote?: string; top?: number; trading?: boolean }): Promise<Instruments> {
    const query = queryOf({ quote: p.quote, top: p.top, trading: p.trading === undefined ? undefined : String(p.trading) });
    return this.json('GET', `/v1/exchanges/${encodeURIComponent(p.exchange)}/instruments`, query);
  }

  /** Follows markets, all or none: a refusal throws CandlekeepError (422) naming each refused market. */
  async followMarkets(input: FollowMarketsInput): Promise<FollowedMarkets> {
    return (await (await this.request('POST', '/v1/markets', { body: input })).json()) as FollowedMarkets;
  }

  /** Changes the intervals of a followed market, or pauses (paused: true) or resumes it. */
  async changeMarket(change: MarketChangeInput): Promise<FollowedMarket> {
    return (await (await this.request('PATCH', '/v1/markets', { body: change })).json()) as FollowedMarket;
  }

  /** Stops following a market; its candles are kept unless purge is true. */
  async removeMarket(p: { exchange: Exchange; symbol: string; purge?: boolean }): Promise<MarketRemoval> {
    const query: [string, string][] = [['exchange', p.exchange], ['symbol', p.symbol], ...(p.purge ? ([['purge', 'true']] as [string, string][]) : [])];
    return (await (await this.request('DELETE', '/v1/markets', { query })).json()) as MarketRemoval;
  }

  /** Asks for an export (POST /v1/exports); follow it with getExport until its status is done or failed. */
  async requestExport(input: ExportRequestInput): Promise<ExportStatusBody> {
    return (await (await this.request('POST', '/v1/exports', { body: input })).json()) as ExportStatusBody;
  }

  /** An export's status and progress; when done, a presigned download URL (GET /v1/exports/{id}). */
  getExport(id: string): Promise<ExportStatusBody> {
    return this.json('GET', `/v1/exports/${encodeURIComponent(id)}`);
  }

  gaps(p: SeriesRef & { start?: TimeInput; end?: TimeInput; limit?: number; cursor?: string }): Promise<GapPage> {
    return this.json('GET', '/v1/gaps', seriesPageQuery(p));
  }

  /**
   * Stores a run. Pass an idempotencyKey (e.g. a UUID kept with the run's output) so a retry after
   * a timeout returns the run the first attempt created instead of a duplicate.
   */
  async createBacktest(run: CreateBacktestInput, opts: { idempotencyKey?: string } = {}): Promise<{ run: Backtest; created: boolean }> {
    const res = await this.request('POST', '/v1/backtests', {
      body: run,
      ...(opts.idempotencyKey ? { headers: { 'Idempotency-Key': opts.idempotencyKey } } : {}),
    });
    return { run: (await res.json()) as Backtest, created: res.status === 201 };
  }

  getBacktest(id: string, opts: { include?: ('equityCurve' | 'trades')[] } = {}): Promise<Backtest> {
    return this.json('GET', `/v1/backtests/${encodeURIComponent(id)}`, opts.include?.length ? [['include', opts.include.join(',')]] : []);
  }

  /** One page of a run's trades (stored order); large runs span several. */
  backtestTrades(id: string, p: { limit?: number; cursor?: string } = {}): Promise<TradePage> {
    return this.json('GET', `/v1/backtests/${encodeURIComponent(id)}/trades`, queryOf({ limit: p.limit, cursor: p.cursor }));
  }

  /** Every trade of a run, page after page: the way to read trades too big for `getBacktest(id, { include: ['trades'] })`. */
  async *iterateBacktestTrades(id: string): AsyncGenerator<TradePage['trades'][number]> {
    yield* followPages(undefined, (cursor) => this.backtestTrades(id, cursor), (page) => page.trades);
  }

  /** One page of a run's equity curve, in time order. */
  backtestEquityCurve(id: string, p: { limit?: number; cursor?: string } = {}): Promise<EquityCurvePage> {
    return this.json('GET', `/v1/backtests/${encodeURIComponent(id)}/equity-curve`, queryOf({ limit: p.limit, cursor: p.cursor }));
  }

  /** Every point of a run's equity curve, page after page. */
  async *iterateBacktestEquityCurve(id: string): AsyncGenerator<EquityCurvePage['equityCurve'][number]> {
    yield* followPages(undefined, (cursor) => this.backtestEquityCurve(id, cursor), (page) => page.equityCurve);
  }

  async deleteBacktest(id: string): Promise<void> {
    await this.request('DELETE', `/v1/backtests/${encodeURIComponent(id)}`);
  }

  /** The query parameters of a list request, e.g. to build a URL for pandas. */
  static backtestQuery(p: ListBacktestsParams): [string, string][] {
    const q = filterEntries(p);
    (p.or ?? []).forEach((g, i) => q.push(...filterEntries(g, `or.${i + 1}.`)));
    if (p.sort) q.push(['sort', p.sort]);
    if (p.limit !== undefined) q.push(['limit', String(p.limit)]);
    if (p.cursor) q.push(['cursor', p.cursor]);
    return q;
  }

  listBacktests(p: ListBacktestsParams = {}): Promise<BacktestPage> {
    return this.json('GET', '/v1/backtests', CandlekeepClient.backtestQuery(p));
  }

  async *iterateBacktests(p: ListBacktestsParams = {}): AsyncGenerator<Backtest> {
    yield* followPages(p.cursor, (cursor) => this.listBacktests({ ...p, ...cursor }), (page) => page.runs);
  }

  compareBacktests(ids: string[]): Promise<Comparison> {
    return this.json('GET', '/v1/backtests/compare', [['ids', ids.join(',')]]);
  }
}

/** The items of every page from `cursor` on, following each page's nextCursor. */
async function* followPages<P extends { nextCursor: string | null }, T>(
  cursor: string | undefined,
  fetchPage: (at: { cursor?: string }) => Promise<P>,
  items: (page: P) => T[],
): AsyncGenerator<T> {
  let at = cursor;
  do {
    const page = await fetchPage(at ? { cursor: at } : {});
    yield* items(page);
    at = page.nextCursor ?? undefined;
  } while (at);
}

/** Query pairs of the values that are given, in order. */
const queryOf = (values: Record<string, string | number | undefined>): [string, string][] =>
  Object.entries(values).flatMap(([k, v]): [string, string][] => (v === undefined ? [] : [[k, String(v)]]));

/** The query of a series, a time range and a page, shared by /v1/candles and /v1/gaps. */
function seriesPageQuery(p: SeriesRef & { start?: TimeInput; end?: TimeInput; limit?: number; cursor?: string }): [string, string][] {
  const { exchange, symbol, interval, start, end, limit, cursor } = p;
  return queryOf({
    exchange,
    symbol,
    interval,
    start: start === undefined ? undefined : time(start),
    end: end === undefined ? undefined : time(end),
    limit,
    cursor,
  });
}
