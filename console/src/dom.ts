/** Small DOM helpers: elements built with text content only (never innerHTML of API data). */

type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>;
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (k === 'class') el.className = String(v);
    else if (k === 'style') el.setAttribute('style', String(v));
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
}

export function clear(el: Element): void {
  el.replaceChildren();
}

/** A message in place of content: a load error, an empty list. */
export function notice(text: string, kind: 'error' | 'info' = 'info'): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

// ---- formats ----

const pad = (n: number) => String(n).padStart(2, '0');

/** UTC, minutes precision: `2024-03-01 12:00`. */
export function utc(t: number | string | null | undefined): string {
  if (t === null || t === undefined) return '—';
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

export const count = (n: number) => n.toLocaleString('en-US');

export function metric(name: string, v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  if (/count|trades/i.test(name)) return count(v);
  if (/return|drawdown|rate|exposure|cagr|volatility/i.test(name)) return `${(v * 100).toFixed(2)} %`;
  return Number.isInteger(v) ? count(v) : v.toFixed(3);
}

export function paramText(v: unknown): string {
  if (v === undefined || v === null) return '—';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Reads a page's query from the location hash: `#/chart?series=…`. */
export function hashQuery(): URLSearchParams {
  const hash = location.hash;
  const i = hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : hash.slice(i + 1));
}

export function seriesRef(s: { exchange: string; symbol: string; interval: string }): string {
  return `${s.exchange}:${s.symbol}:${s.interval}`;
}

export function parseSeriesRef(ref: string | null): { exchange: string; symbol: string; interval: string } | undefined {
  const m = ref ? /^([a-z]+):([A-Z0-9]+\/[A-Z0-9]+):(\w+)$/.exec(ref) : null;
  return m ? { exchange: m[1]!, symbol: m[2]!, interval: m[3]! } : undefined;
}
