import type { Exchange } from '../candles/candle.ts';
import type { Queryable } from '../store/db.ts';
import { addBudgetUsage, grantBudget, readBlock, settleBudgets, upsertBlock, type BucketShape, type Settle } from '../store/budgets.ts';
import type { Block, BlockKind, BudgetStore } from './governor.ts';
import type { RateRule } from './types.ts';

export interface PostgresBudgetStoreOptions {
  /** Slots per window: more is closer to an exact sliding window, each slot costs a few bytes. Default 20. */
  slotsPerWindow?: number;
  /** How long a block read from the database is trusted before asking again. Default 500 ms. */
  blockCacheMs?: number;
  /** Usage reported by the exchange within this share of the limit of what we know is not written back. Default 0.02. */
  usageTolerance?: number;
  /**
   * How long a grant never settled (its caller died mid-request) stays in flight, holding its
   * weight, before it only counts for the window after it. Default 60 s, well past the governor's
   * request timeout.
   */
  inFlightMaxMs?: number;
  /**
   * How long an answered grant's settle waits for the next grant on its bucket to carry it before
   * it is sent on its own. Default 100 ms: shorter than the shortest window (Kraken's 1,112 ms), so
   * a settle sent late never holds weight past the window it would count for anyway.
   */
  settleDelayMs?: number;
}

interface Flight {
  weight: number;
  /** The in-flight slot the database recorded the grant in. */
  slot: number;
}

interface BlockCache {
  block: Block | undefined;
  checkedAt: number;
}

const exchangeOf = (key: string): Exchange => key.split(':')[0] as Exchange;
const flightId = (key: string, grantedAt: number) => `${key}@${grantedAt}`;

/** Longest pause between attempts to send settles whose sending failed. */
const MAX_SETTLE_RETRY_MS = 5_000;

/**
 * The governor's budget in PostgreSQL (store/budgets.ts), shared by every Lambda (and every CLI
 * process) that calls an exchange. Each bucket is one row of time slots; a grant is one call of
 * `budget_settle_grant`, which locks that row, drops slots that have left the window, and grants
 * (recording the weight as in flight) or says how long to wait.
 *
 * A grant stays in flight until it is settled with the time its answer arrived, then counts for a
 * window after that. The exchange counted the request before it answered, so however late the
 * request left after its grant (a process starved of CPU, a slow lock or connection), the next
 * grant cannot reach the exchange within a window of it. `settle` only queues: the queued settles of
 * a bucket travel with this process's next grant (or usage read) on it, in the same round trip, so
 * a steady stream of requests costs one round trip each. Settles no grant carries within
 * `settleDelayMs` are sent together on their own, and `flush` sends them at once: a function calls it
 * before its invocation returns (a frozen container sends nothing). A settle whose sending fails is
 * queued again. Until its settle arrives a grant holds its weight in flight, so a late settle only
 * holds budget longer, never less. `reportUsage` writes only when the exchange counts clearly more
 * than the budget holds (someone else spends from the same IP); bans are read with every grant and
 * cached briefly for `bannedUntil`.
 */
export class PostgresBudgetStore implements BudgetStore {
  readonly #db: Queryable;
  readonly #slots: number;
  readonly #blockCacheMs: number;
  readonly #usageTolerance: number;
  readonly #inFlightMaxMs: number;
  readonly #settleDelayMs: number;
  readonly #blocks = new Map<Exchange, BlockCache>();
  /** Weight the budget held at our last grant or report, per key. */
  readonly #known = new Map<string, number>();
  readonly #slotMs = new Map<string, number>();
  readonly #windowMs = new Map<string, number>();
  /** This process's grants not yet settled, by key and grant time. */
  readonly #flights = new Map<string, Flight[]>();
  /** Settles not yet sent, by key. */
  readonly #pending = new Map<string, Settle[]>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retryMs = 0;

  constructor(db: Queryable, options: PostgresBudgetStoreOptions = {}) {
    this.#db = db;
    this.#slots = options.slotsPerWindow ?? 20;
    this.#blockCacheMs = options.blockCacheMs ?? 500;
    this.#usageTolerance = options.usageTolerance ?? 0.02;
    this.#inFlightMaxMs = options.inFlightMaxMs ?? 60_000;
    this.#settleDelayMs = options.settleDelayMs ?? 100;
  }

