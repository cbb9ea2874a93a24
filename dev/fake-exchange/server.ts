/**
 * A local stand-in for the five exchanges' public kline endpoints, over real HTTP (127.0.0.1, port 0).
 *
 *   const fake = await startFakeExchange({ now: () => clock, timeScale: 60 });
 *   await binance.fetchPage(req, { fetch, baseUrl: fake.baseUrls.binance });
 *   fake.inject('binance', '429', { retryAfterSec: 2 });   // next answer: 429 + Retry-After: 2
 *   fake.stats('binance');  // { requests, ok, rateLimited, banned, errors, faults }
 *   await fake.close();
 *
 * It serves a deterministic (seeded) price series in each exchange's own response shape, order,
 * page limits, pagination and error formats, with a forming last candle by its clock, and enforces
 * the exchanges' published rate limits (FAKE_LIMITS, from the adapters' declarations) on that
 * clock. `timeScale` runs every rate-limit window and ban that many times faster (timeScale 60:
 * Binance's minute lasts one second), and Retry-After is then sent in fractional seconds. With
 * `enforceLimits: false` nothing is limited and Binance sends no X-MBX-USED-WEIGHT-1M. Only
 * candlekeep's intervals are served; other valid exchange intervals get the exchange's "bad
 * interval" answer. `latencyMs: [min, max]` holds every answer for a random time in that range
 * (seeded), as a real exchange's round trip would; limits count the request when it arrives. Each
 * exchange is one venue module beside this one.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EXCHANGES, type Candle, type Exchange } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../functions/candles/intervals.ts';
import { BINANCE_LIMITS, binanceVenue } from './binance.ts';
import { BYBIT_LIMITS, bybitVenue } from './bybit.ts';
import { COINBASE_LIMITS, coinbaseVenue } from './coinbase.ts';
import { KRAKEN_LIMITS, krakenVenue } from './kraken.ts';
import { OKX_LIMITS, okxVenue } from './okx.ts';
import { FAKE_MARKETS, SeriesGenerator, bucketAtOrAfter, bucketTimes, type FakeMarket } from './series.ts';
import type { Answer, ExchangeStats, FaultKind, FaultOptions, Venue, VenueContext } from './venue.ts';

export type { ExchangeStats, FaultKind, FaultOptions } from './venue.ts';

/** The exchanges' published limits, as the fake enforces them (before `timeScale`). */
export const FAKE_LIMITS = { ...BINANCE_LIMITS, ...OKX_LIMITS, ...BYBIT_LIMITS, ...COINBASE_LIMITS, ...KRAKEN_LIMITS };
export type FakeLimits = typeof FAKE_LIMITS;

export interface FakeExchangeOptions {
  /** Server clock (ms) for candles and rate limits; default Date.now. */
  now?: () => number;
  seed?: number;
  /** Rate-limit windows and bans run this many times faster than the real ones (default 1). */
  timeScale?: number;
  limits?: { [K in keyof FakeLimits]?: Partial<FakeLimits[K]> };
  /** Default true. */
  enforceLimits?: boolean;
  /** No candles open before this (ms): one value, one per exchange, or per market. Default 2019-01-01. */
  listedAt?: number | Partial<Record<Exchange, number>> | ((exchange: Exchange, symbol: string) => number | undefined);
  /** Buckets without trades: Coinbase omits them, Kraken serves flat candles with count 0; others ignore this. */
  holes?: (openTime: number, series: { exchange: Exchange; symbol: string; interval: Interval }) => boolean;
  /** Each answer is sent after a random delay in [min, max] ms (real time); default none. */
  latencyMs?: readonly [number, number];
}

export interface RequestRecord {
  path: string;
  query: Record<string, string>;
  status: number;
  at: number;
}

export interface FakeExchange {
  readonly origin: string;
  /** Pass as the adapters' `baseUrl`. */
  readonly baseUrls: Record<Exchange, string>;
  readonly timeScale: number;
  now(): number;
  setClock(now: () => number): void;
  /** Forces the next responses of `exchange` to fail in that exchange's format. */
  inject(exchange: Exchange, kind: FaultKind, options?: FaultOptions): void;
  stats(exchange: Exchange): ExchangeStats;
  requests(exchange: Exchange): readonly RequestRecord[];
  /** The candles an adapter should produce for this range, as the fake serves them now. */
  expected(exchange: Exchange, unified: string, interval: Interval, from: number, to: number): Candle[];
  /** Clears counters, faults, rate-limit state and bans. */
  reset(): void;
  close(): Promise<void>;
}

