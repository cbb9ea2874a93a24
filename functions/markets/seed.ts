import { startTime, type Market } from '../config/markets.ts';
import type { Db } from '../store/db.ts';
import { seedMarkets } from '../store/markets.ts';

/**
 * Applies cdk.json's `candlekeep:markets` (already validated by parseMarkets) as the seed list:
 * markets the database has never seen are followed; the rest, changed or removed at runtime, stay
 * as they are. Returns how many were added.
 */
export function applySeed(db: Db, markets: readonly Market[]): Promise<number> {
  return seedMarkets(
    db,
    markets.map((m) => ({ exchange: m.exchange, symbol: m.symbol, intervals: m.intervals, start: startTime(m.start), retention: m.retentionDays })),
  );
}
