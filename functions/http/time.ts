import { MAX_OPEN_TIME, MIN_OPEN_TIME } from '../candles/candle.ts';

/**
 * Times in queries and bodies: ISO 8601 (`2024-03-01`, `2024-03-01T12:00:00Z`,
 * `2024-03-01T13:00:00+01:00`) or integer epoch milliseconds. Unit mistakes are the classic way
 * to silently load the wrong data, so numbers that look like seconds or microseconds are refused
 * with a message instead of being reinterpreted.
 */
export type TimeResult = { ok: true; ms: number } | { ok: false; message: string };

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|z|[+-]\d{2}:?\d{2})?$/;

const RANGE_TEXT = '2000-01-01 and 2100-01-01';

export function parseTime(raw: string): TimeResult {
  const s = raw.trim();
  if (s === '') return { ok: false, message: 'is empty; give an ISO 8601 time such as 2024-03-01T00:00:00Z or epoch milliseconds' };
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseEpoch(s);
  // A `+01:00` offset whose `+` was not percent-encoded arrives as a space.
  if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}:?\d{2}$/.test(s)) {
    return { ok: false, message: `"${s}" has a space before its UTC offset: encode "+" as %2B in URLs (or use Z)` };
  }
  const m = ISO_RE.exec(s);
  if (!m) {
    return { ok: false, message: `"${truncate(s)}" is neither an ISO 8601 time (2024-03-01T00:00:00Z) nor epoch milliseconds` };
  }
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const fracMs = frac.padEnd(3, '0');
  if (/[1-9]/.test(fracMs.slice(3))) {
    return { ok: false, message: `"${s}" has sub-millisecond precision; candlekeep times are whole milliseconds` };
  }
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), Number(fracMs.slice(0, 3))] as const;
  let ms = Date.UTC(...parts);
  const check = new Date(ms);
  if (
    check.getUTCFullYear() !== parts[0] || check.getUTCMonth() !== parts[1] || check.getUTCDate() !== parts[2] ||
    check.getUTCHours() !== parts[3] || check.getUTCMinutes() !== parts[4] || check.getUTCSeconds() !== parts[5]
  ) {
    return { ok: false, message: `"${s}" is not a valid calendar date and time` };
  }
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offH = Number(digits.slice(0, 2));
    const offM = Number(digits.slice(2));
    if (offH > 23 || offM > 59) return { ok: false, message: `"${s}" has an invalid UTC offset ${zone}` };
    ms -= sign * (offH * 60 + offM) * 60_000;
  }
  return inRange(ms, s);
}

function parseEpoch(s: string): TimeResult {
  if (s.includes('.')) return { ok: false, message: `${s} is not an integer; epoch times are whole milliseconds` };
  const n = Number(s);
  if (n < 0) return { ok: false, message: `${s} is negative; times must be between ${RANGE_TEXT}` };
  // 1e11 ms is March 1973 while 1e11 s is the year 5138: below it a number can only be seconds.
  if (n < 1e11) {
    return {
      ok: false,
      message: `${s} looks like epoch seconds (${isoOrInvalid(n * 1000)}); send milliseconds (${s}000) or an ISO 8601 time`,
    };
  }
  if (n >= 1e14) {
    const unit = n >= 1e17 ? 'nanoseconds' : 'microseconds';
    const asMs = n >= 1e17 ? Math.floor(n / 1e6) : Math.floor(n / 1e3);
    return { ok: false, message: `${s} looks like epoch ${unit} (${isoOrInvalid(asMs)}); send milliseconds or an ISO 8601 time` };
  }
  return inRange(n, s);
}

function inRange(ms: number, s: string): TimeResult {
  if (ms < MIN_OPEN_TIME || ms > MAX_OPEN_TIME) {
    return { ok: false, message: `${truncate(s)} is outside the supported range: times must be between ${RANGE_TEXT}` };
  }
  return { ok: true, ms };
}

function isoOrInvalid(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? 'an invalid date' : d.toISOString();
}

const truncate = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);

export const iso = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : iso(ms));
