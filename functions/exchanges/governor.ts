import { EXCHANGES, type Exchange } from '../candles/candle.ts';
import { BannedError, ExchangeNetworkError, RateLimitedError } from './errors.ts';
import { adapters } from './index.ts';
import { describeErrorBody, parseRetryAfter, readBody, statedError } from './normalise.ts';
import type { ExchangeLimits, PublishedLimit, RateRule } from './types.ts';

/**
 * Budget state shared by every caller of an exchange: `MemoryBudgetStore` within one process,
 * `PostgresBudgetStore` (store/budgets.ts) across concurrent Lambdas and CLI processes. Keys are
 * budget buckets (`binance`, `okx:history`…), bans are per exchange. Every method is async so a
 * remote store fits the same interface.
 */
export interface BudgetStore {
  /**
   * Grants `weight` now and records it as in flight (returns 0), or returns how many ms until it
   * could be granted (nothing recorded; ask again then). Nothing is reserved ahead: a sleeping caller
   * that wakes late would otherwise send a request the log believes went out earlier, and bunch with
   * the next ones.
   */
  take(key: string, weight: number, now: number, rule: RateRule): Promise<number>;
  /**
   * Ends the flight of a grant (`weight` granted at `grantedAt`) at `at`, when its answer arrived
   * (or its request failed). Until then the grant holds its weight however late its request leaves;
   * from then it counts for a window after `at`. The exchange counted the request somewhere between
   * the two, so only the later time is sure not to release the budget before the exchange does: a
   * request that left late (its process starved of CPU, its connection slow to open) cannot then
   * reach the exchange within a window of the ones granted after it. A remote store may queue the
   * settle and send it later (with the next grant, or on `flush`): until then the grant stays in flight.
   */
  settle(key: string, weight: number, grantedAt: number, at: number): Promise<void>;
  /** Sends every settle still queued; a function calls it before its invocation returns. */
  flush(): Promise<void>;
  /** The exchange reported `used` weight in its current window; raise the local estimate to match. */
  reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void>;
  /** No call to `exchange` before `untilMs`: a real ban, or a Retry-After pause ('rate-limited'). */
  ban(exchange: Exchange, untilMs: number, kind: BlockKind): Promise<void>;
  bannedUntil(exchange: Exchange, now: number): Promise<Block | undefined>;
}

export type BlockKind = 'banned' | 'rate-limited';
export interface Block {
  untilMs: number;
  kind: BlockKind;
}

interface Entry {
  at: number;
  weight: number;
  /** Granted and not yet answered: the exchange may count it at any moment, so it cannot expire yet. */
  inFlight: boolean;
}

// A grant never settled (its caller died) stops holding budget after this long.
const IN_FLIGHT_MAX_MS = 5 * 60_000;

/** Sliding-window log per key, in one process. */
export class MemoryBudgetStore implements BudgetStore {
  readonly #logs = new Map<string, Entry[]>();
  readonly #blocks = new Map<Exchange, Block>();

  async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
    const log = this.#log(key, now, rule);
    const w = Math.min(weight, rule.limit);
    let excess = log.reduce((sum, e) => sum + e.weight, 0) + w - rule.limit;
    if (excess <= 0) {
      log.push({ at: now, weight: w, inFlight: true });
      return 0;
    }
    // Answered entries leave the window in time order; one still in flight leaves a window after its answer at the earliest.
    const expiries = log.map((e) => ({ weight: e.weight, leaves: e.inFlight ? now + rule.windowMs : e.at + rule.windowMs }));
    expiries.sort((a, b) => a.leaves - b.leaves);
    for (const e of expiries) {
      excess -= e.weight;
      if (excess <= 0) return Math.max(1, e.leaves - now);
    }
    return rule.windowMs;
  }

  async settle(key: string, weight: number, grantedAt: number, at: number): Promise<void> {
    const entry = this.#logs.get(key)?.find((e) => e.inFlight && e.at === grantedAt && e.weight === weight);
    if (!entry) return;
    entry.at = Math.max(at, entry.at);
    entry.inFlight = false;
  }

  async flush(): Promise<void> {}

  async reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void> {
    const log = this.#log(key, now, rule);
    const known = log.reduce((sum, e) => sum + e.weight, 0);
    // Weight spent elsewhere (another process, the exchange counting differently) is recorded as spent now.
    if (used > known) log.push({ at: now, weight: used - known, inFlight: false });
  }

  async ban(exchange: Exchange, untilMs: number, kind: BlockKind): Promise<void> {
    const current = this.#blocks.get(exchange);
    if (kind === 'banned') {
      this.#blocks.set(exchange, { untilMs: Math.max(untilMs, current?.untilMs ?? 0), kind });
    } else if (!current || current.untilMs < untilMs) {
      this.#blocks.set(exchange, { untilMs, kind });
    }
  }

  async bannedUntil(exchange: Exchange, now: number): Promise<Block | undefined> {
    const block = this.#blocks.get(exchange);
    return block && block.untilMs > now ? block : undefined;
  }

  #log(key: string, now: number, rule: RateRule): Entry[] {
    const live = (this.#logs.get(key) ?? []).filter((e) =>
      e.inFlight ? e.at > now - IN_FLIGHT_MAX_MS : e.at > now - rule.windowMs,
    );
    this.#logs.set(key, live);
    return live;
  }
}

