import type { Exchange } from '../candles/candle.ts';
import type { Block, BlockKind } from '../exchanges/governor.ts';
import type { Queryable } from './db.ts';

/**
 * The governor's shared budget (migrations 0004, 0016 and 0017): one row of time slots per budget
 * bucket, answered grants in one pair of arrays and grants still in flight in another, changed only
 * through `budget_settle_grant` (settles and a grant in one round trip), `budget_settle_many` and
 * `budget_shift`; and one row per exchange in `exchange_blocks`.
 */

export interface BudgetGrant {
  /** 0 when granted; otherwise how long until it could be. */
  waitMs: number;
  /** Weight the bucket holds (answered and in flight), this grant included; null for a bucket never used. */
  used: number | null;
  /** The exchange's block, read in the same round trip. */
  block: Block | undefined;
  /** The in-flight slot the grant is recorded in (to settle it from); null when nothing was granted. */
  slot: number | null;
}

export interface BucketShape {
  limit: number;
  windowMs: number;
  slotMs: number;
  /** How long a grant never settled (its caller died mid-request) stays in flight before it stops counting. */
  inFlightMaxMs: number;
}

/** A grant answered: `weight` leaves the in-flight slot `flightSlot` of bucket `key` and counts as answered in `answerSlot`. */
export interface Settle {
  key: string;
  weight: number;
  flightSlot: number;
  answerSlot: number;
}

/**
 * Settles `settles` (all of bucket `key`) first, then locks the bucket's row, drops what has left
 * the window, and grants `weight` at `now` as in flight or says how long to wait, in one round trip.
 * A weight of 0 only settles and reads what the bucket holds.
 */
export async function grantBudget(
  db: Queryable,
  key: string,
  exchange: Exchange,
  weight: number,
  now: number,
  bucket: BucketShape,
  settles: readonly Settle[] = [],
): Promise<BudgetGrant> {
  const { rows } = await db.query<{ wait_ms: string; used: number | null; block_until: string | null; block_kind: BlockKind | null; slot: string | null }>(
    'SELECT wait_ms, used, block_until, block_kind, slot FROM budget_settle_grant($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
    [
      key,
      exchange,
      Math.ceil(weight),
      Math.floor(now),
      bucket.limit,
      Math.ceil(bucket.windowMs),
      bucket.slotMs,
      Math.ceil(bucket.inFlightMaxMs),
      settles.map((s) => s.weight),
      settles.map((s) => s.flightSlot),
      settles.map((s) => s.answerSlot),
    ],
  );
  const row = rows[0];
  if (!row) throw new Error(`budget_settle_grant returned no row for ${key}`);
  return {
    waitMs: Number(row.wait_ms),
    used: row.used,
    block: row.block_until === null ? undefined : { untilMs: Number(row.block_until), kind: row.block_kind ?? 'rate-limited' },
    slot: row.slot === null ? null : Number(row.slot),
  };
}

/** Ends the flights of `settles`, on any buckets, in one round trip. */
export async function settleBudgets(db: Queryable, settles: readonly Settle[]): Promise<void> {
  if (settles.length === 0) return;
  await db.query('SELECT budget_settle_many($1, $2, $3, $4)', [
    settles.map((s) => s.key),
    settles.map((s) => s.weight),
    settles.map((s) => s.flightSlot),
    settles.map((s) => s.answerSlot),
  ]);
}

/** Adds `weight` as answered in the slot starting at `toSlot` (usage the exchange reported that the budget did not know of). */
export async function addBudgetUsage(db: Queryable, key: string, weight: number, toSlot: number): Promise<void> {
  await db.query('SELECT budget_shift($1, $2, NULL, $3)', [key, weight, toSlot]);
}

/** Blocks calls to `exchange` until `untilMs`; a longer block or a ban wins over what is there. Returns the block now in force. */
export async function upsertBlock(db: Queryable, exchange: Exchange, untilMs: number, kind: BlockKind): Promise<Block | undefined> {
  const { rows } = await db.query<{ until_ms: string; kind: BlockKind }>(
    `INSERT INTO exchange_blocks AS b (exchange, until_ms, kind) VALUES ($1, $2, $3)
     ON CONFLICT (exchange) DO UPDATE SET
       until_ms = greatest(b.until_ms, excluded.until_ms),
       kind = CASE WHEN excluded.kind = 'banned' OR b.until_ms < excluded.until_ms THEN excluded.kind ELSE b.kind END
     RETURNING until_ms, kind`,
    [exchange, Math.ceil(untilMs), kind],
  );
  const row = rows[0];
  return row ? { untilMs: Number(row.until_ms), kind: row.kind } : undefined;
}

/** The block on `exchange` still in force at `now`, if any. */
export async function readBlock(db: Queryable, exchange: Exchange, now: number): Promise<Block | undefined> {
  const { rows } = await db.query<{ until_ms: string; kind: BlockKind }>(
    'SELECT until_ms, kind FROM exchange_blocks WHERE exchange = $1 AND until_ms > $2',
    [exchange, Math.floor(now)],
  );
  const row = rows[0];
  return row ? { untilMs: Number(row.until_ms), kind: row.kind } : undefined;
}
