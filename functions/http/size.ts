import type { ApiResponse } from './response.ts';

/**
 * How big an answer may be. A Lambda's synchronous response is capped at 6 MB (6,291,456 bytes) as
 * the runtime sends it: the whole proxy result as JSON, so the body counts escaped (`"` as `\"`),
 * plus status and headers. Past it API Gateway answers 502 to every client until the data changes,
 * so each route bounds its answer below this budget, which leaves room for headers.
 */
export const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;
export const ANSWER_BUDGET_BYTES = 5 * 1024 * 1024;

/** The bytes a response takes in the Lambda's answer. */
export const lambdaResponseBytes = (res: ApiResponse): number => Buffer.byteLength(JSON.stringify(res), 'utf8');

/**
 * Whether a response takes at most `limit` bytes in the Lambda's answer. Escaped and in UTF-8, a
 * UTF-16 unit of the body takes at most six bytes (a control character or lone surrogate as
 * \uXXXX; any other character at most three, or four for a pair), so an answer that fits even so is
 * decided from the body's length alone: neither serialised again nor scanned (an API read of
 * 1,000 candles would otherwise copy or walk its 170 KB body once more only to measure it). Only
 * one near the limit is measured exactly.
 */
export function withinLambdaBytes(res: ApiResponse, limit: number): boolean {
  const rest = Buffer.byteLength(JSON.stringify({ ...res, body: '' }), 'utf8');
  if (6 * res.body.length + rest <= limit) return true;
  return lambdaResponseBytes(res) <= limit;
}

/**
 * The page of the first k of n items for the largest k whose answer `fits` (and at least one item:
 * callers cap each item's size so that one always fits). Fitting is monotone: a prefix of a page is
 * never bigger than the page. A page that fits is measured once; one over budget about log2(n) times.
 */
export function fitPage<P>(n: number, pageOf: (k: number) => P, fits: (page: P) => boolean): P {
  const full = pageOf(n);
  if (n <= 1 || fits(full)) return full;
  let lo = 1;
  let hi = n;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (fits(pageOf(mid))) lo = mid;
    else hi = mid;
  }
  return pageOf(lo);
}