/** The limits each exchange publishes for its kline endpoints (per IP), from the exchanges' declarations. */
export const PUBLISHED_LIMITS: Readonly<Record<string, PublishedLimit>> = Object.assign(
  {},
  ...EXCHANGES.map((e) => adapters[e].limits.buckets),
) as Record<string, PublishedLimit>;

/**
 * The budget actually spent: a share of the published limit, because requests sent evenly can still
 * arrive bunched and the exchange counts arrivals. A limit too small to shrink stretches its window.
 */
export function deriveRule(published: RateRule, headroom = 0.9): RateRule {
  const limit = Math.floor(published.limit * headroom);
  return limit >= 1 ? { limit, windowMs: published.windowMs } : { limit: 1, windowMs: Math.ceil(published.windowMs / headroom) };
}

/** Shrinks every window by `factor`, for a fake exchange that runs its clock `factor` times faster. */
export function scaleRules(rules: Readonly<Record<string, RateRule>>, factor: number): Record<string, RateRule> {
  return Object.fromEntries(Object.entries(rules).map(([k, r]) => [k, { limit: r.limit, windowMs: r.windowMs / factor }]));
}

/** What the governor needs to know about one exchange's answers. */
export interface ExchangePolicy extends Pick<ExchangeLimits, 'route' | 'usageHeader' | 'bodyRateLimited'> {
  /** Statuses that mean "this IP is banned" rather than "slow down". */
  banStatuses: readonly number[];
  /** Ban length when the answer does not say. */
  defaultBanMs: number;
}

export const DEFAULT_POLICIES: Readonly<Record<Exchange, ExchangePolicy>> = Object.fromEntries(
  EXCHANGES.map((e) => {
    const { limits, bans } = adapters[e];
    const policy: ExchangePolicy = {
      route: limits.route,
      usageHeader: limits.usageHeader,
      bodyRateLimited: limits.bodyRateLimited,
      banStatuses: bans.statuses,
      defaultBanMs: bans.defaultMs,
    };
    return [e, policy];
  }),
) as Record<Exchange, ExchangePolicy>;

export interface GovernorDeps {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** [0, 1); jitter source. */
  random?: () => number;
  fetch?: typeof fetch;
}

export interface GovernorOptions {
  store?: BudgetStore;
  /** Budget per key; defaults to deriveRule(PUBLISHED_LIMITS). */
  rules?: Readonly<Record<string, RateRule>>;
  policies?: Partial<Record<Exchange, Partial<ExchangePolicy>>>;
  /** Per attempt. */
  timeoutMs?: number;
  /** Attempts per call, first one included, for 5xx, network errors and 429s. */
  maxAttempts?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Longest the governor sleeps for a budget or Retry-After before failing fast with RateLimitedError. */
  maxWaitMs?: number;
}

export const DEFAULT_RULES: Readonly<Record<string, RateRule>> = Object.fromEntries(
  Object.entries(PUBLISHED_LIMITS).map(([k, r]) => [k, deriveRule(r)]),
);

/**
 * Every exchange call goes through here: it waits for budget, honours bans and Retry-After,
 * applies a timeout, and retries 5xx answers and network failures with jittered exponential backoff.
 * Other 4xx answers are returned untouched for the adapter to map; they are never retried.
 */
export class Governor {
  readonly store: BudgetStore;
  readonly rules: Readonly<Record<string, RateRule>>;
  readonly #deps: Required<GovernorDeps>;
  readonly #policies: Record<Exchange, ExchangePolicy>;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #baseBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #maxWaitMs: number;

