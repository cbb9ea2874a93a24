import { Unprocessable } from '../errors.ts';

/**
 * Exact decimals as Parquet DECIMAL: the stored text scaled to an integer, written as the
 * little-endian 128-bit two's complement words of an Arrow Decimal128. A column's scale is the
 * largest scale among its values, so no value is rounded.
 */

/** Parquet's DECIMAL is stored as INT64 up to 18 digits (compact, fast), as 16 bytes beyond. */
export const INT64_PRECISION = 18;
export const MAX_PRECISION = 38;

export interface DecimalSpec {
  scale: number;
  precision: number;
}

/** Digits before the point of a non-negative decimal text. */
export function integerDigits(text: string): number {
  const t = text.startsWith('-') ? text.slice(1) : text;
  const dot = t.indexOf('.');
  const int = (dot < 0 ? t : t.slice(0, dot)).replace(/^0+/, '');
  return Math.max(1, int.length);
}

/** The narrowest DECIMAL that holds every value: `digits` before the point and `scale` after. */
export function decimalSpec(column: string, digits: number, scale: number): DecimalSpec {
  const need = digits + scale;
  if (need > MAX_PRECISION) {
    throw new Unprocessable(`${column} values need ${need} decimal digits (${digits} before the point, ${scale} after); Parquet DECIMAL holds 38`, column);
  }
  return { scale, precision: need <= INT64_PRECISION ? INT64_PRECISION : MAX_PRECISION };
}

const POW10 = Array.from({ length: 39 }, (_, k) => 10 ** k);
const TWO32 = 4294967296;

/**
 * Writes text[start, end) scaled by 10^scale into words [4i, 4i + 4) of `out`. Digits accumulate in a float
 * as long as the running value stays a safe integer (it only grows, so every step was exact); the
 * rare longer value goes through BigInt.
 */
export function putDecimal(text: string, start: number, end: number, scale: number, out: Uint32Array, i: number): void {
  let v = 0;
  let frac = -1;
  let neg = false;
  if (start >= end) throw new Error('not a decimal: an empty value');
  for (let k = start; k < end; k++) {
    const c = text.charCodeAt(k);
    if (c === 46 && frac < 0) {
      frac = 0;
      continue;
    }
    if (c === 45 && k === start) {
      neg = true;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9) throw new Error(`not a decimal: ${JSON.stringify(text.slice(start, end))}`);
    v = v * 10 + d;
    if (frac >= 0) frac++;
  }
  if (frac < 0) frac = 0;
  if (frac > scale) throw new Error(`${text.slice(start, end)} has ${frac} digits after the point; the column's scale is ${scale}`);
  v *= POW10[scale - frac]!;
  const o = i * 4;
  if (v <= Number.MAX_SAFE_INTEGER && !neg) {
    // Safe integers have at most 16 digits, within any precision this module picks.
    const lo = v >>> 0;
    out[o] = lo;
    out[o + 1] = (v - lo) / TWO32;
    out[o + 2] = 0;
    out[o + 3] = 0;
    return;
  }
  const digits = text.slice(start, end).replace('-', '').replace('.', '');
  let big = BigInt(digits) * 10n ** BigInt(scale - frac);
  if (neg) big = (1n << 128n) - big;
  for (let w = 0; w < 4; w++) {
    out[o + w] = Number(big & 0xffffffffn);
    big >>= 32n;
  }
}
