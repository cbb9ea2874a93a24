import type { Exchange } from '../candles/candle.ts';
import type { Block, BlockKind, BudgetStore, RateRule } from '../exchanges/governor.ts';
import type { Queryable } from '../store/db.ts';

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
 * The governor's budget in PostgreSQL, shared by every Lambda (and every CLI process) that calls an
 * exchange. Each bucket is one row of time slots; a grant is one call of `budget_take`, which locks
 * that row, drops slots older than the window, and grants or says how long to wait (migration 0004).
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

  #slotFor(key: string, rule: RateRule): number {
    const slot = Math.max(1, Math.ceil(rule.windowMs / this.#slots));
    this.#slotMs.set(key, slot);
    return slot;
  }

  async take(key: string, weight: number, now: number, rule: RateRule): Promise<number> {
    const slotMs = this.#slotFor(key, rule);
    const exchange = exchangeOf(key);
    const { rows } = await this.#db.query<{ wait_ms: string; used: number | null; block_until: string | null; block_kind: BlockKind | null }>(
      'SELECT wait_ms, used, block_until, block_kind FROM budget_take($1, $2, $3, $4, $5, $6, $7)',
      [key, exchange, Math.ceil(weight), Math.floor(now), rule.limit, Math.ceil(rule.windowMs), slotMs],
    );
    const row = rows[0];
    if (!row) throw new Error(`budget_take returned no row for ${key}`);
    const block = row.block_until === null ? undefined : { untilMs: Number(row.block_until), kind: row.block_kind ?? 'rate-limited' };
    this.#blocks.set(exchange, { block, checkedAt: now });
    if (row.used !== null) this.#known.set(key, row.used);
    return Number(row.wait_ms);
  }

  async settle(key: string, weight: number, grantedAt: number, at: number): Promise<void> {
    const slotMs = this.#slotMs.get(key);
    if (slotMs === undefined) return;
    const from = grantedAt - (grantedAt % slotMs);
    const to = at - (at % slotMs);
    if (to <= from) return;
    await this.#db.query('SELECT budget_shift($1, $2, $3, $4)', [key, Math.ceil(weight), from, to]);
  }

  async reportUsage(key: string, used: number, now: number, rule: RateRule): Promise<void> {
    const known = this.#known.get(key) ?? 0;
    if (used <= known + rule.limit * this.#usageTolerance) return;
    const slotMs = this.#slotFor(key, rule);
    // Ask what the budget holds now (other processes' grants included) without granting anything.
    const { rows } = await this.#db.query<{ used: number | null }>(
      'SELECT used FROM budget_take($1, $2, 0, $3, $4, $5, $6)',
      [key, exchangeOf(key), Math.floor(now), rule.limit, Math.ceil(rule.windowMs), slotMs],
    );
    const held = rows[0]?.used ?? known;
    if (used > held) {
      const slot = now - (now % slotMs);
      await this.#db.query('SELECT budget_shift($1, $2, NULL, $3)', [key, used - held, slot]);
    }
    this.#known.set(key, Math.max(used, held));
  }

  async ban(exchange: Exchange, untilMs: number, kind: BlockKind): Promise<void> {
    const { rows } = await this.#db.query<{ until_ms: string; kind: BlockKind }>(
      `INSERT INTO exchange_blocks AS b (exchange, until_ms, kind) VALUES ($1, $2, $3)
       ON CONFLICT (exchange) DO UPDATE SET
         until_ms = greatest(b.until_ms, excluded.until_ms),
         kind = CASE WHEN excluded.kind = 'banned' OR b.until_ms < excluded.until_ms THEN excluded.kind ELSE b.kind END
       RETURNING until_ms, kind`,
      [exchange, Math.ceil(untilMs), kind],
    );
    const row = rows[0];
    if (row) this.#blocks.set(exchange, { block: { untilMs: Number(row.until_ms), kind: row.kind }, checkedAt: Date.now() });
  }

  async bannedUntil(exchange: Exchange, now: number): Promise<Block | undefined> {
    const cached = this.#blocks.get(exchange);
    if (cached && Math.abs(now - cached.checkedAt) < this.#blockCacheMs) {
      return cached.block && cached.block.untilMs > now ? cached.block : undefined;
    }
    const { rows } = await this.#db.query<{ until_ms: string; kind: BlockKind }>(
      'SELECT until_ms, kind FROM exchange_blocks WHERE exchange = $1 AND until_ms > $2',
      [exchange, Math.floor(now)],
    );
    const row = rows[0];
    const block = row ? { untilMs: Number(row.until_ms), kind: row.kind } : undefined;
    this.#blocks.set(exchange, { block, checkedAt: now });
    return block;
  }
}