const HTML_PAGE = (status: number) =>
  `<!DOCTYPE html>\n<html><head><title>${status} Bad gateway</title></head><body><h1>Error ${status}</h1>` +
  '<p>The web server reported a bad gateway error.</p><p>cloudflare</p></body></html>';

const NO_ENDPOINT: Answer = { status: 404, body: '{"error":"no such endpoint"}', outcome: 'errors' };

export async function startFakeExchange(options: FakeExchangeOptions = {}): Promise<FakeExchange> {
  let clock = options.now ?? Date.now;
  const [minLatency, maxLatency] = options.latencyMs ?? [0, 0];
  if (!(minLatency >= 0 && maxLatency >= minLatency)) throw new RangeError(`latencyMs must be [min, max] with 0 <= min <= max, got [${minLatency}, ${maxLatency}]`);
  // A seeded generator, so a run's delays are the same every time (mulberry32).
  let latencyState = (options.seed ?? 1) * 0x9e3779b1;
  const nextLatency = (): number => {
    if (maxLatency === 0) return 0;
    latencyState = (latencyState + 0x6d2b79f5) | 0;
    let t = latencyState;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return minLatency + unit * (maxLatency - minLatency);
  };
  const timeScale = options.timeScale ?? 1;
  const gen = new SeriesGenerator(options.seed ?? 1);
  const limits = <K extends keyof FakeLimits>(key: K): FakeLimits[K] => ({ ...FAKE_LIMITS[key], ...options.limits?.[key] });

  const listedAt = (ex: Exchange, m: FakeMarket): number => {
    const l = options.listedAt;
    const at = typeof l === 'number' ? l : typeof l === 'function' ? l(ex, m.unified) : l?.[ex];
    return at ?? Date.UTC(2019, 0, 1);
  };
  const context = (ex: Exchange): VenueContext => ({
    gen,
    enforce: options.enforceLimits ?? true,
    timeScale,
    retryAfter: (ms) => (timeScale === 1 ? String(Math.max(1, Math.ceil(ms / 1000))) : (Math.max(1, ms) / 1000).toFixed(3)),
    span: (m, interval, now) => ({ first: bucketAtOrAfter(listedAt(ex, m), interval), last: bucketStart(now, interval) }),
    isHole: (m, interval, t) => options.holes?.(t, { exchange: ex, symbol: m.unified, interval }) ?? false,
  });
  const venues: Record<Exchange, Venue> = {
    binance: binanceVenue(context('binance'), limits('binance')),
    okx: okxVenue(context('okx'), { okxCandles: limits('okxCandles'), okxHistory: limits('okxHistory'), okxInstruments: limits('okxInstruments'), okxTickers: limits('okxTickers') }),
    bybit: bybitVenue(context('bybit'), limits('bybit')),
    coinbase: coinbaseVenue(context('coinbase'), limits('coinbase')),
    kraken: krakenVenue(context('kraken'), limits('kraken')),
  };

  const faults = new Map<Exchange, { kind: FaultKind; options: FaultOptions }[]>();
  const stats = new Map<Exchange, ExchangeStats>();
  const logs = new Map<Exchange, RequestRecord[]>();
  const emptyStats = (): ExchangeStats => ({ requests: 0, ok: 0, rateLimited: 0, banned: 0, errors: 0, faults: 0 });
  for (const ex of EXCHANGES) stats.set(ex, emptyStats());

  function fault(venue: Venue, kind: FaultKind, o: FaultOptions, normal: () => Answer, now: number): Answer {
    switch (kind) {
      case '429':
      case '418':
      case '500':
        return venue.fault(kind, o, now);
      case 'html': {
        const status = o.status ?? 502;
        return { status, body: HTML_PAGE(status), headers: { 'Content-Type': 'text/html; charset=UTF-8' }, outcome: 'faults' };
      }
      case 'truncated': {
        const answer = normal();
        return { ...answer, status: 200, body: answer.body.slice(0, Math.max(1, Math.floor(answer.body.length / 2))), outcome: 'faults' };
      }
      case 'huge':
        throw new Error('a huge body is streamed by the server, not built as an answer');
    }
  }

  /**
   * A JSON array of kline-like rows that goes on for `bytes`, generated as the client reads it
   * (backpressure respected) so the fake itself never holds it; sending stops when the client hangs up.
   */
  function streamHuge(res: ServerResponse, o: FaultOptions): void {
    const total = o.bytes ?? 400_000_000;
    const row = Buffer.from('[1704067200000,"42000.10","42010.20","41990.30","42005.40","12.345",1704067259999,"518000.1",321,"6.1","256000.2","0"],');
    const block = Buffer.concat(Array.from({ length: Math.ceil(65_536 / row.length) }, () => row));
    res.writeHead(200, { 'Content-Type': 'application/json;charset=UTF-8', ...(o.declareLength ? { 'Content-Length': String(total) } : {}) });
    let sent = 0;
    const pump = () => {
      while (sent < total && !res.destroyed) {
        const piece = sent === 0 ? Buffer.concat([Buffer.from('['), block]) : block;
        const chunk = piece.subarray(0, Math.min(piece.length, total - sent));
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    pump();
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const delay = nextLatency();
    if (delay > 0) {
      // The exchange counts the request as it arrives; the answer travels back later.
      const end = res.end.bind(res);
      res.end = ((...args: Parameters<typeof res.end>) => {
        setTimeout(() => end(...args), delay);
        return res;
      }) as typeof res.end;
    }
    const url = new URL(req.url ?? '/', 'http://fake');
    const [, first = '', ...rest] = url.pathname.split('/');
    const ex = EXCHANGES.find((e) => e === first);
    const now = clock();
    res.setHeader('Date', new Date(now).toUTCString());
    if (!ex || req.method !== 'GET') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const path = `/${rest.join('/')}`;
    const s = stats.get(ex) ?? emptyStats();
    s.requests += 1;
    const queue = faults.get(ex) ?? [];
    const next = queue[0];
    let answer: Answer;
    const normal = () => venues[ex].answer(path, url.searchParams, now) ?? NO_ENDPOINT;
    if (next) {
      next.options.count = (next.options.count ?? 1) - 1;
      if (next.options.count <= 0) queue.shift();
      if (next.kind === 'huge') {
        s.faults += 1;
        (logs.get(ex) ?? logs.set(ex, []).get(ex))?.push({ path, query: Object.fromEntries(url.searchParams), status: 200, at: now });
        streamHuge(res, next.options);
        return;
      }
      answer = fault(venues[ex], next.kind, next.options, normal, now);
      if (next.kind === '429') s.rateLimited += 1;
      if (next.kind === '418') s.banned += 1;
    } else {
      answer = normal();
    }
    s[answer.outcome] += 1;
    (logs.get(ex) ?? logs.set(ex, []).get(ex))?.push({ path, query: Object.fromEntries(url.searchParams), status: answer.status, at: now });
    res.writeHead(answer.status, { 'Content-Type': 'application/json;charset=UTF-8', ...answer.headers });
    res.end(answer.body);
  }

  const server = createServer(handle);
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  function expected(ex: Exchange, unified: string, interval: Interval, from: number, to: number): Candle[] {
    const m = FAKE_MARKETS.find((x) => x.unified === unified);
    if (!m) throw new Error(`the fake does not list ${unified}`);
    const now = clock();
    const venue = venues[ex];
    const { first, last } = context(ex).span(m, interval, now);
    const served = venue.servedRows === undefined ? first : Math.max(first, last - (venue.servedRows - 1) * INTERVAL_MS[interval]);
    const lo = Math.max(served, bucketAtOrAfter(from, interval));
    const hi = Math.min(last, bucketStart(to, interval));
    const out: Candle[] = [];
    for (const t of bucketTimes(lo, hi, interval, 1)) {
      const candle = venue.expected(m, interval, t, now);
      if (candle) out.push(candle);
    }
    return out;
  }

  return {
    origin,
    baseUrls: Object.fromEntries(EXCHANGES.map((e) => [e, `${origin}/${e}`])) as Record<Exchange, string>,
    timeScale,
    now: () => clock(),
    setClock(now) {
      clock = now;
    },
    inject(exchange, kind, faultOptions = {}) {
      const queue = faults.get(exchange) ?? [];
      queue.push({ kind, options: { ...faultOptions, count: faultOptions.count ?? 1 } });
      faults.set(exchange, queue);
    },
    stats: (exchange) => ({ ...(stats.get(exchange) ?? emptyStats()) }),
    requests: (exchange) => [...(logs.get(exchange) ?? [])],
    expected,
    reset() {
      for (const ex of EXCHANGES) stats.set(ex, emptyStats());
      faults.clear();
      logs.clear();
      for (const venue of Object.values(venues)) venue.reset();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
