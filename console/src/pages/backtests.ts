/**
 * Backtests: the run list with the API's filters, and the comparison of 2 to 10 runs: metrics side by
 * side, the parameters that differ highlighted, equity curves overlaid, and a warning for each run
 * whose candle data changed since it was recorded.
 */
import { createChart, LineSeries, type ISeriesApi, type LineData, type Time, type UTCTimestamp } from 'lightweight-charts';
import { ApiError, get, type Comparison, type Run } from '../api.ts';
import { count, h, hashQuery, metric, notice, paramText, utc } from '../dom.ts';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d', '#9333ea'];
const MAX_COMPARE = 10;
/** Equity points read per run: enough for any chart width; a longer curve is drawn up to there, and says so. */
const MAX_CURVE_POINTS = 20_000;
const CURVE_PAGE = 5_000;
const PAGE = 50;
/** Metrics shown as columns of the run list, when runs have them. */
const LIST_METRICS = ['totalReturn', 'sharpe', 'maxDrawdown', 'winRate', 'tradeCount'];

declare global {
  interface Window {
    candlekeepCompare?: { runs: string[]; curves: () => (readonly unknown[])[] };
  }
}

// Run ids are UUIDv7: the leading digits are the creation time, alike for runs made together; the tail is random.
const short = (id: string) => `…${id.slice(-8)}`;
const instruments = (r: Pick<Run, 'instruments'>) => r.instruments.map((i) => `${i.exchange}:${i.symbol}:${i.interval}`).join(', ');

/** `metric.sharpe.gte=1 param.fast=10` (spaces or new lines between filters) as query pairs. */
function parseFilters(text: string): [string, string][] {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((f) => {
      const i = f.indexOf('=');
      if (i <= 0) throw new ApiError(400, `filter ${JSON.stringify(f)} needs the form name=value, e.g. metric.sharpe.gte=1`);
      return [f.slice(0, i), f.slice(i + 1)];
    });
}

function setHash(params: URLSearchParams): void {
  const q = params.toString();
  location.hash = `#/backtests${q ? `?${q}` : ''}`;
}

export async function backtestsPage(main: HTMLElement): Promise<() => void> {
  const q = hashQuery();
  const compareIds = (q.get('compare') ?? '').split(',').filter(Boolean);
  const cleanups: (() => void)[] = [];
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Backtests')));
  if (compareIds.length) {
    cleanups.push(await compareSection(main, compareIds, q));
  }
  await listSection(main, q, compareIds);
  return () => cleanups.forEach((c) => c());
}