  #bucket(key: string, rule: RateRule) {
    const slotMs = Math.max(1, Math.ceil(rule.windowMs / this.#slots));
    this.#slotMs.set(key, slotMs);
    this.#windowMs.set(key, rule.windowMs);
    return { ...rule, slotMs, inFlightMaxMs: this.#inFlightMaxMs };
  }

  /** Settles queued and not yet sent, over every key. */
  get pendingSettles(): number {
    let n = 0;
    for (const list of this.#pending.values()) n += list.length;
    return n;
  }

  async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
    const exchange = exchangeOf(key);
    const grant = await this.#grant(key, exchange, weight, now, this.#bucket(key, rule));
    this.#blocks.set(exchange, { block: grant.block, checkedAt: now });
    if (grant.used !== null) this.#known.set(key, grant.used);
    if (grant.waitMs === 0 && grant.slot !== null) {
      const id = flightId(key, now);
      const flights = this.#flights.get(id) ?? [];
      flights.push({ weight: Math.min(Math.ceil(weight), rule.limit), slot: grant.slot });
      this.#flights.set(id, flights);
    }
    return grant.waitMs;
  }

  /** Queues the settle of the grant of `weight` at `grantedAt`; a grant this store did not make is ignored. */
  async settle(key: string, weight: number, grantedAt: number, at: number): Promise<void> {
    const id = flightId(key, grantedAt);
    const flights = this.#flights.get(id);
    const slotMs = this.#slotMs.get(key);
    if (!flights || slotMs === undefined) return;
    const i = flights.findIndex((f) => f.weight === Math.ceil(weight));
    if (i < 0) return;
    const [flight] = flights.splice(i, 1);
    if (flights.length === 0) this.#flights.delete(id);
    if (!flight) return;
    this.#queue(key, [{ key, weight: flight.weight, flightSlot: flight.slot, answerSlot: Math.max(flight.slot, at - (at % slotMs)) }]);
    this.#schedule(this.#settleDelayMs);
  }

  /** Sends every queued settle now, in one round trip; on failure they stay queued (and the error is thrown). */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const settles = [...this.#pending.values()].flat();
    this.#pending.clear();
    if (settles.length === 0) return;
    try {
      await settleBudgets(this.#db, settles);
      this.#retryMs = 0;
    } catch (err) {
      this.#requeue(settles);
      throw err;
    }
  }

  /** One round trip: the key's queued settles, then the grant (or, for weight 0, the read). */
  async #grant(key: string, exchange: Exchange, weight: number, now: number, bucket: BucketShape) {
    const settles = this.#pending.get(key) ?? [];
    this.#pending.delete(key);
    try {
      const grant = await grantBudget(this.#db, key, exchange, weight, now, bucket, settles);
      if (settles.length > 0) this.#retryMs = 0;
      return grant;
    } catch (err) {
      this.#requeue(settles);
      throw err;
    }
  }

  #queue(key: string, settles: Settle[]): void {
    const list = this.#pending.get(key);
    if (list) list.push(...settles);
    else this.#pending.set(key, settles);
  }

  /**
   * Puts back settles whose sending failed, ahead of newer ones, and tries again later, backing off.
   * One that no longer counts anywhere (its flight expired and its answer left the window) is dropped.
   */
  #requeue(settles: readonly Settle[]): void {
    if (settles.length === 0) return;
    const now = Date.now();
    for (const s of [...settles].reverse()) {
      const slotMs = this.#slotMs.get(s.key) ?? 0;
      const windowMs = this.#windowMs.get(s.key) ?? 0;
      const counts = s.flightSlot + slotMs + this.#inFlightMaxMs + windowMs > now || s.answerSlot + slotMs + windowMs > now;
      if (!counts) continue;
      const list = this.#pending.get(s.key);
      if (list) list.unshift(s);
      else this.#pending.set(s.key, [s]);
    }
    this.#retryMs = Math.min(MAX_SETTLE_RETRY_MS, Math.max(this.#settleDelayMs, this.#retryMs * 2));
    this.#schedule(this.#retryMs);
  }

  /** Sends what is queued after `ms` unless a grant carries it first; never keeps a process alive. */
  #schedule(ms: number): void {
    if (this.#timer || this.#pending.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // A failure is queued again (and retried) by flush itself.
      this.flush().catch(() => {});
    }, ms);
    this.#timer.unref?.();
  }

  async reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void> {
    const known = this.#known.get(key) ?? 0;
    if (used <= known + rule.limit * this.#usageTolerance) return;
    const bucket = this.#bucket(key, rule);
    // Ask what the budget holds now (other processes' grants included) without granting anything.
    const held = (await this.#grant(key, exchangeOf(key), 0, now, bucket)).used ?? known;
    if (used > held) await addBudgetUsage(this.#db, key, used - held, now - (now % bucket.slotMs));
    this.#known.set(key, Math.max(used, held));
  }

  async ban(exchange: Exchange, untilMs: number, kind: BlockKind): Promise<void> {
    const block = await upsertBlock(this.#db, exchange, untilMs, kind);
    if (block) this.#blocks.set(exchange, { block, checkedAt: Date.now() });
  }

  async bannedUntil(exchange: Exchange, now: number): Promise<Block | undefined> {
    const cached = this.#blocks.get(exchange);
    if (cached && Math.abs(now - cached.checkedAt) < this.#blockCacheMs) {
      return cached.block && cached.block.untilMs > now ? cached.block : undefined;
    }
    const block = await readBlock(this.#db, exchange, now);
    this.#blocks.set(exchange, { block, checkedAt: now });
    return block;
  }
}
