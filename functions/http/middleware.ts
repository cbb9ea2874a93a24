import type { Logger } from '@aws-lambda-powertools/logger';
import type middy from '@middy/core';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { DomainError } from '../errors.ts';
import { redactError, redactSecrets } from '../lambda-kit/redact.ts';
import { domainProblem, HttpProblem } from './problem.ts';
import { problem } from './response.ts';

// SQLSTATE classes that mean "the database is unavailable right now", not "this request is wrong".
const UNAVAILABLE_CODES = /^(08|53|57P0[1-3])/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);

function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && (UNAVAILABLE_CODES.test(e.code) || UNAVAILABLE_ERRNO.has(e.code))) return true;
  return typeof e?.message === 'string' && /connection (terminated|timeout)|timeout exceeded when trying to connect/i.test(e.message);
}

function requestIdOf(event: unknown, context: { awsRequestId?: string } | undefined): string | undefined {
  const fromEvent = (event as { requestContext?: { requestId?: unknown } } | null)?.requestContext?.requestId;
  return typeof fromEvent === 'string' ? fromEvent : context?.awsRequestId;
}

/**
 * Turns every error into a problem+json response. Expected ones carry their own status and message
 * (`HttpProblem`) or a kind that decides the status (`DomainError`); anything else is logged with its stack and answered with a generic 500 (or
 * 503 while the database is unreachable) that quotes the request id, never the error itself. What is
 * logged is redacted here, whatever logger the caller passed: an error can quote a connection string.
 */
export function httpProblems(opts: { logger: Logger }): middy.MiddlewareObj<unknown, APIGatewayProxyResult> {
  return {
    onError: async (request) => {
      const err = request.error;
      const requestId = requestIdOf(request.event, request.context as { awsRequestId?: string });
      if (err instanceof HttpProblem) {
        if (err.status >= 500) opts.logger.error('request failed', { status: err.status, detail: redactSecrets(err.message) });
        request.response = problem(err, requestId);
        return;
      }
      if (err instanceof DomainError) {
        request.response = problem(domainProblem(err), requestId);
        return;
      }
      const code = (err as { code?: unknown } | null)?.code;
      if (code === '57014') {
        // A statement timeout or a cancel: the request asked for more work than its time allows.
        opts.logger.warn('statement cancelled', { error: redactError(err) });
        request.response = problem(
          new HttpProblem(503, 'the request took too long and was cancelled; narrow the range or lower limit, then retry', {
            slug: 'timeout',
            headers: { 'Retry-After': '1' },
          }),
          requestId,
        );
        return;
      }
      if (code === '53300') {
        request.response = problem(
          new HttpProblem(503, `the API is busy: every database session it may use is taken; retry shortly${requestId ? ` (request ${requestId})` : ''}`, {
            slug: 'busy',
            headers: { 'Retry-After': '1' },
          }),
          requestId,
        );
        return;
      }
      if (isUnavailable(err)) {
        opts.logger.error('database unavailable', { error: redactError(err) });
        request.response = problem(
          new HttpProblem(503, `the database is unavailable; retry shortly${requestId ? ` (request ${requestId})` : ''}`, {
            headers: { 'Retry-After': '5' },
          }),
          requestId,
        );
        return;
      }
      opts.logger.error('unhandled error', { error: redactError(err) });
      request.response = problem(
        new HttpProblem(500, `internal error${requestId ? `; quote request id ${requestId} when reporting it` : ''}`),
        requestId,
      );
    },
  };
}

/**
 * CORS on actual responses for the configured origins only (API Gateway answers the preflight).
 * With no origins configured nothing is added: browsers on other sites cannot read the API.
 */
export function cors(origins: readonly string[]): middy.MiddlewareObj<unknown, APIGatewayProxyResult> {
  const allow = (request: middy.Request<unknown, APIGatewayProxyResult>) => {
    const res = request.response;
    if (!res || origins.length === 0) return;
    const headers = (request.event as { headers?: Record<string, string | undefined> | null } | null)?.headers ?? {};
    const origin = Object.entries(headers).find(([k]) => k.toLowerCase() === 'origin')?.[1];
    if (!origin || !(origins.includes('*') || origins.includes(origin))) return;
    res.headers = {
      ...res.headers,
      'Access-Control-Allow-Origin': origins.includes('*') ? '*' : origin,
      'Access-Control-Expose-Headers': 'X-Next-Cursor, X-Resampled-From, X-Gap-Policy, Location, Idempotent-Replayed',
      Vary: 'Origin',
    };
  };
  return { after: async (request) => allow(request), onError: async (request) => allow(request) };
}
