import type { Exchange } from '../candles/candle.ts';
import type { Queryable } from '../store/db.ts';
import { readBlock, shiftBudget, takeBudget, upsertBlock } from '../store/budgets.ts';
import type { Block, BlockKind, BudgetStore } from './governor.ts';
import type { RateRule } from './types.ts';

export interface PostgresBudgetStoreOptions {
  /** Slots per window: more is closer to an exact sliding window, each slot costs a few bytes. Default 20. */
  slotsPerWindow?: number;
  /** How long a block read from the database is trusted before asking again. Default 500 ms. */
  blockCacheMs?: number;
  /** Usage reported by the exchange within this share of the limit of what we know is not written back. Default 0.02. */
  usageTolerance?: number;
}

interface BlockCache {
  block: Block | undefined;
  checkedAt: number;
}

const exchangeOf = (key: string): Exchange => key.split(':')[0] as Exchange;

/**
 * The governor's budget in PostgreSQL (store/budgets.ts), shared by every Lambda (and every CLI
 * process) that calls an exchange. Each bucket is one row of time slots; a grant is one call of
 * `budget_take`, which locks that row, drops slots older than the window, and grants or says how
 * long to wait.
 *
 * Kept to about one round trip per exchange request: `settle` writes only when the answer arrived in
 * a later slot than the grant; `reportUsage` only when the exchange counts clearly more than the
 * budget holds (someone else spends from the same IP); bans are read with every grant and cached
 * briefly for `bannedUntil`.
 */
export class PostgresBudgetStore implements BudgetStore {
  readonly #db: Queryable;
  readonly #slots: number;
  readonly #blockCacheMs: number;
  readonly #usageTolerance: number;
  readonly #blocks = new Map<Exchange, BlockCache>();
  /** Weight the budget held at our last grant or report, per key. */
  readonly #known = new Map<string, number>();
  readonly #slotMs = new Map<string, number>();

  constructor(db: Queryable, options: PostgresBudgetStoreOptions = {}) {
    this.#db = db;
    this.#slots = options.slotsPerWindow ?? 20;
    this.#blockCacheMs = options.blockCacheMs ?? 500;
    this.#usageTolerance = options.usageTolerance ?? 0.02;
  }

  #bucket(key: string, rule: RateRule) {
    const slotMs = Math.max(1, Math.ceil(rule.windowMs / this.#slots));
    this.#slotMs.set(key, slotMs);
    return { ...rule, slotMs };
  }

  async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
    const exchange = exchangeOf(key);
    const grant = await takeBudget(this.#db, key, exchange, weight, now, this.#bucket(key, rule));
    this.#blocks.set(exchange, { block: grant.block, checkedAt: now });
    if (grant.used !== null) this.#known.set(key, grant.used);
    return grant.waitMs;
  }

  async settle(key: string, weight: number, grantedAt: number, at: number): Promise<void> {
    const slotMs = this.#slotMs.get(key);
    if (slotMs === undefined) return;
    const from = grantedAt - (grantedAt % slotMs);
    const to = at - (at % slotMs);
    if (to <= from) return;
    await shiftBudget(this.#db, key, Math.ceil(weight), from, to);
  }

  async reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void> {
    const known = this.#known.get(key) ?? 0;
    if (used <= known + rule.limit * this.#usageTolerance) return;
    const bucket = this.#bucket(key, rule);
    // Ask what the budget holds now (other processes' grants included) without granting anything.
    const held = (await takeBudget(this.#db, key, exchangeOf(key), 0, now, bucket)).used ?? known;
    if (used > held) await shiftBudget(this.#db, key, used - held, null, now - (now % bucket.slotMs));
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
