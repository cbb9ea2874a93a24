import { describe, expect, it } from 'vitest';
import { bucketStart, INTERVAL_MS, type Interval } from '../../../functions/candles/intervals.ts';
import { uniqueSymbol } from '../../support/db.ts';
import type { StoredCandle } from '../../../functions/store/candles.ts';
import { load, parseCsv, useApi, walk } from './support.ts';

const api = useApi();
const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1); // Friday 2024-03-01

// ---- an independent, exact reference for resampling ----

const scaled = (s: string, scale: number) => {
  const [i = '0', f = ''] = s.split('.');
  return BigInt(i + f.padEnd(scale, '0'));
};
const scaleOf = (s: string) => (s.split('.')[1] ?? '').length;
/** Exact decimal sum, rendered at the largest input scale (as PostgreSQL's numeric sum does). */
function decSum(values: string[]): string {
  const scale = Math.max(0, ...values.map(scaleOf));
  const total = values.reduce((acc, v) => acc + scaled(v, scale), 0n);
  const s = total.toString().padStart(scale + 1, '0');
  return scale ? `${s.slice(0, -scale)}.${s.slice(-scale)}` : s;
}
const decCmp = (a: string, b: string) => {
  const scale = Math.max(scaleOf(a), scaleOf(b));
  const d = scaled(a, scale) - scaled(b, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
};

function reference(bars: StoredCandle[], target: Interval, source: Interval) {
  const groups = new Map<number, StoredCandle[]>();
  for (const b of bars) {
    const k = bucketStart(b.openTime, target);
    groups.set(k, [...(groups.get(k) ?? []), b]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, g]) => ({
      openTime: t,
      open: g[0]!.open,
      high: g.map((b) => b.high).reduce((a, b) => (decCmp(a, b) >= 0 ? a : b)),
      low: g.map((b) => b.low).reduce((a, b) => (decCmp(a, b) <= 0 ? a : b)),
      close: g[g.length - 1]!.close,
      volume: decSum(g.map((b) => b.volume)),
      quoteVolume: decSum(g.map((b) => b.quoteVolume!)),
      trades: g.reduce((n, b) => n + b.trades!, 0),
      closed: g.every((b) => b.closed !== false) && g[g.length - 1]!.openTime === t + INTERVAL_MS[target] - INTERVAL_MS[source],
      gap: false,
      sourceCandles: g.length,
    }));
}

