/**
 * The web console in headless Chromium (Debian's package, driven by playwright-core) against a real
 * `candlekeep serve` process on this run's database: each page loads without a console error, the
 * chart holds the stored candles' values, a hole is an empty slot, compare overlays the equity
 * curves, and the backfill button puts a request on a LocalStack bus. Each page is photographed into
 * .dev/console-shots/, or, with CANDLEKEEP_CONSOLE_SHOTS=docs/console, into the README's screenshots
 * (a test run leaves the committed files alone unless asked).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CandleStore, type StoredCandle } from '../../functions/store/candles.ts';
import { createApiKey, revokeApiKey } from '../../functions/store/api-keys.ts';
import { insertBackfill } from '../../functions/store/backfills.ts';
import { SeriesRegistry } from '../../functions/store/series.ts';
import type { Db } from '../../functions/store/db.ts';
import { watchedBus, type WatchedBus } from '../support/bus.ts';
import { testPool, uniqueName } from '../support/db.ts';
import { pollUntil } from '../support/poll.ts';
import { walk } from '../integration/api/support.ts';

const KEY = 'browser-test-key-0123';

interface Bar {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  color?: string;
}

/** What the console's pages expose for these tests: the data lightweight-charts holds (read through its API). */
interface Hooks {
  candlekeepChart: {
    slots(): { time: number; index: number | null; bar: Bar | null }[];
    volume(): unknown[];
    chart: { timeScale(): { setVisibleLogicalRange(r: { from: number; to: number }): void } };
  };
  candlekeepCompare: { curves(): unknown[][] };
}
const H = 3_600_000;
const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1);
const SHOTS = process.env.CANDLEKEEP_CONSOLE_SHOTS || '.dev/console-shots';

// BTC/USDT 1h: 20 days; hours 300-309 missing (a backfill fills them), 400-403 confirmed empty by the
// exchange (the coverage ledger holds their range), the last one still forming.
const BTC_HOURS = 480;
const MISSING = [300, 310] as const;
const EMPTY = [400, 404] as const;
const inHole = (i: number) => (i >= MISSING[0] && i < MISSING[1]) || (i >= EMPTY[0] && i < EMPTY[1]);
/** The stored candles, holes left out. */
let btc: StoredCandle[];
const btcAt = (hour: number) => btc.find((c) => c.openTime === T0 + hour * H)!;
let eth: StoredCandle[];

let pool: Db;
let serve: ChildProcess;
let url: string;
let browser: Browser;
let page: Page;
const errors: string[] = [];
const runIds: string[] = [];
let bus: WatchedBus;

