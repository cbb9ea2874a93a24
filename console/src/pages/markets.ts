/**
 * Markets: every stored series with its coverage over time (stored, missing, confirmed empty by the
 * exchange, waiting in the dead-letter queue, expired by retention), how far behind it is, and a button that asks the
 * public API to backfill a hole.
 */
import { ApiError, get, INTERVAL_MS, post, type Gap, type Market } from '../api.ts';
import { count, duration, h, notice, seriesRef, utc } from '../dom.ts';

/** Gaps drawn per series: one page of the API's. A series with more says so. */
const GAPS_PER_BAR = 200;
const KIND_TEXT: Record<Gap['kind'], string> = {
  missing: 'missing: a backfill fills it',
  empty: 'confirmed empty by the exchange',
  'dead-lettered': 'waiting in the dead-letter queue: candlekeep redrive fills it',
  expired: 'expired by retention: deleted on purpose',
};

interface Segment {
  kind: 'stored' | Gap['kind'];
  start: number;
  end: number;
}

/** The bar's segments: stored between the gaps, each gap with its kind. */
export function segments(first: number, endExclusive: number, gaps: readonly Gap[]): Segment[] {
  const out: Segment[] = [];
  let t = first;
  for (const g of gaps) {
    if (g.start > t) out.push({ kind: 'stored', start: t, end: g.start });
    out.push({ kind: g.kind, start: g.start, end: g.end });
    t = g.end;
  }
  if (endExclusive > t) out.push({ kind: 'stored', start: t, end: endExclusive });
  return out;
}

function freshness(m: Market, now: number): HTMLElement {
  const step = INTERVAL_MS[m.interval];
  // The API's own lag when it reports one (from the coverage ledger); else from the newest stored candle.
  const behind = m.lagMs ?? (m.lastOpenTime === null ? null : now - (m.lastOpenTime + step));
  const cell = h('span', {});
  if (behind === null) cell.append(h('span', { class: 'muted' }, 'no candles'));
  else {
    // Behind by less than two candles is as fresh as a pull every interval can be.
    const fresh = m.lagMs !== undefined && m.lagMs !== null ? m.lagMs === 0 : behind < 2 * step + 60_000;
    cell.append(h('span', { class: fresh ? 'fresh' : 'stale', title: `last candle opened ${utc(m.lastOpenTime)} UTC` }, fresh ? 'up to date' : `${duration(behind)} behind`));
  }
  if (m.state && m.state !== 'following') cell.append(' ', h('span', { class: 'tag' }, m.state));
  if (m.lastError) cell.append(h('div', { class: 'error small', title: m.lastError }, `last pull failed: ${m.lastError}`));
  return cell;
}

