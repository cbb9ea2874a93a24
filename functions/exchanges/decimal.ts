import { DECIMAL_RE } from '../candles/candle.ts';

const NUMBER_TEXT_RE = /^(\d+)(?:\.(\d+))?[eE]([+-]?\d+)$/;

/**
 * Returns the decimal text in plain notation, or undefined when it is not a non-negative number.
 * Plain text is returned untouched (trailing zeros are part of what the exchange sent); exponent
 * notation such as JSON's `1e-8` is expanded digit by digit, never through a float.
 */
export function toPlainDecimal(text: string): string | undefined {
  if (DECIMAL_RE.test(text)) return text;
  const m = NUMBER_TEXT_RE.exec(text);
  if (!m) return undefined;
  const [, int = '', frac = '', expText = '0'] = m;
  const exp = Number(expText);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 60) return undefined;
  const digits = int + frac;
  const point = int.length + exp; // position of the decimal point within `digits`
  let whole: string;
  let fraction: string;
  if (point <= 0) {
    whole = '0';
    fraction = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    whole = digits + '0'.repeat(point - digits.length);
    fraction = '';
  } else {
    whole = digits.slice(0, point);
    fraction = digits.slice(point);
  }
  whole = whole.replace(/^0+(?=\d)/, '');
  // Exponent forms carry no meaningful trailing zeros, so the shortest exact form is returned.
  fraction = fraction.replace(/0+$/, '');
  const plain = fraction ? `${whole}.${fraction}` : whole;
  return DECIMAL_RE.test(plain) ? plain : undefined;
}
