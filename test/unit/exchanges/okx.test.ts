import { describe, expect, it } from 'vitest';
import { MalformedResponseError, RateLimitedError, UnknownSymbolError, UnsupportedIntervalError } from '../../../functions/exchanges/errors.ts';
import { OKX_CANDLES_PATH, OKX_HISTORY_PATH, okx } from '../../../functions/exchanges/okx.ts';
import { CLOUDFLARE_PAGE, answer, fixture } from './canned.ts';

const BASE = 'https://www.okx.com';
const T_NEW = 1597026420000; // the aligned docs example: 02:27 forming, 02:26 closed
const T_OLD = 1597026360000;
const req = { symbol: 'BTC/USDT', interval: '1m' as const, from: T_OLD - 3_600_000, to: T_NEW + 60_000, now: T_NEW + 30_000 };

describe('okx adapter', () => {
  it('rejects the verbatim documentation example, whose timestamps are not bucket starts', async () => {
    const page = okx.fetchPage(req, { fetch: answer(fixture('okx-candles.docs.json')).fetch, baseUrl: BASE });
    await expect(page).rejects.toThrow(MalformedResponseError);
    await expect(page).rejects.toThrow(/openTime 1597026383085 .* is not aligned to 1m/);
  });

  it('parses the documentation rows newest-first into ascending candles, closed from `confirm`', async () => {
    // `now` says both minutes are over; only `confirm` decides on OKX.
    const page = await okx.fetchPage({ ...req, now: T_NEW + 3_600_000 }, { fetch: answer(fixture('okx-candles.docs-aligned.json')).fetch, baseUrl: BASE });
    expect(page.candles).toEqual([
      { openTime: T_OLD, open: '3.731', high: '3.799', low: '3.494', close: '3.72', volume: '24912403', quoteVolume: '37632347.24399722', closed: true },
      { openTime: T_NEW, open: '3.721', high: '3.743', low: '3.677', close: '3.708', volume: '8422410', quoteVolume: '12698348.04828491', closed: false },
    ]);
    expect(page.next).toEqual({ to: T_OLD - 1 });
  });

  it('uses `candles` for the newest 1,440 rows and `history-candles` beyond them', async () => {
    const now = Date.UTC(2024, 5, 1, 12, 0, 30);
    const recent = answer('{"code":"0","msg":"","data":[]}');
    await okx.fetchPage({ ...req, from: now - 3_600_000, to: now, now }, { fetch: recent.fetch, baseUrl: BASE });
    expect(recent.urls[0]?.pathname).toBe(OKX_CANDLES_PATH);
    const old = answer('{"code":"0","msg":"","data":[]}');
    await okx.fetchPage({ ...req, from: now - 3 * 86_400_000, to: now - 2 * 86_400_000, now }, { fetch: old.fetch, baseUrl: BASE });
    expect(old.urls[0]?.pathname).toBe(OKX_HISTORY_PATH);
    expect(Object.fromEntries(old.urls[0]?.searchParams ?? [])).toEqual({
      instId: 'BTC-USDT', bar: '1m', after: String(now - 2 * 86_400_000 + 1), before: String(now - 3 * 86_400_000 - 1), limit: '300',
    });
  });

  it('asks for UTC-aligned bars for 6h and longer', async () => {
    const bars: string[] = [];
    for (const interval of ['1h', '6h', '12h', '1d', '1w'] as const) {
      const canned = answer('{"code":"0","msg":"","data":[]}');
      await okx.fetchPage({ ...req, interval }, { fetch: canned.fetch, baseUrl: BASE });
      bars.push(canned.urls[0]?.searchParams.get('bar') ?? '');
    }
    expect(bars).toEqual(['1H', '6Hutc', '12Hutc', '1Dutc', '1Wutc']);
  });

  it('pages backward from the oldest row of a full page', async () => {
    const now = Date.UTC(2024, 5, 1);
    const rows = Array.from({ length: 300 }, (_, i) => `["${now - (i + 1) * 60_000}","1","1","1","1","1","1","1","1"]`);
    const page = await okx.fetchPage(
      { ...req, from: now - 86_400_000, to: now - 60_000, now },
      { fetch: answer(`{"code":"0","msg":"","data":[${rows.join(',')}]}`).fetch, baseUrl: BASE },
    );
    expect(page.candles[0]?.openTime).toBe(now - 300 * 60_000);
    expect(page.next).toEqual({ to: now - 300 * 60_000 - 1 });
  });

  it('maps error bodies, including those sent with HTTP 200', async () => {
    const call = (body: string, status = 200) => okx.fetchPage(req, { fetch: answer(body, { status }).fetch, baseUrl: BASE });
    await expect(call(fixture('okx-error-unknown-instrument.json'))).rejects.toThrow(UnknownSymbolError);
    await expect(call('{"code":"51000","msg":"Parameter bar error","data":[]}')).rejects.toThrow(UnsupportedIntervalError);
    await expect(call(fixture('okx-error-rate-limit.docs.json'), 429)).rejects.toMatchObject({ constructor: RateLimitedError, retryAfterMs: 2000 });
    await expect(call('{"code":"50011","msg":"Too Many Requests","data":[]}')).rejects.toThrow(RateLimitedError);
    await expect(call('{"code":"50001","msg":"Service temporarily unavailable","data":[]}')).rejects.toMatchObject({
      status: 200, code: '50001', exchangeMessage: 'Service temporarily unavailable',
    });
  });

  it('rejects second timestamps, HTML and truncated bodies', async () => {
    const seconds = fixture('okx-candles.docs-aligned.json').replace('"1597026420000"', '"1597026420"');
    await expect(okx.fetchPage(req, { fetch: answer(seconds).fetch, baseUrl: BASE })).rejects.toThrow(/seconds or microseconds/);
    await expect(okx.fetchPage(req, { fetch: answer(CLOUDFLARE_PAGE).fetch, baseUrl: BASE })).rejects.toThrow(/HTML page/);
    const cut = fixture('okx-candles.docs-aligned.json').slice(0, 100);
    await expect(okx.fetchPage(req, { fetch: answer(cut).fetch, baseUrl: BASE })).rejects.toThrow(/truncated JSON/);
  });
});
