/**
 * Secrets (the database password above all) must never reach a log line or a response, whatever
 * error carried them there: a driver error's `input`, a URL quoted in a message, a cause's stack.
 * Everything that leaves the process as text passes through `redactSecrets`, which removes:
 *
 * - the password of any `scheme://user:password@host` URL (an unencoded `#`, `/` or `@` included);
 * - `password=…` pairs (libpq keyword strings, query strings);
 * - every value handed to `rememberSecret`, wherever it appears, even as a fragment of a URL that
 *   a parser cut in the wrong place.
 */

export const REDACTED = '[redacted]';

// The password runs to the last '@' before whitespace: an unencoded '@', '#' or '/' in it must not
// end the match early and leave its tail in the text.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)\S*@/gi;
const PASSWORD_PAIRS = /\b(password|passwd|pwd)=[^\s&;,'"]+/gi;
// Keys whose value is a secret as a whole, whatever it looks like.
const SECRET_KEYS = /^(password|passwd|pwd|secret|token|authorization|x-api-key|api-?key|connection-?string|database-?url)$/i;
// Shorter fragments would redact ordinary words; a 3-character piece of a password reveals little.
const MIN_FRAGMENT = 4;

const remembered = new Set<string>();
// Longest first, so a fragment never leaves part of its whole behind.
let longestFirst: string[] = [];

/** Redacts `value` (and, if it is a URL-ish password, the pieces a parser could cut it into) from now on. */
export function rememberSecret(value: string | undefined): void {
  if (!value || value.length < MIN_FRAGMENT) return;
  remembered.add(value);
  for (const piece of value.split(/[#/?@:]/)) if (piece.length >= MIN_FRAGMENT) remembered.add(piece);
  try {
    const decoded = decodeURIComponent(value);
    if (decoded !== value && decoded.length >= MIN_FRAGMENT) remembered.add(decoded);
  } catch {
    // not percent-encoded text: the raw value is already remembered
  }
  longestFirst = [...remembered].sort((a, b) => b.length - a.length);
}

export function redactSecrets(text: string): string {
  let out = text.replace(URL_CREDENTIALS, `$1${REDACTED}@`).replace(PASSWORD_PAIRS, `$1=${REDACTED}`);
  for (const secret of longestFirst) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out;
}

/**
 * A `JSON.stringify` replacer that redacts every string it meets, and the whole value of keys that
 * name a secret. Powertools calls it for each key of a log item, an error's own properties
 * (`input`, `cause`…) included, so no property escapes it.
 */
export function redactingReplacer(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  return SECRET_KEYS.test(key) ? REDACTED : redactSecrets(value);
}

/**
 * An error as a plain object with every string redacted: name, message, stack, its own properties
 * and its causes. For loggers that may not carry the redacting replacer (a caller's own).
 */
export function redactError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return typeof err === 'string' ? redactSecrets(err) : err;
  const out: Record<string, unknown> = { name: err.name, message: redactSecrets(err.message) };
  if (err.stack) out.stack = redactSecrets(err.stack);
  for (const [key, value] of Object.entries(err)) {
    if (key === 'cause') continue;
    out[key] = typeof value === 'string' ? redactingReplacer(key, value) : value instanceof Error ? redactError(value, depth + 1) : value;
  }
  // A cause chain is short in practice; the bound only guards against a cycle.
  if (err.cause !== undefined && depth < 4) out.cause = redactError(err.cause, depth + 1);
  return out;
}
