/**
 * The candlekeep console: four pages over the public API, routed by the location hash. The API key
 * is typed once and kept in sessionStorage (gone when the tab closes); it travels only in the
 * x-api-key header, never in a URL.
 */
import { apiKey, get, KEY_REFUSED } from './api.ts';
import { clear, h, notice } from './dom.ts';
import { backfillsPage } from './pages/backfills.ts';
import { backtestsPage } from './pages/backtests.ts';
import { chartPage } from './pages/chart.ts';
import { marketsPage } from './pages/markets.ts';

/** A page renders into `main` and returns what to do when the user leaves it (stop timers, remove charts). */
export type Page = (main: HTMLElement) => Promise<(() => void) | void>;

const PAGES: Record<string, Page> = { markets: marketsPage, chart: chartPage, backfills: backfillsPage, backtests: backtestsPage };

const main = document.getElementById('main')!;
const forget = document.getElementById('forget-key') as HTMLButtonElement;
let leave: (() => void) | void;
let generation = 0;

function keyForm(message?: string): void {
  forget.hidden = true;
  clear(main);
  const input = h('input', { type: 'password', id: 'api-key', name: 'api-key', autocomplete: 'off', required: true, minlength: 8, placeholder: 'x-api-key' });
  const form = h(
    'form',
    { class: 'key-form', onsubmit: ((e: Event) => {
      e.preventDefault();
      apiKey.set(input.value.trim());
      void route();
    }) as EventListener },
    h('h1', {}, 'API key'),
    h('p', { class: 'muted' }, 'The console calls the candlekeep API with your key. It stays in this browser tab (session storage) and is sent only in the x-api-key header.'),
    message ? notice(message, 'error') : null,
    h('label', { for: 'api-key' }, 'Key'),
    input,
    h('button', { type: 'submit' }, 'Continue'),
  );
  main.append(form);
  input.focus();
}

async function route(): Promise<void> {
  const mine = ++generation;
  if (leave) leave();
  leave = undefined;
  if (!apiKey.get()) return keyForm();
  forget.hidden = false;
  const name = /^#\/(\w+)/.exec(location.hash)?.[1] ?? 'markets';
  const page = PAGES[name] ?? marketsPage;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.page === name);
  clear(main);
  main.dataset.page = name;
  main.dataset.ready = 'false';
  try {
    const done = await page(main);
    if (mine !== generation) {
      if (done) done();
      return;
    }
    leave = done;
  } catch (err) {
    if (mine === generation) main.append(notice((err as Error).message, 'error'));
  }
  if (mine === generation) main.dataset.ready = 'true';
}

window.addEventListener(KEY_REFUSED, () => {
  apiKey.clear();
  keyForm('The API does not know that key (401: mistyped, or revoked). Type it again.');
});
forget.addEventListener('click', () => {
  apiKey.clear();
  keyForm();
});
window.addEventListener('hashchange', () => void route());
void route();

// A cheap check that the API answers at all (no key needed), so a dead API is said plainly.
void get('/v1/health').catch((err: Error) => main.prepend(notice(`The API does not answer: ${err.message}`, 'error')));
