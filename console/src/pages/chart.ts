/**
 * Chart: candles and volume of one series at any interval (the API resamples intervals that are not
 * stored). Missing candles are asked for as null rows (`gaps=null`) and drawn as empty slots, so a
 * hole looks like one; the forming candle is drawn hollow grey with a marker. It loads one screen
 * (SCREEN buckets) and, when the view is panned to its left edge, the screen before it, each window
 * read page by page through the API's cursor.
 */
import {
  CandlestickSeries,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  MismatchDirection,
  type CandlestickData,
  type HistogramData,
  type IChartApi,
  type LogicalRange,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
  type WhitespaceData,
} from 'lightweight-charts';
import { get, INTERVAL_MS, INTERVALS, type Candle, type CandlePage, type Interval, type Market } from '../api.ts';
import { count, h, hashQuery, notice, parseSeriesRef, seriesRef, utc } from '../dom.ts';

/** Buckets per request: about a screen of candles. */
const SCREEN = 400;
/** Empty slots drawn for one hole between two windows at most; a longer hole is still visibly a hole. */
const MAX_SEAM_SLOTS = 1000;
const UP = '#16a34a';
const DOWN = '#dc2626';
const FORMING = '#94a3b8';

type Bar = CandlestickData<Time> | WhitespaceData<Time>;
type Vol = HistogramData<Time> | WhitespaceData<Time>;

const sec = (ms: number) => (ms / 1000) as UTCTimestamp;

/** One bucket the page loaded, as the chart holds it: its place on the time scale and its bar (null: an empty slot). */
export interface Slot {
  time: number;
  index: number | null;
  bar: unknown;
}

export interface ChartState {
  candles: Candle[];
  resampledFrom: Interval | null;
  requests: number;
}

/** What the browser tests read: the data lightweight-charts was given, and what the page fetched. */
declare global {
  interface Window {
    candlekeepChart?: { chart: IChartApi; slots: () => Slot[]; volume: () => readonly unknown[]; state: ChartState; loadOlder: () => Promise<void> };
  }
}