async function listSection(main: HTMLElement, q: URLSearchParams, compared: string[]): Promise<void> {
  const strategy = h('input', { id: 'f-strategy', placeholder: 'sma_cross,rsi', value: q.get('strategy') ?? '' });
  const tag = h('input', { id: 'f-tag', placeholder: 'research', value: q.get('tag') ?? '' });
  const filters = h('input', { id: 'f-filters', class: 'wide', placeholder: 'metric.sharpe.gte=1 param.fast=10 or.1.tag=prod', value: q.get('filters') ?? '' });
  const sort = h('input', { id: 'f-sort', placeholder: '-created or -metric.sharpe', value: q.get('sort') ?? '' });
  const form = h(
    'form',
    { class: 'filters' },
    h('label', {}, 'Strategy', strategy),
    h('label', {}, 'Tags (all of)', tag),
    h('label', { class: 'grow' }, 'Filters', filters),
    h('label', {}, 'Sort', sort),
    h('button', { type: 'submit' }, 'Apply'),
  );
  const selected = new Set<string>(compared);
  const compareButton = h('button', { type: 'button', class: 'primary', id: 'compare', disabled: true }, 'Compare');
  const hint = h('span', { class: 'muted small' });
  const updateSelection = () => {
    compareButton.disabled = selected.size < 2 || selected.size > MAX_COMPARE;
    compareButton.textContent = `Compare ${selected.size || ''}`.trim();
    hint.textContent = selected.size > MAX_COMPARE ? `at most ${MAX_COMPARE} runs` : selected.size < 2 ? 'select 2 to 10 runs' : '';
  };
  compareButton.addEventListener('click', () => {
    const params = new URLSearchParams(hashQuery());
    params.set('compare', [...selected].join(','));
    setHash(params);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const [k, input] of [['strategy', strategy], ['tag', tag], ['filters', filters], ['sort', sort]] as const) if (input.value.trim()) params.set(k, input.value.trim());
    if (selected.size) params.set('compare', [...selected].join(','));
    setHash(params);
  });

  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'More runs');
  const head = h('tr', {}, h('th', {}, ''), h('th', {}, 'Created (UTC)'), h('th', {}, 'Strategy'), h('th', {}, 'Instruments'), h('th', {}, 'Range'), h('th', {}, 'Tags'), ...LIST_METRICS.map((m) => h('th', { class: 'num' }, m)));
  main.append(h('section', {}, h('h2', {}, 'Runs'), form, h('div', { class: 'toolbar' }, compareButton, hint), h('table', { class: 'runs' }, h('thead', {}, head), tbody), more));
  updateSelection();

  let query: Record<string, string>;
  try {
    query = Object.fromEntries([
      ...(['strategy', 'tag', 'sort'] as const).flatMap((k) => (q.get(k) ? [[k, q.get(k)!]] : [])),
      ...parseFilters(q.get('filters') ?? ''),
    ]);
  } catch (err) {
    main.append(notice((err as Error).message, 'error'));
    return;
  }
  let cursor: string | null = null;
  const load = async () => {
    const page = await get<{ runs: Run[]; nextCursor: string | null }>('/v1/backtests', { ...query, limit: PAGE, ...(cursor ? { cursor } : {}) });
    for (const r of page.runs) {
      const box = h('input', { type: 'checkbox', 'aria-label': `select run ${short(r.id)}`, 'data-run': r.id, checked: selected.has(r.id) });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(r.id);
        else selected.delete(r.id);
        updateSelection();
      });
      tbody.append(
        h(
          'tr',
          { 'data-run': r.id },
          h('td', {}, box),
          h('td', {}, utc(r.createdAt)),
          h('td', {}, h('b', {}, r.strategy), ' ', h('span', { class: 'muted' }, r.strategyVersion), h('div', { class: 'small muted mono' }, short(r.id))),
          h('td', { class: 'small' }, instruments(r)),
          h('td', { class: 'small' }, `${utc(r.start)} – ${utc(r.end)}`),
          h('td', {}, ...r.tags.map((t) => h('span', { class: 'tag' }, t))),
          ...LIST_METRICS.map((m) => h('td', { class: 'num' }, metric(m, Object.hasOwn(r.metrics, m) ? r.metrics[m] : null))),
        ),
      );
    }
    if (!cursor && page.runs.length === 0) tbody.append(h('tr', {}, h('td', { colspan: 6 + LIST_METRICS.length }, notice('No runs match.'))));
    cursor = page.nextCursor;
    more.hidden = cursor === null;
  };
  more.addEventListener('click', () => void load().catch((err: Error) => main.append(notice(err.message, 'error'))));
  try {
    await load();
  } catch (err) {
    main.append(notice((err as Error).message, 'error'));
  }
}

