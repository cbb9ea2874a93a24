/** Backfills: running and finished jobs with progress, ETA and errors, refreshed while any is running. */
import { get, type Backfill } from '../api.ts';
import { count, duration, h, notice, utc } from '../dom.ts';

const REFRESH_MS = 5_000;

function row(b: Backfill): HTMLElement {
  const pct = Math.round(b.fraction * 100);
  const active = b.status === 'planned' || b.status === 'running';
  const eta = b.etaSeconds !== null ? `${duration(b.etaSeconds * 1000)} (${utc(b.eta)})` : active ? 'after the first chunk' : '—';
  return h(
    'tr',
    { 'data-backfill': b.id, 'data-status': b.status },
    h('td', { class: 'num' }, b.id),
    h('td', {}, h('b', {}, b.symbol), ' ', h('span', { class: 'muted' }, `${b.exchange} · ${b.interval}`)),
    h('td', {}, `${utc(b.from)} – ${utc(b.to)}`),
    h('td', {}, h('span', { class: `status ${b.status}` }, b.status)),
    h(
      'td',
      { class: 'progress-col' },
      h('div', { class: 'progress', title: `${b.chunks.done} of ${b.chunks.total} chunks done, ${b.chunks.inProgress} in progress, ${b.chunks.failed} failed` }, h('span', { style: `width:${pct}%` })),
      h('span', { class: 'small muted' }, `${b.chunks.done}/${b.chunks.total} chunks${b.chunks.failed ? `, ${b.chunks.failed} failed` : ''}`),
    ),
    h('td', { class: 'num' }, count(b.candlesWritten)),
    h('td', {}, eta),
    h('td', {}, utc(b.requestedAt), b.finishedAt ? h('div', { class: 'small muted' }, `finished ${utc(b.finishedAt)}`) : null),
    h('td', { class: 'message' }, b.message ? h('span', { class: b.status === 'failed' ? 'error' : 'warn' }, b.message) : ''),
  );
}

export async function backfillsPage(main: HTMLElement): Promise<() => void> {
  const onlyActive = h('input', { type: 'checkbox', id: 'only-active' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Older backfills');
  const status = h('span', { class: 'muted small', role: 'status' });
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Backfills'), status),
    h('div', { class: 'toolbar' }, h('label', {}, onlyActive, ' running and planned only')),
    h(
      'table',
      { class: 'backfills' },
      h('thead', {}, h('tr', {}, ...['#', 'Series', 'Range (UTC)', 'Status', 'Progress', 'Candles', 'ETA', 'Requested', 'Message'].map((t) => h('th', {}, t)))),
      tbody,
    ),
    more,
  );

  let cursor: string | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const query = () => ({ limit: 25, status: onlyActive.checked ? 'planned,running' : undefined });

  const load = async (append: boolean) => {
    const page = await get<{ backfills: Backfill[]; nextCursor: string | null }>('/v1/backfills', append && cursor ? { ...query(), cursor } : query());
    if (stopped) return;
    if (!append) tbody.replaceChildren();
    tbody.append(...page.backfills.map(row));
    if (!append && page.backfills.length === 0) tbody.append(h('tr', {}, h('td', { colspan: 9 }, notice(onlyActive.checked ? 'No backfill is running.' : 'No backfills yet.'))));
    cursor = page.nextCursor;
    more.hidden = cursor === null;
    status.textContent = `updated ${utc(Date.now())} UTC`;
    // Refresh the first page while something is still working; older pages are finished history.
    clearTimeout(timer);
    if (!append && page.backfills.some((b) => b.status === 'planned' || b.status === 'running')) {
      timer = setTimeout(() => void load(false).catch(() => undefined), REFRESH_MS);
    }
  };
  onlyActive.addEventListener('change', () => void load(false).catch((err: Error) => main.append(notice(err.message, 'error'))));
  more.addEventListener('click', () => void load(true).catch((err: Error) => main.append(notice(err.message, 'error'))));
  await load(false);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