export async function marketsPage(main: HTMLElement): Promise<() => void> {
  const { markets } = await get<{ markets: Market[] }>('/v1/markets');
  const now = Date.now();
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Markets'), h('span', { class: 'muted' }, `${markets.length} series`)),
    h(
      'div',
      { class: 'legend' },
      ...(['stored', 'missing', 'empty', 'dead-lettered', 'expired'] as const).map((k) => h('span', {}, h('i', { class: `swatch ${k}` }), k === 'empty' ? 'confirmed empty' : k)),
    ),
  );
  if (markets.length === 0) {
    main.append(notice('No series stored yet. Follow a market, or pull one with `candlekeep pull`.'));
    return () => {};
  }
  const panel = h('section', { class: 'hole-panel', hidden: true });
  const tbody = h('tbody');
  main.append(
    h(
      'table',
      { class: 'markets' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Series'), h('th', { class: 'coverage-col' }, 'Coverage'), h('th', { class: 'num' }, 'Candles'), h('th', {}, 'First'), h('th', {}, 'Last'), h('th', {}, 'Freshness'), h('th', { class: 'num' }, 'Gaps'), h('th', {}, ''))),
      tbody,
    ),
    panel,
  );

  const bars = new Map<Market, HTMLElement>();
  for (const m of markets) {
    const bar = h('div', { class: 'coverage', 'data-series': seriesRef(m) }, h('span', { class: 'muted small' }, '…'));
    bars.set(m, bar);
    const chartHref = `#/chart?series=${encodeURIComponent(seriesRef(m))}`;
    tbody.append(
      h(
        'tr',
        { 'data-series': seriesRef(m) },
        h('td', {}, h('b', {}, m.symbol), ' ', h('span', { class: 'muted' }, `${m.exchange} · ${m.interval}`)),
        h('td', { class: 'coverage-col' }, bar),
        h('td', { class: 'num' }, count(m.candles)),
        h('td', {}, utc(m.firstOpenTime)),
        h('td', {}, utc(m.lastOpenTime)),
        h('td', {}, freshness(m, now)),
        h('td', { class: 'num' }, m.gapCount ? h('span', { class: 'warn' }, `${count(m.gapCount)} (${count(m.missingCandles)} candles)`) : '0'),
        h('td', {}, h('a', { href: chartHref }, 'Chart')),
      ),
    );
  }

  let stopped = false;
  const showHole = (m: Market, g: Gap) => {
    panel.hidden = false;
    const cmd = `npx candlekeep backfill --exchange ${m.exchange} --symbol ${m.symbol} --interval ${m.interval} --from ${new Date(g.start).toISOString()} --to ${new Date(g.end).toISOString()}`;
    const status = h('p', { class: 'muted', role: 'status' });
    const button = h('button', { type: 'button', class: 'primary' }, 'Backfill this hole');
    button.addEventListener('click', () => {
      button.disabled = true;
      status.textContent = 'Asking the API…';
      post<{ eventId: string }>('/v1/backfills', { exchange: m.exchange, symbol: m.symbol, interval: m.interval, from: g.start, to: g.end })
        .then((r) => {
          status.replaceChildren('Requested (event ', h('code', {}, r.eventId), '). ', h('a', { href: '#/backfills' }, 'Follow it on Backfills'), '.');
        })
        .catch((err: unknown) => {
          button.disabled = false;
          const e = err as ApiError;
          const text =
            e.status === 501
              ? `This API cannot send backfills (${e.message}). Run instead:`
              : e.status === 403
                ? `Your API key's scope does not allow this: requesting a backfill needs a key with scope ${e.requiredScope ?? 'write'} (candlekeep keys create --scope ${e.requiredScope ?? 'write'}). Or run:`
                : `The API refused: ${e.message}`;
          status.replaceChildren(notice(text, 'error'), h('pre', {}, cmd));
        });
    });
    panel.replaceChildren(
      h('h2', {}, `${m.symbol} ${m.exchange} ${m.interval}: ${KIND_TEXT[g.kind]}`),
      h('p', {}, `${utc(g.start)} to ${utc(g.end)} UTC, ${count(g.missingCandles)} candles.`),
      g.kind === 'missing'
        ? button
        : g.kind === 'dead-lettered'
          ? h('p', {}, 'Run ', h('code', {}, 'npx candlekeep redrive'), ' to store what waits in the dead-letter queue.')
          : g.kind === 'expired'
            ? h('p', { class: 'muted' }, 'Older than this series keeps (its retention): deleted on purpose, not fetched again. ', h('code', {}, 'candlekeep markets set --retention'), ' keeps more.')
            : h('p', { class: 'muted' }, 'The exchange has no candles there: nothing to fetch.'),
      h('details', {}, h('summary', {}, 'Or from a shell'), h('pre', {}, cmd)),
      status,
    );
    panel.scrollIntoView({ block: 'nearest' });
  };

  const drawBar = async (m: Market) => {
    const bar = bars.get(m)!;
    if (m.firstOpenTime === null || m.lastOpenTime === null) {
      bar.replaceChildren();
      return;
    }
    const page = await get<{ gaps: Gap[]; nextCursor: string | null }>('/v1/gaps', { exchange: m.exchange, symbol: m.symbol, interval: m.interval, limit: GAPS_PER_BAR });
    // The range retention deleted comes before the first stored candle.
    const first = Math.min(m.firstOpenTime, page.gaps[0]?.start ?? m.firstOpenTime);
    const end = m.lastOpenTime + INTERVAL_MS[m.interval];
    const span = end - first;
    const segs = segments(first, end, page.gaps);
    bar.replaceChildren(
      ...segs.map((s) => {
        const el = h('span', {
          class: `seg ${s.kind}`,
          'data-kind': s.kind,
          'data-start': s.start,
          'data-end': s.end,
          style: `left:${((s.start - first) / span) * 100}%;width:max(${((s.end - s.start) / span) * 100}%, ${s.kind === 'stored' ? 0 : 2}px)`,
          title: `${s.kind === 'stored' ? 'stored' : KIND_TEXT[s.kind]}: ${utc(s.start)} – ${utc(s.end)} UTC`,
        });
        if (s.kind !== 'stored') {
          const gap = page.gaps.find((g) => g.start === s.start)!;
          el.addEventListener('click', () => showHole(m, gap));
        }
        return el;
      }),
    );
    if (page.nextCursor) bar.append(h('span', { class: 'more', title: `more than ${GAPS_PER_BAR} gaps: the first ${GAPS_PER_BAR} are drawn` }, '+'));
  };

  // Two at a time: each is one index scan of its series, and the page stays responsive.
  const queue = [...markets];
  const worker = async () => {
    for (let m = queue.shift(); m && !stopped; m = queue.shift()) {
      await drawBar(m).catch((err: Error) => bars.get(m!)!.replaceChildren(h('span', { class: 'error small' }, err.message)));
    }
  };
  await Promise.all([worker(), worker()]);
  return () => {
    stopped = true;
  };
}