function toBar(c: Candle): Bar {
  if (c.gap || c.open === null) return { time: sec(c.openTime) };
  const bar: CandlestickData<Time> = { time: sec(c.openTime), open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
  return c.closed ? bar : { ...bar, color: 'rgba(148,163,184,0.25)', borderColor: FORMING, wickColor: FORMING };
}

function toVol(c: Candle): Vol {
  if (c.gap || c.volume === null) return { time: sec(c.openTime) };
  const up = Number(c.close) >= Number(c.open);
  return { time: sec(c.openTime), value: Number(c.volume), color: !c.closed ? 'rgba(148,163,184,0.5)' : up ? 'rgba(22,163,74,0.45)' : 'rgba(220,38,38,0.45)' };
}

/** Empty candles for the buckets between two loaded windows, so a hole at the seam stays a hole. */
function seam(fromMs: number, toMs: number, step: number): Candle[] {
  const out: Candle[] = [];
  for (let t = fromMs; t < toMs && out.length < MAX_SEAM_SLOTS; t += step) {
    out.push({ openTime: t, open: null, high: null, low: null, close: null, volume: null, closed: false, gap: true });
  }
  return out;
}

export async function chartPage(main: HTMLElement): Promise<() => void> {
  const { markets } = await get<{ markets: Market[] }>('/v1/markets');
  const q = hashQuery();
  const chosen = parseSeriesRef(q.get('series')) ?? markets[0];
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Chart')));
  if (!chosen) {
    main.append(notice('No series stored yet.'));
    return () => {};
  }
  const market = markets.find((m) => seriesRef(m) === seriesRef(chosen));
  const interval = (INTERVALS as string[]).includes(q.get('interval') ?? '') ? (q.get('interval') as Interval) : (chosen.interval as Interval);
  const step = INTERVAL_MS[interval];

  const go = (series: string, iv: string) => {
    location.hash = `#/chart?series=${encodeURIComponent(series)}&interval=${iv}`;
  };
  const seriesSelect = h('select', { id: 'series', 'aria-label': 'Series' }, ...markets.map((m) => h('option', { value: seriesRef(m), selected: seriesRef(m) === seriesRef(chosen) }, `${m.symbol} · ${m.exchange} · ${m.interval}`)));
  const intervalSelect = h('select', { id: 'interval', 'aria-label': 'Interval' }, ...INTERVALS.map((i) => h('option', { value: i, selected: i === interval }, i)));
  seriesSelect.addEventListener('change', () => go(seriesSelect.value, parseSeriesRef(seriesSelect.value)!.interval));
  intervalSelect.addEventListener('change', () => go(seriesSelect.value, intervalSelect.value));
  const info = h('span', { class: 'muted', id: 'chart-info' });
  main.append(h('div', { class: 'toolbar' }, seriesSelect, intervalSelect, info));
  if (!market || market.lastOpenTime === null) {
    main.append(notice(`${seriesRef(chosen)} has no stored candles.`));
    return () => {};
  }

  const box = h('div', { class: 'chart', id: 'chart' });
  main.append(box, h('p', { class: 'muted small' }, 'Drag or scroll to pan; older candles load at the left edge. Empty slots are missing candles; the hollow grey candle is still forming. Times are UTC.'));
  const chart = createChart(box, {
    autoSize: true,
    layout: { background: { color: '#ffffff' }, textColor: '#334155', fontFamily: 'system-ui, sans-serif', attributionLogo: false },
    grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
    timeScale: { timeVisible: step < 86_400_000, secondsVisible: false, borderColor: '#e2e8f0' },
    rightPriceScale: { borderColor: '#e2e8f0' },
    localization: { timeFormatter: (t: number) => utc(t * 1000) },
  });
  const candles = chart.addSeries(CandlestickSeries, { upColor: UP, downColor: DOWN, borderUpColor: UP, borderDownColor: DOWN, wickUpColor: UP, wickDownColor: DOWN });
  const volume = chart.addSeries(HistogramSeries, { priceScaleId: 'volume', priceFormat: { type: 'volume' }, lastValueVisible: false, priceLineVisible: false });
  chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
  const markers = createSeriesMarkers(candles, []);

  const state: ChartState = { candles: [], resampledFrom: null, requests: 0 };
  const base = { exchange: chosen.exchange, symbol: chosen.symbol, interval, gaps: 'null' };

  /** Every candle of [start, end), page by page through the cursor. */
  const loadRange = async (start: number, end: number): Promise<Candle[]> => {
    const out: Candle[] = [];
    let cursor: string | null = null;
    do {
      const page: CandlePage = await get<CandlePage>('/v1/candles', cursor ? { ...base, start, end, limit: SCREEN, cursor } : { ...base, start, end, limit: SCREEN });
      state.requests++;
      state.resampledFrom = page.resampledFrom;
      out.push(...page.candles);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  };

  const render = () => {
    candles.setData(state.candles.map(toBar));
    volume.setData(state.candles.map(toVol));
    const forming = state.candles.filter((c) => !c.closed && !c.gap);
    const m: SeriesMarker<Time>[] = forming.map((c) => ({ time: sec(c.openTime), position: 'aboveBar', color: FORMING, shape: 'circle', text: 'forming' }));
    markers.setMarkers(m);
    const stored = state.candles.filter((c) => !c.gap).length;
    const gaps = state.candles.length - stored;
    info.textContent =
      `Loaded ${count(stored)} candles${gaps ? ` and ${count(gaps)} missing` : ''}` +
      (state.resampledFrom ? ` · resampled from ${state.resampledFrom}` : '') +
      (state.candles.length ? ` · ${utc(state.candles[0]!.openTime)} – ${utc(state.candles[state.candles.length - 1]!.openTime)} UTC` : '');
  };

  const first = market.firstOpenTime ?? market.lastOpenTime;
  const align = (t: number) => t - (((t % step) + step) % step);
  const newest = align(market.lastOpenTime);
  let loadedFrom = Math.max(align(first), newest - (SCREEN - 1) * step);
  state.candles = await loadRange(loadedFrom, newest + step);
  render();
  const n = state.candles.length;
  if (n > 150) chart.timeScale().setVisibleLogicalRange({ from: n - 150, to: n + 2 });
  else chart.timeScale().fitContent();

  let loading: Promise<void> | undefined;
  const loadOlder = (): Promise<void> => {
    if (loading) return loading;
    if (loadedFrom <= first) return Promise.resolve();
    loading = (async () => {
      const end = loadedFrom;
      const start = Math.max(align(first), end - SCREEN * step);
      const older = await loadRange(start, end);
      const oldestLoaded = state.candles[0]?.openTime ?? end;
      const lastOlder = older.length ? older[older.length - 1]!.openTime + step : start;
      const range = chart.timeScale().getVisibleLogicalRange();
      const added = [...older, ...seam(lastOlder, oldestLoaded, step)];
      state.candles = [...added, ...state.candles];
      loadedFrom = start;
      render();
      // Keep the view where it was: the new bars are added to the left of it.
      if (range) chart.timeScale().setVisibleLogicalRange({ from: range.from + added.length, to: range.to + added.length });
    })().finally(() => {
      loading = undefined;
    });
    return loading;
  };
  const onRange = (r: LogicalRange | null) => {
    if (r && r.from < 10) void loadOlder().catch((err: Error) => main.append(notice(err.message, 'error')));
  };
  chart.timeScale().subscribeVisibleLogicalRangeChange(onRange);
  const slots = (): Slot[] =>
    state.candles.map((c) => {
      const index = chart.timeScale().timeToIndex(sec(c.openTime), false);
      return { time: c.openTime, index, bar: index === null ? null : candles.dataByIndex(index, MismatchDirection.None) };
    });
  window.candlekeepChart = { chart, slots, volume: () => volume.data(), state, loadOlder };

  return () => {
    chart.timeScale().unsubscribeVisibleLogicalRangeChange(onRange);
    chart.remove();
    delete window.candlekeepChart;
  };
}
