import type { DomainError } from '../errors.ts';

/**
 * Errors as RFC 9457 problem details (`application/problem+json`). Every error a client can see is
 * an `HttpProblem` built here (domain errors are mapped to one by `domainProblem`): a status, a
 * short title, a detail a person can act on, and the offending parameter when there is one. Internals (stack traces, SQL, driver messages) never reach
 * a response; the error middleware logs them instead.
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemIssue {
  parameter: string;
  detail: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  parameter?: string;
  /** Every validation issue when there was more than one; `detail` and `parameter` repeat the first. */
  errors?: ProblemIssue[];
  /** On a 403 for a key whose scope is too weak: the scope the route needs (read, write or admin). */
  requiredScope?: string;
  requestId?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  406: 'Not acceptable',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable content',
  429: 'Too many requests',
  500: 'Internal server error',
  501: 'Not implemented',
  503: 'Service unavailable',
};

/** A stable machine-readable `type` per kind of problem, so clients can branch without parsing text. */
export const problemType = (slug: string) => `https://candlekeep.dev/problems/${slug}`;

const DEFAULT_SLUGS: Record<number, string> = {
  400: 'invalid-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  406: 'not-acceptable',
  409: 'conflict',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  422: 'invalid-body',
  429: 'throttled',
  500: 'internal-error',
  501: 'not-configured',
  503: 'unavailable',
};

export interface ProblemOptions {
  parameter?: string | undefined;
  slug?: string;
  errors?: ProblemIssue[];
  headers?: Record<string, string>;
  requiredScope?: string;
}

export class HttpProblem extends Error {
  override name = 'HttpProblem';
  readonly status: number;
  readonly parameter: string | undefined;
  readonly slug: string;
  readonly errors: ProblemIssue[] | undefined;
  readonly headers: Record<string, string>;
  readonly requiredScope: string | undefined;

  constructor(status: number, detail: string, opts: ProblemOptions = {}) {
    super(detail);
    this.status = status;
    this.parameter = opts.parameter;
    this.slug = opts.slug ?? DEFAULT_SLUGS[status] ?? 'error';
    this.errors = opts.errors;
    this.headers = opts.headers ?? {};
    this.requiredScope = opts.requiredScope;
  }

  toProblem(requestId?: string): Problem {
    const p: Problem = {
      type: problemType(this.slug),
      title: TITLES[this.status] ?? 'Error',
      status: this.status,
      detail: this.message,
    };
    if (this.parameter !== undefined) p.parameter = this.parameter;
    if (this.errors && this.errors.length > 1) p.errors = this.errors;
    if (this.requiredScope !== undefined) p.requiredScope = this.requiredScope;
    if (requestId) p.requestId = requestId;
    return p;
  }
}

const DOMAIN_STATUS: Record<DomainError['kind'], number> = { invalid: 400, 'not-found': 404, unprocessable: 422, unavailable: 503 };

/** The problem a domain error answers with: its kind decides the status, the rest is carried over. */
export const domainProblem = (err: DomainError) =>
  new HttpProblem(DOMAIN_STATUS[err.kind], err.message, { parameter: err.parameter, ...(err.slug ? { slug: err.slug } : {}) });

export const badRequest = (detail: string, parameter?: string, slug?: string) =>
  new HttpProblem(400, detail, { parameter, ...(slug ? { slug } : {}) });

export function problemBody(status: number, detail: string, opts: { parameter?: string; slug?: string; requestId?: string; headers?: Record<string, string> } = {}): Problem {
  return new HttpProblem(status, detail, opts).toProblem(opts.requestId);
}
