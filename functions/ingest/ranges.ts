import { bucketStart, INTERVAL_MS, type Interval } from '../candles/intervals.ts';

/** A half-open time range [start, end) in epoch ms. */
export interface Range {
  start: number;
  end: number;
}

/** The first bucket of `interval` opening at or after `t`. */
export function bucketAtOrAfter(t: number, interval: Interval): number {
  const start = bucketStart(t, interval);
  return start < t ? start + INTERVAL_MS[interval] : start;
}

/** Sorted, with overlapping or touching ranges joined. */
export function mergeRanges(ranges: readonly Range[]): Range[] {
  const sorted = ranges.filter((r) => r.end > r.start).sort((a, b) => a.start - b.start);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** The parts of `base` that none of `cuts` covers, ascending. */
export function subtractRanges(base: Range, cuts: readonly Range[]): Range[] {
  const out: Range[] = [];
  let cursor = base.start;
  for (const c of mergeRanges(cuts)) {
    if (c.end <= cursor) continue;
    if (c.start >= base.end) break;
    if (c.start > cursor) out.push({ start: cursor, end: Math.min(c.start, base.end) });
    cursor = Math.max(cursor, c.end);
    if (cursor >= base.end) break;
  }
  if (cursor < base.end) out.push({ start: cursor, end: base.end });
  return out;
}

/** The parts of `base` that `cuts` do cover, ascending. */
export function intersectRanges(base: Range, cuts: readonly Range[]): Range[] {
  return mergeRanges(cuts)
    .map((c) => ({ start: Math.max(base.start, c.start), end: Math.min(base.end, c.end) }))
    .filter((r) => r.end > r.start);
}

/** Cuts `range` into consecutive pieces of at most `span` ms (the last may be shorter). */
export function splitRange(range: Range, span: number): Range[] {
  if (!(span > 0)) throw new RangeError(`span must be positive, got ${span}`);
  const out: Range[] = [];
  for (let s = range.start; s < range.end; s += span) out.push({ start: s, end: Math.min(range.end, s + span) });
  return out;
}

/** Candle count of a range of `interval` buckets. */
export const bucketsIn = (r: Range, interval: Interval): number => Math.max(0, Math.ceil((r.end - r.start) / INTERVAL_MS[interval]));

export const iso = (t: number): string => new Date(t).toISOString();
export const describeRange = (r: Range): string => `${iso(r.start)}..${iso(r.end)}`;