describe('GET /v1/candles (stored interval)', () => {
  it('returns candles in time order with exact decimals and pages through them with no row repeated or skipped', async () => {
    const symbol = uniqueSymbol();
    const bars = walk(T0, 2500, MIN, 7);
    bars[0]!.open = '68123.45000000';
    await load(api, symbol, '1m', bars);

    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 700, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      expect(r.body.resampledFrom).toBeNull();
      seen.push(...r.body.candles.map((c: { openTime: number }) => c.openTime));
      cursor = r.body.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(4);
    expect(seen).toEqual(bars.map((b) => b.openTime));

    const first = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 1 });
    expect(first.body.candles[0]).toEqual({
      openTime: T0,
      open: '68123.45000000',
      high: bars[0]!.high,
      low: bars[0]!.low,
      close: bars[0]!.close,
      volume: bars[0]!.volume,
      quoteVolume: bars[0]!.quoteVolume,
      trades: bars[0]!.trades,
      closed: true,
      gap: false,
    });
  });

  it('limits to [start, end) and accepts ISO 8601 and epoch milliseconds alike', async () => {
    const symbol = uniqueSymbol();
    await load(api, symbol, '1m', walk(T0, 120, MIN));
    const iso = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', start: '2024-03-01T00:10:00Z', end: '2024-03-01T01:20:00+01:00' });
    const ms = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', start: T0 + 10 * MIN, end: T0 + 20 * MIN });
    const expected = Array.from({ length: 10 }, (_, i) => T0 + (10 + i) * MIN);
    expect(iso.body.candles.map((c: { openTime: number }) => c.openTime)).toEqual(expected);
    expect(ms.body.candles).toEqual(iso.body.candles);
    const empty = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', start: T0 + 10 * MIN, end: T0 + 10 * MIN });
    expect(empty.body).toMatchObject({ status: 400, parameter: 'end' });
    const r = iso;
    expect(r.body.start).toBe('2024-03-01T00:10:00.000Z');
  });

  it('answers CSV with a header row that parses back to the JSON values, by format=csv and by Accept', async () => {
    const symbol = uniqueSymbol();
    const bars = walk(T0, 50, MIN, 3);
    bars[5]!.quoteVolume = null;
    bars[5]!.trades = null;
    await load(api, symbol, '1m', bars);
    const q = { exchange: 'binance', symbol, interval: '1m', limit: 30 };
    const json = await api.get('/v1/candles', q);
    const byParam = await api.get('/v1/candles', { ...q, format: 'csv' });
    const byAccept = await api.get('/v1/candles', q, { headers: { accept: 'text/csv' } });
    expect(byParam.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(byAccept.text).toBe(byParam.text);
    expect(byParam.headers.get('x-next-cursor')).toBe(json.body.nextCursor);
    const rows = parseCsv(byParam.text);
    expect(Object.keys(rows[0]!)).toEqual(['time', 'open_time', 'open', 'high', 'low', 'close', 'volume', 'quote_volume', 'trades', 'closed', 'gap', 'taker_buy_volume', 'taker_buy_quote_volume', 'vwap']);
    expect(
      rows.map((r) => ({
        openTime: Number(r.open_time),
        open: r.open,
        high: r.high,
        low: r.low,
        close: r.close,
        volume: r.volume,
        quoteVolume: r.quote_volume === '' ? null : r.quote_volume,
        trades: r.trades === '' ? null : Number(r.trades),
        closed: r.closed === 'true',
        gap: r.gap === 'true',
      })),
    ).toEqual(json.body.candles);
    expect(rows[0]!.time).toBe('2024-03-01T00:00:00.000Z');
  });

  it('makes gaps visible only when asked: omit leaves them out, null and ffill fill them and flag them', async () => {
    const symbol = uniqueSymbol();
    const bars = walk(T0, 10, MIN, 5, (i) => i === 3 || i === 4);
    await load(api, symbol, '1m', bars);
    const base = { exchange: 'binance', symbol, interval: '1m' };
    const omit = await api.get('/v1/candles', base);
    expect(omit.body.gaps).toBe('omit');
    expect(omit.body.candles).toHaveLength(8);

    const nul = await api.get('/v1/candles', { ...base, gaps: 'null' });
    expect(nul.body.candles).toHaveLength(10);
    expect(nul.body.candles[3]).toEqual({ openTime: T0 + 3 * MIN, open: null, high: null, low: null, close: null, volume: null, quoteVolume: null, trades: null, closed: false, gap: true });

    const ffill = await api.get('/v1/candles', { ...base, gaps: 'ffill', limit: 4 });
    const next = await api.get('/v1/candles', { ...base, gaps: 'ffill', limit: 4, cursor: ffill.body.nextCursor });
    const all = [...ffill.body.candles, ...next.body.candles];
    const prevClose = bars[2]!.close;
    expect(all[3]).toMatchObject({ open: prevClose, high: prevClose, low: prevClose, close: prevClose, volume: '0', gap: true, closed: false });
    // The page boundary falls inside the gap: the fill still uses the close before it.
    expect(all[4]).toMatchObject({ openTime: T0 + 4 * MIN, close: prevClose, gap: true });
    expect(all[5]).toMatchObject({ openTime: T0 + 5 * MIN, gap: false });
  });
});