async function compareSection(main: HTMLElement, ids: string[], q: URLSearchParams): Promise<() => void> {
  const section = h('section', { class: 'compare', id: 'comparison' });
  main.append(section);
  const close = h('a', { href: '#', class: 'small' }, 'close');
  close.addEventListener('click', (e) => {
    e.preventDefault();
    const params = new URLSearchParams(q);
    params.delete('compare');
    setHash(params);
  });
  section.append(h('h2', {}, `Comparing ${ids.length} runs `, close));
  if (ids.length < 2 || ids.length > MAX_COMPARE) {
    section.append(notice(`Compare needs 2 to ${MAX_COMPARE} runs; ${ids.length} selected.`, 'error'));
    return () => {};
  }
  const [cmp, ...runs] = await Promise.all([get<Comparison>('/v1/backtests/compare', { ids: ids.join(',') }), ...ids.map((id) => get<Run>(`/v1/backtests/${id}`))]);
  const curves = await Promise.all(runs.map((r) => equityCurve(r)));
  const colour = new Map(cmp.runs.map((r, i) => [r.id, COLORS[i % COLORS.length]!]));
  const runHead = (r: Comparison['runs'][number]) =>
    h('th', { class: 'run-col' }, h('i', { class: 'dot', style: `background:${colour.get(r.id)}` }), `${r.strategy} ${r.strategyVersion}`, h('div', { class: 'small muted mono' }, short(r.id)));

  // Stale data first: a run whose candles changed since it was recorded cannot be trusted as is.
  for (const d of cmp.data.filter((x) => x.changed)) {
    const r = cmp.runs.find((x) => x.id === d.id)!;
    section.append(
      h(
        'p',
        { class: 'notice warn stale', 'data-run': d.id, role: 'alert' },
        h('b', {}, `Data changed for ${r.strategy} ${short(r.id)}: `),
        `the candles it used differ from when it was recorded (${count(d.restatedCandles)} restated, ${count(d.addedCandles)} added into gaps, ${count(d.changedOpenCandles)} forming candles changed). Re-run it before trusting the comparison.`,
      ),
    );
  }

  // Equity curves on one chart, one line per run.
  const box = h('div', { class: 'chart equity', id: 'equity' });
  section.append(h('h3', {}, 'Equity'), box);
  const chart = createChart(box, {
    autoSize: true,
    layout: { background: { color: '#ffffff' }, textColor: '#334155', fontFamily: 'system-ui, sans-serif', attributionLogo: false },
    grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
    timeScale: { timeVisible: true, borderColor: '#e2e8f0' },
    rightPriceScale: { borderColor: '#e2e8f0' },
    localization: { timeFormatter: (t: number) => utc(t * 1000) },
  });
  const lines: ISeriesApi<'Line'>[] = [];
  const withoutCurve: string[] = [];
  const cut: string[] = [];
  for (const [i, r] of runs.entries()) {
    const points = curves[i]!;
    if (points.length === 0) withoutCurve.push(short(r.id));
    if (points.length < (r.equityCurvePoints ?? 0)) cut.push(`${short(r.id)} (${count(points.length)} of ${count(r.equityCurvePoints!)} points)`);
    const data: LineData<Time>[] = [];
    for (const p of points) {
      const time = Math.floor(p.t / 1000) as UTCTimestamp;
      // The chart needs strictly increasing times: of points in the same second, the last one counts.
      if (data.length && (data[data.length - 1]!.time as number) >= time) data[data.length - 1] = { time, value: p.equity };
      else data.push({ time, value: p.equity });
    }
    const line = chart.addSeries(LineSeries, { color: colour.get(r.id), lineWidth: 2, title: short(r.id), priceLineVisible: false });
    line.setData(data);
    lines.push(line);
  }
  chart.timeScale().fitContent();
  if (withoutCurve.length) section.append(h('p', { class: 'muted small' }, `No equity curve recorded for ${withoutCurve.join(', ')}.`));
  if (cut.length) section.append(h('p', { class: 'muted small' }, `Drawn from the start up to ${count(MAX_CURVE_POINTS)} points: ${cut.join(', ')}.`));

  // Metrics side by side.
  section.append(
    h('h3', {}, 'Metrics'),
    h(
      'table',
      { class: 'cmp metrics' },
      h('thead', {}, h('tr', {}, h('th', {}, 'metric'), ...cmp.runs.map(runHead))),
      h('tbody', {}, ...cmp.metrics.map((m) => h('tr', { 'data-metric': m.name }, h('th', {}, m.name), ...m.values.map((v) => h('td', { class: 'num' }, metric(m.name, v)))))),
    ),
  );

  // Parameters: the differing ones highlighted, then the shared ones.
  const params = h('tbody');
  for (const p of cmp.parameters.differing) {
    params.append(h('tr', { class: 'differs', 'data-param': p.name }, h('th', {}, p.name), ...p.values.map((v) => h('td', { class: 'num' }, paramText(v)))));
  }
  const first = runs[0]!;
  for (const name of cmp.parameters.identical) {
    params.append(h('tr', { 'data-param': name }, h('th', {}, name), h('td', { class: 'num muted', colspan: cmp.runs.length }, `${paramText(lookup(first.parameters, name))} (all runs)`)));
  }
  section.append(
    h('h3', {}, 'Parameters ', h('span', { class: 'small muted' }, `${cmp.parameters.differing.length} differ`)),
    h('table', { class: 'cmp params' }, h('thead', {}, h('tr', {}, h('th', {}, 'parameter'), ...cmp.runs.map(runHead))), params),
    h('p', { class: 'small muted' }, ...cmp.runs.map((r) => h('span', { class: 'run-meta' }, h('i', { class: 'dot', style: `background:${colour.get(r.id)}` }), `${instruments(r)} · ${utc(r.start)} – ${utc(r.end)}`))),
  );

  window.candlekeepCompare = { runs: cmp.runs.map((r) => r.id), curves: () => lines.map((l) => l.data()) };
  return () => {
    chart.remove();
    delete window.candlekeepCompare;
  };
}

/** A run's equity curve, page by page through the API's cursor, up to MAX_CURVE_POINTS. */
async function equityCurve(run: Run): Promise<{ t: number; equity: number }[]> {
  const points: { t: number; equity: number }[] = [];
  if (!run.equityCurvePoints) return points;
  let cursor: string | null = null;
  do {
    const page: { equityCurve: { t: number; equity: number }[]; nextCursor: string | null } = await get(`/v1/backtests/${run.id}/equity-curve`, { limit: CURVE_PAGE, cursor });
    points.push(...page.equityCurve);
    cursor = page.nextCursor;
  } while (cursor && points.length < MAX_CURVE_POINTS);
  return points.slice(0, MAX_CURVE_POINTS);
}

/** A parameter by its dotted name, as compare names nested ones. */
function lookup(params: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(params, name)) return params[name];
  let v: unknown = params;
  for (const part of name.split('.')) {
    if (!v || typeof v !== 'object' || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}