  constructor(deps: GovernorDeps, options: GovernorOptions = {}) {
    this.#deps = { random: Math.random, fetch: globalThis.fetch.bind(globalThis), ...deps };
    this.store = options.store ?? new MemoryBudgetStore();
    this.rules = { ...DEFAULT_RULES, ...options.rules };
    const policies = { ...DEFAULT_POLICIES };
    for (const [ex, p] of Object.entries(options.policies ?? {}) as [Exchange, Partial<ExchangePolicy>][]) {
      policies[ex] = { ...policies[ex], ...p };
    }
    this.#policies = policies;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 4);
    this.#baseBackoffMs = options.baseBackoffMs ?? 250;
    this.#maxBackoffMs = options.maxBackoffMs ?? 8_000;
    this.#maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  /** Sends the budget's queued settles (see BudgetStore.flush): before a function invocation returns. */
  flush(): Promise<void> {
    return this.store.flush();
  }

  /** A fetch bound to one exchange, to hand to its adapter as `deps.fetch`. */
  fetchFor(exchange: Exchange): typeof fetch {
    return (input, init) => this.governedFetch(exchange, input, init);
  }

  /** Backoff before retry number `attempt` (1-based): half fixed, half jitter, capped. */
  backoffMs(attempt: number): number {
    const ceiling = Math.min(this.#maxBackoffMs, this.#baseBackoffMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + this.#deps.random() * (ceiling / 2));
  }

  async governedFetch(exchange: Exchange, input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const policy = this.#policies[exchange];
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const { key, weight } = policy.route(url);
    const rule = this.rules[key];
    if (!rule) throw new Error(`no rate rule for budget "${key}" of ${exchange}`);

    for (let attempt = 1; ; attempt++) {
      const grantedAt = await this.#waitForBudget(exchange, key, weight, rule);

      let response: Response;
      try {
        response = await this.#deps.fetch(input, { ...init, signal: this.#signal(init?.signal) });
      } catch (err) {
        await this.store.settle(key, Math.min(weight, rule.limit), grantedAt, this.#deps.now());
        if (init?.signal?.aborted) throw err;
        if (attempt >= this.#maxAttempts) {
          throw new ExchangeNetworkError(exchange, `${describe(err)} after ${attempt} attempts`, { cause: err });
        }
        await this.#deps.sleep(this.backoffMs(attempt));
        continue;
      }
      const now = this.#deps.now();
      await this.store.settle(key, Math.min(weight, rule.limit), grantedAt, now);

      if (policy.usageHeader) {
        const used = Number(response.headers.get(policy.usageHeader.name));
        const usageRule = this.rules[policy.usageHeader.key];
        if (Number.isFinite(used) && used > 0 && usageRule) await this.store.reportUsage(policy.usageHeader.key, used, now, usageRule);
      }

      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now);
      if (policy.banStatuses.includes(response.status)) {
        const said = await statedError(response);
        // A ban message that names its end ("IP banned until 1732147200000") is more exact than Retry-After.
        const stated = /banned until (\d{13})/.exec(said)?.[1];
        const untilMs = stated ? Number(stated) : now + (retryAfterMs ?? policy.defaultBanMs);
        await this.store.ban(exchange, untilMs, 'banned');
        throw new BannedError(exchange, untilMs, `HTTP ${response.status}: ${said}`);
      }

      let rateLimited = response.status === 429;
      let said: string | undefined;
      if (!rateLimited && policy.bodyRateLimited && response.status === 200) {
        const text = await readBody(exchange, response);
        rateLimited = policy.bodyRateLimited(text);
        if (rateLimited) said = describeErrorBody({ status: response.status, headers: response.headers, text });
        response = new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
      }
      if (rateLimited) {
        // Without Retry-After, a whole window of the budget is the shortest wait that is sure to help.
        const pauseMs = retryAfterMs ?? rule.windowMs;
        await this.store.ban(exchange, now + pauseMs, 'rate-limited');
        if (attempt >= this.#maxAttempts || pauseMs > this.#maxWaitMs) {
          said ??= await statedError(response);
          throw new RateLimitedError(exchange, pauseMs, `HTTP ${response.status} after ${attempt} attempts: ${said}`);
        }
        await response.body?.cancel();
        continue; // #waitForBlock sleeps out the pause
      }

      if (response.status >= 500 && attempt < this.#maxAttempts) {
        await response.body?.cancel();
        await this.#deps.sleep(this.backoffMs(attempt));
        continue;
      }
      return response;
    }
  }

  /** Waits until the budget grants the request; returns the grant time. */
  async #waitForBudget(exchange: Exchange, key: string, weight: number, rule: RateRule): Promise<number> {
    const started = this.#deps.now();
    for (;;) {
      await this.#waitForBlock(exchange);
      const now = this.#deps.now();
      const wait = await this.store.take(key, weight, now, rule);
      if (wait === 0) return now;
      if (now + wait - started > this.#maxWaitMs) {
        throw new RateLimitedError(exchange, wait, `local budget "${key}" exhausted`);
      }
      await this.#deps.sleep(wait);
    }
  }

  async #waitForBlock(exchange: Exchange): Promise<void> {
    for (;;) {
      const now = this.#deps.now();
      const block = await this.store.bannedUntil(exchange, now);
      if (!block) return;
      if (block.kind === 'banned') throw new BannedError(exchange, block.untilMs, 'calls suspended until the ban ends');
      const wait = block.untilMs - now;
      if (wait > this.#maxWaitMs) throw new RateLimitedError(exchange, wait, 'exchange asked to back off');
      await this.#deps.sleep(wait);
    }
  }

  #signal(caller: AbortSignal | null | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    return caller ? AbortSignal.any([caller, timeout]) : timeout;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'request timed out';
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}