describe('GET /v1/candles (resampled)', () => {
  // 1m data from 00:30 on day one to 10:15 on day three, with a 60-minute hole straddling two
  // hours, a whole missing hour, and an open last candle.
  const startMin = 30;
  const bars = walk(T0 + startMin * MIN, 2 * 1440 + 600 - startMin + 15, MIN, 11, (i) => (i >= 70 && i < 130) || (i >= 270 && i < 330));
  bars[bars.length - 1]!.closed = false;
  let symbol: string;

  it('builds 1h and 1d from 1m exactly like an independent computation, partial buckets and gaps included', async () => {
    symbol = uniqueSymbol();
    await load(api, symbol, '1m', bars);
    for (const interval of ['1h', '1d'] as const) {
      const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval, start: '2024-03-01', end: '2024-03-04' });
      expect(r.status).toBe(200);
      expect(r.body.resampledFrom).toBe('1m');
      expect(r.body.sourceCandlesPerBucket).toBe(INTERVAL_MS[interval] / MIN);
      expect(r.body.candles).toEqual(reference(bars, interval, '1m'));
    }
    const hours = (await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1h' })).body.candles;
    expect(hours[0]).toMatchObject({ openTime: T0, sourceCandles: 30, closed: true });
    expect(hours.find((h: { openTime: number }) => h.openTime === T0 + 5 * 3600_000)).toBeUndefined(); // the whole missing hour
    expect(hours[hours.length - 1]).toMatchObject({ sourceCandles: 15, closed: false }); // still forming
  });

  it('pages resampled buckets with a cursor and fills missing buckets when asked', async () => {
    const all = (await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1h', gaps: 'null' })).body.candles;
    const paged: unknown[] = [];
    let cursor: string | undefined;
    do {
      const r = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1h', gaps: 'null', limit: 7, ...(cursor ? { cursor } : {}) });
      paged.push(...r.body.candles);
      cursor = r.body.nextCursor ?? undefined;
    } while (cursor);
    expect(paged).toEqual(all);
    const hole = all.find((h: { openTime: number }) => h.openTime === T0 + 5 * 3600_000);
    expect(hole).toMatchObject({ gap: true, open: null, sourceCandles: 0, closed: false });
    expect(all.map((h: { openTime: number }) => h.openTime)).toEqual(Array.from({ length: all.length }, (_, i) => T0 + i * 3600_000));
  });

  it('aligns weekly buckets to Monday and says which stored interval it used', async () => {
    const weekly = uniqueSymbol();
    const days = walk(Date.UTC(2024, 2, 6), 19, 86_400_000, 2); // Wednesday to Sunday two weeks later
    await load(api, weekly, '1d', days);
    await load(api, weekly, '1h', walk(Date.UTC(2024, 2, 6), 24, 3600_000, 3)); // a finer series exists too
    const r = await api.get('/v1/candles', { exchange: 'binance', symbol: weekly, interval: '1w' });
    expect(r.body.resampledFrom).toBe('1d'); // the coarsest stored interval that divides a week
    const fromDays = await api.get('/v1/candles', { exchange: 'binance', symbol: weekly, interval: '1d' });
    expect(fromDays.body.resampledFrom).toBeNull();
    const onlyDays = uniqueSymbol();
    await load(api, onlyDays, '1d', days);
    const w = await api.get('/v1/candles', { exchange: 'binance', symbol: onlyDays, interval: '1w', format: 'csv' });
    expect(w.headers.get('x-resampled-from')).toBe('1d');
    const rows = parseCsv(w.text);
    expect(rows.map((x) => x.time)).toEqual(['2024-03-04T00:00:00.000Z', '2024-03-11T00:00:00.000Z', '2024-03-18T00:00:00.000Z']);
    expect(rows.map((x) => Number(x.source_candles))).toEqual([5, 7, 7]);
    expect(rows[0]!.open).toBe(days[0]!.open);
  });
});

