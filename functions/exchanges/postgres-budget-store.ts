import type { Exchange } from '../candles/candle.ts';
import type { Queryable } from '../store/db.ts';
import { addBudgetUsage, grantBudget, readBlock, settleBudget, upsertBlock } from '../store/budgets.ts';
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

/**
 * The governor's budget in PostgreSQL (store/budgets.ts), shared by every Lambda (and every CLI
 * process) that calls an exchange. Each bucket is one row of time slots; a grant is one call of
 * `budget_grant`, which locks that row, drops slots that have left the window, and grants (recording
 * the weight as in flight) or says how long to wait.
 *
 * A grant stays in flight until `settle` reports when its answer arrived, then counts for a window
 * after that. The exchange counted the request before it answered, so however late the request left
 * after its grant (a process starved of CPU, a slow lock or connection), the next grant cannot reach
 * the exchange within a window of it. That costs a second round trip per exchange request (the
 * settle); `reportUsage` writes only when the exchange counts clearly more than the budget holds
 * (someone else spends from the same IP); bans are read with every grant and cached briefly for
 * `bannedUntil`.
 */
export class PostgresBudgetStore implements BudgetStore {
  readonly #db: Queryable;
  readonly #slots: number;
  readonly #blockCacheMs: number;
  readonly #usageTolerance: number;
  readonly #inFlightMaxMs: number;
  readonly #blocks = new Map<Exchange, BlockCache>();
  /** Weight the budget held at our last grant or report, per key. */
  readonly #known = new Map<string, number>();
  readonly #slotMs = new Map<string, number>();
  /** This process's grants not yet settled, by key and grant time. */
  readonly #flights = new Map<string, Flight[]>();

  constructor(db: Queryable, options: PostgresBudgetStoreOptions = {}) {
    this.#db = db;
    this.#slots = options.slotsPerWindow ?? 20;
    this.#blockCacheMs = options.blockCacheMs ?? 500;
    this.#usageTolerance = options.usageTolerance ?? 0.02;
    this.#inFlightMaxMs = options.inFlightMaxMs ?? 60_000;
  }

  #bucket(key: string, rule: RateRule) {
    const slotMs = Math.max(1, Math.ceil(rule.windowMs / this.#slots));
    this.#slotMs.set(key, slotMs);
    return { ...rule, slotMs, inFlightMaxMs: this.#inFlightMaxMs };
  }

  async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
    const exchange = exchangeOf(key);
    const grant = await grantBudget(this.#db, key, exchange, weight, now, this.#bucket(key, rule));
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

  async settle(key: string, weight: number, grantedAt: number, at: number): Promise<void> {
    const id = flightId(key, grantedAt);
    const flights = this.#flights.get(id);
    const slotMs = this.#slotMs.get(key);
    if (!flights || slotMs === undefined) return;
    const [flight] = flights.splice(Math.max(0, flights.findIndex((f) => f.weight === Math.ceil(weight))), 1);
    if (flights.length === 0) this.#flights.delete(id);
    if (!flight) return;
    await settleBudget(this.#db, key, flight.weight, flight.slot, Math.max(flight.slot, at - (at % slotMs)));
  }

  async reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void> {
    const known = this.#known.get(key) ?? 0;
    if (used <= known + rule.limit * this.#usageTolerance) return;
    const bucket = this.#bucket(key, rule);
    // Ask what the budget holds now (other processes' grants included) without granting anything.
    const held = (await grantBudget(this.#db, key, exchangeOf(key), 0, now, bucket)).used ?? known;
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