async function seed(): Promise<void> {
  const store = new CandleStore();
  btc = walk(T0, BTC_HOURS, H, 3, inHole);
  btc[btc.length - 1]!.closed = false;
  eth = walk(T0, 180, MIN, 4, (i) => i >= 100 && i < 105);
  const rows = (bars: StoredCandle[]) => bars.map((b) => [b.openTime, b.open, b.high, b.low, b.close, b.volume, b.quoteVolume, b.trades, b.closed ? 1 : 0] as const);
  const fetchedAt = Date.UTC(2025, 0, 1);
  await store.write(pool, [
    { v: 1, exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', fetchedAt, rows: rows(btc) as never },
    { v: 1, exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', fetchedAt, range: [T0 + EMPTY[0] * H, T0 + EMPTY[1] * H], rows: [] },
    { v: 1, exchange: 'okx', symbol: 'ETH/USDT', interval: '1m', fetchedAt, rows: rows(eth) as never },
  ]);

  const seriesId = (await new SeriesRegistry().resolve(pool, [{ exchange: 'binance', symbol: 'BTC/USDT', interval: '1h' }])).values().next().value!;
  const chunks = (n: number) => Array.from({ length: n }, (_, i) => ({ start: T0 + i * 24 * H, end: T0 + (i + 1) * 24 * H }));
  for (const [status, message, done] of [['done', null, 8], ['failed', 'binance: bad request (HTTP 400): invalid symbol', 2], ['running', null, 3]] as const) {
    const id = await insertBackfill(pool, { seriesId, range: { start: T0, end: T0 + 8 * 24 * H }, status, message: message ?? undefined, requestedBy: 'cli:quant', requestId: uniqueName('bf'), listedAt: undefined, unsupportedEnd: undefined, chunks: chunks(8) });
    await pool.query(`UPDATE backfill_chunks SET status = 'done', candles = 24 WHERE backfill_id = $1 AND chunk_no <= $2`, [id, done]);
    await pool.query(`UPDATE backfills SET started_at = now() - interval '90 seconds' WHERE id = $1`, [id]);
  }
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(url + path, { method, headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Three runs: two on the first five days (whose data a restatement then changes), one later. */
async function recordRuns(): Promise<void> {
  const curve = (seed: number, from: number) => Array.from({ length: 60 }, (_, i) => ({ t: from + i * 2 * H, equity: Math.round((1000 + i * seed + Math.sin(i / 4) * 20 * seed) * 100) / 100 }));
  const runs = [
    { parameters: { fast: 10, slow: 30, stop: 0.02 }, from: T0, sharpe: 1.4, seed: 2 },
    { parameters: { fast: 20, slow: 30, stop: 0.02 }, from: T0, sharpe: 0.9, seed: 1 },
    { parameters: { fast: 10, slow: 50, stop: 0.02 }, from: T0 + 10 * 24 * H, sharpe: 1.1, seed: 3 },
  ];
  for (const r of runs) {
    const run = await api<{ id: string }>('POST', '/v1/backtests', {
      strategy: 'sma_cross',
      strategyVersion: '1.2.0',
      parameters: r.parameters,
      instruments: [{ exchange: 'binance', symbol: 'BTC/USDT', interval: '1h' }],
      start: r.from,
      end: r.from + 5 * 24 * H,
      metrics: { totalReturn: r.seed / 10, sharpe: r.sharpe, maxDrawdown: 0.05 * r.seed, winRate: 0.5, tradeCount: 10 * r.seed },
      equityCurve: curve(r.seed, r.from),
      tags: ['research'],
    });
    runIds.push(run.id);
  }
  // The exchange restates a closed candle inside the first two runs' range.
  const c = btc[20]!;
  await new CandleStore().write(pool, [
    { v: 1, exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', fetchedAt: Date.UTC(2025, 1, 1), rows: [[c.openTime, c.open, c.high, c.low, c.low, c.volume, c.quoteVolume, c.trades, 1]] as never },
  ]);
  btc[20] = { ...c, close: c.low };
}

function startServe(): Promise<string> {
  serve = spawn(process.execPath, ['bin/candlekeep.js', 'serve', '--port', '0'], {
    env: { ...process.env, CANDLEKEEP_API_KEY: KEY, CANDLEKEEP_BACKFILL_BUS: bus.name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /console on (http:\/\/[^\s]+)\/console\//.exec(out);
      if (m) resolve(m[1]!);
    };
    serve.stdout!.on('data', onData);
    serve.stderr!.on('data', onData);
    serve.once('exit', (code) => reject(new Error(`candlekeep serve exited with ${code}: ${out}`)));
  });
}

beforeAll(async () => {
  pool = testPool(2);
  [bus] = await Promise.all([watchedBus('console-backfills'), seed()]);
  url = await startServe();
  await recordRuns();
  browser = await chromium.launch({ executablePath: inject('chromium'), args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGTERM');
    await exited;
  }
  await pool?.end();
  await bus?.delete();
});

/** Opens a console page and waits until it says it has rendered what it fetched. */
async function open(hash: string): Promise<void> {
  await page.goto(`${url}/console/${hash}`);
  await page.waitForSelector(`main[data-ready="true"]`, { timeout: 20_000 });
}

/** No console error or warning, failed request or uncaught exception since the last check. */
const noErrors = () => expect(errors.splice(0), 'console errors').toEqual([]);

describe('the console', () => {
  it('asks for the API key once and keeps it in the tab, never in the URL', async () => {
    await page.goto(`${url}/`);
    await page.waitForSelector('#api-key');
    await page.fill('#api-key', KEY);
    await page.click('.key-form button[type=submit]');
    await page.waitForSelector('main[data-page="markets"][data-ready="true"]');
    expect(page.url()).not.toContain(KEY);
    expect(await page.evaluate(() => sessionStorage.getItem('candlekeep.apiKey'))).toBe(KEY);
    const html = await (await fetch(`${url}/console/`)).text();
    expect(html).not.toContain(KEY);
    noErrors();
  });

  it('Markets: each series with its coverage bar, holes by kind, freshness, and a backfill button that reaches the bus', async () => {
    await open('#/markets');
    const bar = (series: string) => `.coverage[data-series="${series}"]`;
    const segs = await page.$$eval(`${bar('binance:BTC/USDT:1h')} .seg`, (els) => els.map((e) => [e.getAttribute('data-kind'), Number(e.getAttribute('data-start')), Number(e.getAttribute('data-end'))]));
    expect(segs).toEqual([
      ['stored', T0, T0 + MISSING[0] * H],
      ['missing', T0 + MISSING[0] * H, T0 + MISSING[1] * H],
      ['stored', T0 + MISSING[1] * H, T0 + EMPTY[0] * H],
      ['empty', T0 + EMPTY[0] * H, T0 + EMPTY[1] * H],
      ['stored', T0 + EMPTY[1] * H, T0 + BTC_HOURS * H],
    ]);
    expect(await page.$$eval(`${bar('okx:ETH/USDT:1m')} .seg.missing`, (els) => els.length)).toBe(1);
    expect(await page.textContent('tr[data-series="binance:BTC/USDT:1h"]')).toMatch(/behind/);

    await page.click(`${bar('binance:BTC/USDT:1h')} .seg.missing`);
    await page.waitForSelector('.hole-panel:not([hidden])');
    expect(await page.textContent('.hole-panel h2')).toContain('missing');
    await page.screenshot({ path: `${SHOTS}/markets.png` });
    await page.click('.hole-panel button.primary');
    await page.waitForSelector('.hole-panel code');
    const eventId = await page.textContent('.hole-panel [role=status] code');
    expect(await bus.nextEvent()).toMatchObject({
      id: eventId,
      detail: { exchange: 'binance', symbol: 'BTC/USDT', interval: '1h', from: new Date(T0 + MISSING[0] * H).toISOString(), to: new Date(T0 + MISSING[1] * H).toISOString() },
    });
    noErrors();
  });

  const slots = () => page.evaluate(() => (globalThis as unknown as Hooks).candlekeepChart.slots());

  it('Chart: draws the stored candles with their values, holes as empty slots, the forming candle marked', async () => {
    await open(`#/chart?series=${encodeURIComponent('binance:BTC/USDT:1h')}`);
    const loaded = await slots();
    // One screen: the newest 400 hours, each bucket one place on the time scale, in order.
    const first = BTC_HOURS - 400;
    expect(loaded.map((s) => s.time)).toEqual(Array.from({ length: 400 }, (_, i) => T0 + (first + i) * H));
    expect(loaded.map((s) => s.index)).toEqual(Array.from({ length: 400 }, (_, i) => i));
    for (const [i, s] of loaded.entries()) {
      const c = btcAt(first + i);
      if (inHole(first + i)) expect(s.bar, `hour ${first + i} is a hole`).toBeNull();
      else expect([s.bar!.time * 1000, s.bar!.open, s.bar!.high, s.bar!.low, s.bar!.close]).toEqual([c.openTime, Number(c.open), Number(c.high), Number(c.low), Number(c.close)]);
    }
    expect(loaded.filter((s) => s.bar?.color).map((s) => [s.time, s.bar!.color])).toEqual([[T0 + (BTC_HOURS - 1) * H, 'rgba(148,163,184,0.25)']]);
    const volume = (await page.evaluate(() => (globalThis as unknown as Hooks).candlekeepChart.volume())) as { time: number; value?: number }[];
    expect(volume[10]).toMatchObject({ time: btcAt(first + 10).openTime / 1000, value: Number(btcAt(first + 10).volume) });
    expect(await page.textContent('#chart-info')).toContain('14 missing');
    await page.screenshot({ path: `${SHOTS}/chart.png` });
    noErrors();
  });

  it('Chart: panning to the left edge loads the older candles through the API', async () => {
    await page.evaluate(() => (globalThis as unknown as Hooks).candlekeepChart.chart.timeScale().setVisibleLogicalRange({ from: -5, to: 120 }));
    await pollUntil(async () => (await slots()).length === BTC_HOURS, { timeoutMs: 10_000, description: 'the older candles' });
    const loaded = await slots();
    expect(loaded.map((s) => s.index)).toEqual(Array.from({ length: BTC_HOURS }, (_, i) => i));
    expect(loaded[0]!.time).toBe(T0);
    expect(loaded.slice(0, 80).map((s) => s.bar!.close)).toEqual(btc.slice(0, 80).map((c) => Number(c.close)));
    noErrors();
  });

  it('Chart: an interval that is not stored is resampled by the API', async () => {
    await open(`#/chart?series=${encodeURIComponent('binance:BTC/USDT:1h')}&interval=4h`);
    expect(await page.textContent('#chart-info')).toContain('resampled from 1h');
    const loaded = await slots();
    expect(loaded).toHaveLength(BTC_HOURS / 4);
    const bucket = btc.slice(8, 12);
    expect(loaded[2]!.bar).toEqual({
      time: (T0 + 8 * H) / 1000,
      open: Number(bucket[0]!.open),
      high: Math.max(...bucket.map((c) => Number(c.high))),
      low: Math.min(...bucket.map((c) => Number(c.low))),
      close: Number(bucket[3]!.close),
    });
    noErrors();
  });

  it('Backfills: running and finished jobs with progress, ETA and errors', async () => {
    await open('#/backfills');
    const rows = await page.$$eval('tr[data-backfill]', (els) => els.map((e) => [e.getAttribute('data-status'), e.querySelector('.progress span')!.getAttribute('style')]));
    expect(rows).toEqual([
      ['running', 'width:38%'],
      ['failed', 'width:25%'],
      ['done', 'width:100%'],
    ]);
    const running = await page.textContent('tr[data-status="running"]');
    expect(running).toMatch(/3\/8 chunks/);
    expect(running).toMatch(/ETA|min|s \(/);
    expect(await page.textContent('tr[data-status="failed"] td.message')).toContain('invalid symbol');
    await page.screenshot({ path: `${SHOTS}/backfills.png` });
    noErrors();
  });

  it('Backtests: lists runs with the API filters and compares them: metrics, differing parameters, equity curves overlaid, stale data', async () => {
    await open('#/backtests?sort=-metric.sharpe');
    expect(await page.$$eval('tr[data-run]', (els) => els.map((e) => e.getAttribute('data-run')))).toEqual([runIds[0], runIds[2], runIds[1]]);
    await open(`#/backtests?filters=${encodeURIComponent('param.fast=10')}`);
    expect((await page.$$eval('tr[data-run]', (els) => els.map((e) => e.getAttribute('data-run')))).sort()).toEqual([runIds[0], runIds[2]].sort());

    await open('#/backtests');
    for (const id of runIds) await page.check(`input[data-run="${id}"]`);
    await page.click('#compare');
    await page.waitForSelector('#comparison');
    await page.waitForSelector('main[data-ready="true"]');
    const curves = (await page.evaluate(() => (globalThis as unknown as Hooks).candlekeepCompare.curves())) as { time: number; value: number }[][];
    expect(curves).toHaveLength(3);
    for (const c of curves) expect(c).toHaveLength(60);
    expect(curves[1]![0]).toEqual({ time: T0 / 1000, value: 1000 });
    expect(curves[2]![0]!.time * 1000).toBe(T0 + 10 * 24 * H);
    expect(await page.$$eval('tr.differs', (els) => els.map((e) => e.getAttribute('data-param')))).toEqual(['fast', 'slow']);
    expect(await page.$$eval('tr[data-param="stop"]:not(.differs)', (els) => els.length)).toBe(1);
    expect(await page.$$eval('.stale', (els) => els.map((e) => e.getAttribute('data-run')).sort())).toEqual([runIds[0], runIds[1]].sort());
    expect(await page.textContent('tr[data-metric="sharpe"]')).toContain('1.400');
    await page.screenshot({ path: `${SHOTS}/backtests.png`, fullPage: true });
    noErrors();
  });

  it('with a read-only key: browses, and the backfill button says which scope it needs instead of failing silently', async () => {
    const read = await createApiKey(pool, { name: uniqueName('dashboard'), scope: 'read', now: Date.now() });
    await page.evaluate((k) => sessionStorage.setItem('candlekeep.apiKey', k), read.key);
    await open('#/markets');
    expect(await page.$$eval('.coverage[data-series="binance:BTC/USDT:1h"] .seg', (els) => els.length)).toBe(5);
    await page.click('.coverage[data-series="binance:BTC/USDT:1h"] .seg.missing');
    await page.waitForSelector('.hole-panel:not([hidden])');
    await page.click('.hole-panel button.primary');
    await page.waitForSelector('.hole-panel [role=status] .error');
    const said = await page.textContent('.hole-panel [role=status]');
    expect(said).toContain('needs a key with scope write');
    expect(said).toContain('candlekeep keys create --scope write');
    // The key is kept: it still reads.
    expect(await page.evaluate(() => sessionStorage.getItem('candlekeep.apiKey'))).toBe(read.key);
    expect(await page.isEnabled('.hole-panel button.primary')).toBe(true);
    // Chromium reports the refused request itself; nothing else went wrong.
    expect(errors.splice(0).filter((e) => !/status of 403/.test(e))).toEqual([]);

    // Revoked, the key is asked for again.
    await revokeApiKey(pool, String(read.id), Date.now());
    await page.goto(`${url}/console/#/backtests`);
    await page.waitForSelector('.key-form');
    expect(await page.textContent('main')).toContain('401');
    expect(await page.evaluate(() => sessionStorage.getItem('candlekeep.apiKey'))).toBeNull();
    expect(errors.splice(0).filter((e) => !/status of 401/.test(e))).toEqual([]);
  });
});