describe('GET /v1/candles: invalid requests get a 4xx problem naming the parameter', () => {
  const ok = { exchange: 'binance', symbol: 'BTC/USDT', interval: '1m' };
  const cases: [string, Record<string, string | number>, number, string, RegExp][] = [
    ['an unknown parameter', { ...ok, interal: '1h' }, 400, 'interal', /unknown query parameter "interal"/],
    ['a missing parameter', { symbol: 'BTC/USDT', interval: '1m' }, 400, 'exchange', /exchange/],
    ['an unknown interval', { ...ok, interval: '7m' }, 400, 'interval', /unknown interval "7m"/],
    ['an unknown exchange', { ...ok, exchange: 'ftx' }, 400, 'exchange', /unknown exchange/],
    ['a SQL-looking symbol', { ...ok, symbol: "BTC/USDT'; DROP TABLE candles;--" }, 400, 'symbol', /BASE\/QUOTE/],
    ['epoch seconds', { ...ok, start: 1709251200 }, 400, 'start', /looks like epoch seconds/],
    ['epoch microseconds', { ...ok, start: '1709251200000000' }, 400, 'start', /microseconds/],
    ['a non-date', { ...ok, end: 'yesterday' }, 400, 'end', /neither an ISO 8601/],
    ['an impossible date', { ...ok, start: '2024-02-30' }, 400, 'start', /not a valid calendar date/],
    ['an inverted range', { ...ok, start: '2024-03-02', end: '2024-03-01' }, 400, 'end', /must be after start/],
    ['a huge limit', { ...ok, limit: 1_000_000 }, 400, 'limit', /at most 10000/],
    ['a zero limit', { ...ok, limit: 0 }, 400, 'limit', /at least 1/],
    ['a non-numeric limit', { ...ok, limit: '10; DROP' }, 400, 'limit', /whole number/],
    ['a forged cursor', { ...ok, cursor: 'not-a-cursor!' }, 400, 'cursor', /cursor/],
    ['an unknown gap policy', { ...ok, gaps: 'zero' }, 400, 'gaps', /gap policy/],
    ['an unknown format', { ...ok, format: 'xml' }, 400, 'format', /format/],
  ];
  it.each(cases)('%s', async (_name, query, status, parameter, detail) => {
    const r = await api.get('/v1/candles', query);
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    expect(r.body).toMatchObject({ status, parameter });
    expect(r.body.detail).toMatch(detail);
    expect(r.text).not.toMatch(/\bat \w+ \(|SELECT|postgres/i);
  });

  it('rejects a parameter given twice and a cursor of another query', async () => {
    const symbol = uniqueSymbol();
    await load(api, symbol, '1m', walk(T0, 5, MIN));
    const twice = await api.get('/v1/candles', [['exchange', 'binance'], ['symbol', symbol], ['interval', '1m'], ['limit', '1'], ['limit', '2']]);
    expect(twice.body).toMatchObject({ status: 400, parameter: 'limit' });
    const page = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 2 });
    const other = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m', limit: 2, gaps: 'null', cursor: page.body.nextCursor });
    expect(other.body).toMatchObject({ status: 400, parameter: 'cursor' });
    expect(other.body.detail).toMatch(/different query/);
  });

  it('answers 404 for a series that is not stored, 406 for an unsupported Accept', async () => {
    const missing = await api.get('/v1/candles', { exchange: 'binance', symbol: uniqueSymbol(), interval: '1m' });
    expect(missing.body).toMatchObject({ status: 404, parameter: 'symbol' });
    const symbol = uniqueSymbol();
    await load(api, symbol, '1h', walk(T0, 5, 3600_000));
    const finer = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1m' });
    expect(finer.body).toMatchObject({ status: 404, parameter: 'interval' });
    expect(finer.body.detail).toMatch(/stored: 1h/);
    const xml = await api.get('/v1/candles', { exchange: 'binance', symbol, interval: '1h' }, { headers: { accept: 'application/xml' } });
    expect(xml.status).toBe(406);
  });
});

describe('API key and routes', () => {
  it('requires an API key on every route but health: 401 without one or with an unknown one', async () => {
    expect((await api.get('/v1/health', {}, { key: null })).status).toBe(200);
    for (const path of ['/v1/candles', '/v1/candles/latest', '/v1/markets', '/v1/gaps', '/v1/backtests', '/v1/backtests/compare', '/v1/openapi.json']) {
      const none = await api.get(path, {}, { key: null });
      expect(none.status, path).toBe(401);
      expect(none.body.detail).toMatch(/x-api-key/);
      expect((await api.get(path, {}, { key: 'wrong' })).status, path).toBe(401);
    }
    expect((await api.call('POST', '/v1/backtests', { key: null, body: {} })).status).toBe(401);
    expect((await api.call('DELETE', '/v1/backtests/0190b6a0-0000-7000-8000-000000000000', { key: null })).status).toBe(401);
  });

  it('answers 404 problem for unknown routes and rejects query parameters where none are accepted', async () => {
    const r = await api.get('/v1/nope');
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toBe('application/problem+json');
    const h = await api.get('/v1/health', { verbose: '1' });
    expect(h.body).toMatchObject({ status: 400, parameter: 'verbose' });
  });

  it('serves the OpenAPI document it validates with', async () => {
    const r = await api.get('/v1/openapi.json');
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths)).toContain('/v1/backtests/compare');
  });
});

