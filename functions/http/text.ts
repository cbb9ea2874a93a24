/**
 * Text PostgreSQL cannot store: its `text` and `jsonb` hold no NUL character (SQLSTATE 22021 /
 * 22P05), and a lone UTF-16 surrogate has no UTF-8 form (the driver would silently send U+FFFD).
 * Such input is refused with the parameter named instead of failing the statement.
 */
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/** Why this text cannot be stored, or undefined when it can. */
export function unstorableText(s: string): string | undefined {
  const m = UNSTORABLE.exec(s);
  if (!m) return undefined;
  return m[0] === '\u0000' ? 'contains the NUL character (\\u0000)' : 'contains a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF)';
}
