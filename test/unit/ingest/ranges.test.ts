import { describe, expect, it } from 'vitest';
import { bucketAtOrAfter, bucketsIn, intersectRanges, mergeRanges, splitRange, subtractRanges } from '../../../functions/ingest/ranges.ts';

const H = 3_600_000;
const r = (start: number, end: number) => ({ start: start * H, end: end * H });

describe('range arithmetic', () => {
  it('merges overlapping and touching ranges, ignoring empty ones', () => {
    expect(mergeRanges([r(5, 7), r(0, 2), r(2, 3), r(6, 9), r(4, 4)])).toEqual([r(0, 3), r(5, 9)]);
  });

  it('subtracts covered parts, leaving the uncovered ones in order', () => {
    expect(subtractRanges(r(0, 10), [r(2, 3), r(-5, 1), r(8, 20), r(2.5, 4)])).toEqual([r(1, 2), r(4, 8)]);
    expect(subtractRanges(r(0, 10), [])).toEqual([r(0, 10)]);
    expect(subtractRanges(r(0, 10), [r(0, 10)])).toEqual([]);
  });

  it('intersects a range with a set of ranges', () => {
    expect(intersectRanges(r(2, 8), [r(0, 3), r(5, 6), r(7, 20)])).toEqual([r(2, 3), r(5, 6), r(7, 8)]);
  });

  it('splits into consecutive pieces of at most the span', () => {
    expect(splitRange(r(0, 10), 4 * H)).toEqual([r(0, 4), r(4, 8), r(8, 10)]);
    expect(() => splitRange(r(0, 1), 0)).toThrow(RangeError);
  });

  it('aligns up to the next bucket, Monday weeks included', () => {
    const t = Date.UTC(2024, 0, 1, 0, 0, 30);
    expect(bucketAtOrAfter(t, '1m')).toBe(Date.UTC(2024, 0, 1, 0, 1));
    expect(bucketAtOrAfter(Date.UTC(2024, 0, 1), '1m')).toBe(Date.UTC(2024, 0, 1));
    // 2024-01-03 is a Wednesday: the next week opens Monday 2024-01-08.
    expect(bucketAtOrAfter(Date.UTC(2024, 0, 3), '1w')).toBe(Date.UTC(2024, 0, 8));
    expect(bucketsIn(r(0, 3), '1h')).toBe(3);
  });
});