describe('latest, markets, gaps', () => {
  it('GET /v1/candles/latest gives the newest closed candle of each series', async () => {
    const a = uniqueSymbol();
    const b = uniqueSymbol();
    const barsA = walk(T0, 10, MIN, 1);
    barsA[9]!.closed = false;
    await load(api, a, '1m', barsA);
    await load(api, b, '1h', walk(T0, 3, 3600_000, 2));
    const r = await api.get('/v1/candles/latest', { series: [`binance:${a}:1m`, `binance:${b}:1h`] });
    expect(r.status).toBe(200);
    expect(r.body.series.map((s: { symbol: string; candle: { openTime: number } }) => [s.symbol, s.candle.openTime]).sort()).toEqual(
      [
        [a, T0 + 8 * MIN],
        [b, T0 + 2 * 3600_000],
      ].sort(),
    );
    const one = await api.get('/v1/candles/latest', { exchange: 'binance', symbol: a });
    expect(one.body.series).toHaveLength(1);
    const csv = parseCsv((await api.get('/v1/candles/latest', { series: `binance:${a}:1m`, format: 'csv' })).text);
    expect(csv[0]).toMatchObject({ symbol: a, open_time: String(T0 + 8 * MIN), closed: 'true' });
    expect((await api.get('/v1/candles/latest', { series: `binance:${uniqueSymbol()}:1m` })).status).toBe(404);
    expect((await api.get('/v1/candles/latest', { series: 'binance:BTC/USDT' })).body.parameter).toBe('series[0]');
  });

  it('GET /v1/markets and /v1/gaps report extent and gaps', async () => {
    const symbol = uniqueSymbol();
    // Missing: minutes 3-4 (2 candles) and 10-15 (6 candles).
    await load(api, symbol, '1m', walk(T0, 20, MIN, 4, (i) => i === 3 || i === 4 || (i >= 10 && i < 16)));
    const m = await api.get('/v1/markets', { symbol });
    expect(m.body.markets).toEqual([
      { exchange: 'binance', symbol, interval: '1m', state: 'not-followed', candles: 12, firstOpenTime: T0, lastOpenTime: T0 + 19 * MIN,
        // Stored without a range (as a backfill or pull would send it), so the coverage ledger has nothing to say.
        newestClosedOpenTime: null, lagMs: null, pulledAt: null, lastError: null,
        gapCount: 2, missingCandles: 8, largestGapCandles: 6, deadLetteredMessages: 0, deadLetteredCandles: 0,
        retentionDays: null, expiredBefore: null, expiredCandles: 0 },
    ]);
    const csv = parseCsv((await api.get('/v1/markets', { symbol, format: 'csv' })).text);
    expect(csv[0]).toMatchObject({ candles: '12', gap_count: '2', first_open_time: '2024-03-01T00:00:00.000Z' });

    const p1 = await api.get('/v1/gaps', { exchange: 'binance', symbol, interval: '1m', limit: 1 });
    expect(p1.body.gaps).toEqual([{ start: T0 + 3 * MIN, end: T0 + 5 * MIN, missingCandles: 2, kind: 'missing', confirmedByExchange: false, deadLetteredMessages: 0 }]);
    const p2 = await api.get('/v1/gaps', { exchange: 'binance', symbol, interval: '1m', limit: 1, cursor: p1.body.nextCursor });
    expect(p2.body.gaps).toEqual([{ start: T0 + 10 * MIN, end: T0 + 16 * MIN, missingCandles: 6, kind: 'missing', confirmedByExchange: false, deadLetteredMessages: 0 }]);
    expect(p2.body.nextCursor).toBeNull();
    const later = await api.get('/v1/gaps', { exchange: 'binance', symbol, interval: '1m', start: T0 + 12 * MIN });
    expect(later.body.gaps.map((g: { start: number }) => g.start)).toEqual([T0 + 10 * MIN]);
  });
});
