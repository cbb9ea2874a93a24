/**
 * What domain modules throw when a request cannot be served as asked. Each kind names the
 * offending input (`parameter`) and may carry a stable `slug` for programs to branch on; the HTTP
 * edge (http/middleware.ts) maps the kind to its status and answers problem+json. Domain code thus
 * never speaks HTTP, and the CLI or a test can catch these by kind.
 */
export abstract class DomainError extends Error {
  abstract readonly kind: 'invalid' | 'not-found' | 'unprocessable' | 'unavailable';
  readonly parameter: string | undefined;
  readonly slug: string | undefined;

  constructor(detail: string, parameter?: string, slug?: string) {
    super(detail);
    this.parameter = parameter;
    this.slug = slug;
  }
}

/** The input is malformed or contradicts itself (a filter, a sort, a cursor). */
export class Invalid extends DomainError {
  override name = 'Invalid';
  readonly kind = 'invalid';
}

/** The input names something that is not stored (a run, a series, an interval of a symbol). */
export class NotFound extends DomainError {
  override name = 'NotFound';
  readonly kind = 'not-found';
}

/** The input is well-formed but cannot be accepted as it stands (a reused key, data that is not stored). */
export class Unprocessable extends DomainError {
  override name = 'Unprocessable';
  readonly kind = 'unprocessable';
}

/**
 * The database secret holds no usable URL yet (a fresh stack's generated placeholder, or a value
 * that is not a postgres:// URL). Not a failure of the function: scheduled work skips its turn and
 * says so, until someone stores the URL.
 */
export class DatabaseNotConfiguredError extends Error {
  override name = 'DatabaseNotConfiguredError';
}

/** Something the request needs from elsewhere (an exchange) did not answer; the same request may succeed later. */
export class Unavailable extends DomainError {
  override name = 'Unavailable';
  readonly kind = 'unavailable';
}
