/** The public API, as the console calls it: same origin, key from the browser session, problem+json errors. */

const KEY_ITEM = 'candlekeep.apiKey';

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY_ITEM),
  set: (key: string): void => sessionStorage.setItem(KEY_ITEM, key),
  clear: (): void => sessionStorage.removeItem(KEY_ITEM),
};

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly parameter: string | undefined;
  /** On a 403: the scope the refused action needs (read, write or admin); the key works, but not for this. */
  readonly requiredScope: string | undefined;
  constructor(status: number, detail: string, parameter?: string, requiredScope?: string) {
    super(detail);
    this.status = status;
    this.parameter = parameter;
    this.requiredScope = requiredScope;
  }
}

/** Fired when the API does not know the key (401: unknown or revoked), so the page can ask for it again. */
export const KEY_REFUSED = 'candlekeep:key-refused';

export type Query = Record<string, string | number | undefined | null>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.append(k, String(v));
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const key = apiKey.get();
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (key) headers['x-api-key'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, `the API answered ${res.status} with a body that is not JSON`);
  }
  if (!res.ok) {
    const p = (parsed ?? {}) as { detail?: string; parameter?: string; requiredScope?: string };
    // A 403 is a key whose scope is too weak for this one action: it stays, and the action says so.
    if (res.status === 401) window.dispatchEvent(new Event(KEY_REFUSED));
    throw new ApiError(res.status, p.detail ?? `HTTP ${res.status}`, p.parameter, p.requiredScope);
  }
  return parsed as T;
}

export const get = <T>(path: string, query?: Query) => call<T>('GET', withQuery(path, query));
export const post = <T>(path: string, body: unknown) => call<T>('POST', path, body);

// ---- the shapes the console reads (a subset of the OpenAPI document's) ----

export type Interval = '1m' | '3m' | '5m' | '15m' | '30m' | '1h' | '2h' | '4h' | '6h' | '12h' | '1d' | '1w';
export const INTERVALS: Interval[] = ['1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '12h', '1d', '1w'];
const MIN = 60_000;
export const INTERVAL_MS: Record<Interval, number> = {
  '1m': MIN, '3m': 3 * MIN, '5m': 5 * MIN, '15m': 15 * MIN, '30m': 30 * MIN, '1h': 60 * MIN, '2h': 120 * MIN,
  '4h': 240 * MIN, '6h': 360 * MIN, '12h': 720 * MIN, '1d': 1440 * MIN, '1w': 10080 * MIN,
};

export interface Market {
  exchange: string;
  symbol: string;
  interval: Interval;
  candles: number;
  firstOpenTime: number | null;
  lastOpenTime: number | null;
  gapCount: number;
  missingCandles: number;
  deadLetteredMessages: number;
  /** When the API reports them (markets managed in PostgreSQL): whether it is pulled, how far behind it is, its last pull error. */
  state?: 'following' | 'paused' | 'removed' | 'not-followed';
  lagMs?: number | null;
  lastError?: string | null;
}

export interface Gap {
  start: number;
  end: number;
  missingCandles: number;
  kind: 'missing' | 'empty' | 'dead-lettered' | 'expired';
  deadLetteredMessages: number;
}

export interface Candle {
  openTime: number;
  open: string | null;
  high: string | null;
  low: string | null;
  close: string | null;
  volume: string | null;
  closed: boolean;
  gap: boolean;
  sourceCandles?: number;
}

export interface CandlePage {
  resampledFrom: Interval | null;
  sourceCandlesPerBucket: number | null;
  candles: Candle[];
  nextCursor: string | null;
}

export interface Backfill {
  id: number;
  exchange: string;
  symbol: string;
  interval: Interval;
  from: string;
  to: string;
  status: string;
  message: string | null;
  requestedBy: string | null;
  requestedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  chunks: { total: number; done: number; failed: number; inProgress: number; pending: number };
  candlesWritten: number;
  fraction: number;
  etaSeconds: number | null;
  eta: string | null;
}

export interface Instrument {
  exchange: string;
  symbol: string;
  interval: Interval;
}

export interface Run {
  id: string;
  createdAt: string;
  strategy: string;
  strategyVersion: string;
  parameters: Record<string, unknown>;
  instruments: Instrument[];
  start: string;
  end: string;
  metrics: Record<string, number>;
  tags: string[];
  equityCurvePoints?: number;
}

export interface Comparison {
  runs: Pick<Run, 'id' | 'createdAt' | 'strategy' | 'strategyVersion' | 'instruments' | 'start' | 'end' | 'tags'>[];
  metrics: { name: string; values: (number | null)[] }[];
  parameters: { differing: { name: string; values: unknown[] }[]; identical: string[] };
  data: { id: string; fingerprint: string; changed: boolean; restatedCandles: number; addedCandles: number; changedOpenCandles: number }[];
}
