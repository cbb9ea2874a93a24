import { describe, expect, it } from 'vitest';
import { toPlainDecimal } from '../../../functions/exchanges/decimal.ts';

describe('toPlainDecimal', () => {
  it('keeps plain text exactly, trailing zeros included', () => {
    for (const s of ['0', '68123.45000000', '30300.0', '0.00000001', '17071']) expect(toPlainDecimal(s)).toBe(s);
  });

  it('expands exponent notation digit by digit', () => {
    expect(toPlainDecimal('1e-8')).toBe('0.00000001');
    expect(toPlainDecimal('1.5E-7')).toBe('0.00000015');
    expect(toPlainDecimal('2.50e3')).toBe('2500');
    expect(toPlainDecimal('1.2345e2')).toBe('123.45');
    expect(toPlainDecimal('9.99e+20')).toBe('999000000000000000000');
    expect(toPlainDecimal('0e0')).toBe('0');
  });

  it('rejects negatives and non-numbers', () => {
    for (const s of ['-1', '-1e-8', '', 'NaN', '1.', '.5', '0x10', '1e', '1e-999']) expect(toPlainDecimal(s)).toBeUndefined();
  });
});
