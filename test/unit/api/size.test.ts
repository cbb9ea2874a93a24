import { describe, expect, it } from 'vitest';
import { fitPage, lambdaResponseBytes, withinLambdaBytes } from '../../../functions/http/size.ts';
import type { ApiResponse } from '../../../functions/http/response.ts';

const response = (body: string): ApiResponse => ({ statusCode: 200, headers: { 'Content-Type': 'application/json' }, body });

describe('withinLambdaBytes', () => {
  it('agrees with the exact size on either side of the limit, however much of the body escaping grows', () => {
    for (const unit of ['a', '"', '\u0001', '\n', 'é', '€', '😀', '\ud800', '\\']) {
      const res = response(unit.repeat(10_000));
      const exact = lambdaResponseBytes(res);
      expect(withinLambdaBytes(res, exact)).toBe(true);
      expect(withinLambdaBytes(res, exact - 1)).toBe(false);
      expect(withinLambdaBytes(res, exact * 10)).toBe(true);
    }
  });

  it('counts the headers as the runtime sends them', () => {
    const res: ApiResponse = { statusCode: 200, headers: { 'X-Next-Cursor': 'c'.repeat(5000) }, body: '{}' };
    expect(withinLambdaBytes(res, 5000)).toBe(false);
    expect(withinLambdaBytes(res, lambdaResponseBytes(res))).toBe(true);
  });
});

describe('fitPage', () => {
  it('takes the longest prefix that fits, and at least one item', () => {
    const pageOf = (k: number) => 'x'.repeat(k * 10);
    expect(fitPage(100, pageOf, (p) => p.length <= 1000)).toHaveLength(1000);
    expect(fitPage(100, pageOf, (p) => p.length <= 555)).toHaveLength(550);
    expect(fitPage(100, pageOf, () => false)).toHaveLength(10);
  });
});
