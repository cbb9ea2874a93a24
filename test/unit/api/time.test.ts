import { describe, expect, it } from 'vitest';
import { parseTime } from '../../../functions/http/time.ts';

const ms = (s: string) => {
  const r = parseTime(s);
  if (!r.ok) throw new Error(r.message);
  return r.ms;
};
const why = (s: string) => {
  const r = parseTime(s);
  if (r.ok) throw new Error(`${s} was accepted as ${r.ms}`);
  return r.message;
};

describe('parseTime', () => {
  it('reads ISO 8601 dates and times, with or without offsets, as UTC milliseconds', () => {
    expect(ms('2024-03-01')).toBe(Date.UTC(2024, 2, 1));
    expect(ms('2024-03-01T12:30:00Z')).toBe(Date.UTC(2024, 2, 1, 12, 30));
    expect(ms('2024-03-01T12:30')).toBe(Date.UTC(2024, 2, 1, 12, 30));
    expect(ms('2024-03-01 12:30:15.250')).toBe(Date.UTC(2024, 2, 1, 12, 30, 15, 250));
    expect(ms('2024-03-01T13:30:00+01:00')).toBe(Date.UTC(2024, 2, 1, 12, 30));
    expect(ms('2024-03-01T07:00:00-0530')).toBe(Date.UTC(2024, 2, 1, 12, 30));
    expect(ms('2024-03-01T12:30:00.123000Z')).toBe(Date.UTC(2024, 2, 1, 12, 30, 0, 123));
  });

  it('reads epoch milliseconds', () => {
    expect(ms('1709251200000')).toBe(Date.UTC(2024, 2, 1));
  });

  it('refuses seconds, microseconds and nanoseconds, saying which unit they look like', () => {
    expect(why('1709251200')).toMatch(/looks like epoch seconds \(2024-03-01T00:00:00.000Z\); send milliseconds \(1709251200000\)/);
    expect(why('1709251200000000')).toMatch(/microseconds/);
    expect(why('1709251200000000000')).toMatch(/nanoseconds/);
    expect(why('1709251200000.5')).toMatch(/not an integer/);
  });

  it('refuses impossible, out-of-range and ambiguous input', () => {
    expect(why('2024-02-30')).toMatch(/not a valid calendar date/);
    expect(why('2024-03-01T24:00:00Z')).toMatch(/not a valid calendar date/);
    expect(why('1999-12-31')).toMatch(/between 2000-01-01 and 2100-01-01/);
    expect(why('2024-03-01T12:00:00.0001Z')).toMatch(/sub-millisecond/);
    expect(why('2024-03-01T12:00:00 01:00')).toMatch(/encode "\+" as %2B/);
    expect(why('03/01/2024')).toMatch(/neither an ISO 8601 time/);
    expect(why('')).toMatch(/empty/);
    expect(why('-5')).toMatch(/negative/);
  });
});
