import type { z } from 'zod';
import { HttpProblem } from './problem.ts';
import { issuesToProblem } from './query.ts';
import { unstorableText } from './text.ts';

/** Bodies above this are refused before parsing (Lambda's own payload limit is 6 MB). */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;
/** JSON nested deeper than this is refused before parsing: no legitimate record needs more. */
export const MAX_JSON_DEPTH = 32;

/**
 * Where JSON's grammar has no NaN or Infinity, Python's `json.dumps` writes them anyway. They are
 * swapped for marker strings before `JSON.parse`, so the schema can name the field that held one
 * instead of failing with a bare syntax error.
 */
export const NON_FINITE_MARKERS = { NaN: '\u0000NaN', Infinity: '\u0000Infinity', '-Infinity': '\u0000-Infinity' } as const;
export const nonFiniteName = (v: unknown): string | undefined =>
  typeof v === 'string' && v.startsWith('\u0000') ? v.slice(1) : undefined;

interface Scan {
  tooDeep: boolean;
  /** A `\u0000` or surrogate escape occurs: strings need checking after parsing. */
  suspectText: boolean;
  /** The text with NaN/Infinity tokens replaced, when there were any. */
  replaced: string | undefined;
}

/** One pass over the text: nesting depth outside strings, `\u0000` and surrogate escapes, bare NaN/Infinity tokens. */
function scan(text: string): Scan {
  let depth = 0;
  let inString = false;
  let out: string[] | undefined;
  let last = 0;
  let suspectText = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) {
        if (text.charCodeAt(i + 1) === 117 && (text.startsWith('0000', i + 2) || /^[dD][89a-fA-F]/.test(text.slice(i + 2, i + 4)))) suspectText = true;
        i++; // skip the escaped character
      } else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > MAX_JSON_DEPTH) return { tooDeep: true, suspectText, replaced: undefined };
    } else if (c === 125 || c === 93) depth--;
    else if (c === 78 || c === 73 || c === 45) {
      for (const token of ['-Infinity', 'Infinity', 'NaN'] as const) {
        if (text.startsWith(token, i)) {
          out ??= [];
          out.push(text.slice(last, i), JSON.stringify(NON_FINITE_MARKERS[token]));
          last = i + token.length;
          i = last - 1;
          break;
        }
      }
    }
  }
  if (!out) return { tooDeep: false, suspectText, replaced: undefined };
  out.push(text.slice(last));
  return { tooDeep: false, suspectText, replaced: out.join('') };
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/**
 * The first field that cannot be stored as sent: a `__proto__` name (JavaScript objects, zod among
 * them, drop it, so the run would silently lose it) or, when `text` is set, a string or name
 * PostgreSQL cannot hold. Marker strings of NaN/Infinity are not text the client sent.
 */
function findUnstorable(value: unknown, path: string, text: boolean, markers: boolean): { path: string; proto: boolean; reason: string } | undefined {
  if (typeof value === 'string') {
    const reason = text && !(markers && nonFiniteName(value)) ? unstorableText(value) : undefined;
    return reason ? { path: path || '(body)', proto: false, reason } : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findUnstorable(value[i], `${path}[${i}]`, text, markers);
      if (hit) return hit;
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '__proto__') return { path: join(path, k), proto: true, reason: '' };
      const reason = text ? unstorableText(k) : undefined;
      if (reason) return { path: join(path, k), proto: false, reason: `name ${reason}` };
      const hit = findUnstorable(v, join(path, k), text, markers);
      if (hit) return hit;
    }
  }
  return undefined;
}

/** The dotted path of the first NaN/Infinity marker in a parsed value. */
function findNonFinite(value: unknown, path: string): { path: string; name: string } | undefined {
  const name = nonFiniteName(value);
  if (name) return { path, name };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findNonFinite(value[i], `${path}[${i}]`);
      if (hit) return hit;
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const hit = findNonFinite(v, join(path, k));
      if (hit) return hit;
    }
  }
  return undefined;
}

export function parseJsonBody<T>(body: string | undefined, contentType: string | undefined, schema: z.ZodType<T>): T {
  if (body === undefined || body === '') throw new HttpProblem(400, 'request body is empty; send a JSON object', { parameter: '(body)' });
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new HttpProblem(415, `Content-Type must be application/json, got ${contentType ? JSON.stringify(contentType) : 'none'}`, {
      parameter: 'Content-Type',
    });
  }
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > MAX_BODY_BYTES) {
    throw new HttpProblem(413, `request body is ${(bytes / 1048576).toFixed(1)} MiB; the limit is ${MAX_BODY_BYTES / 1048576} MiB`, {
      parameter: '(body)',
    });
  }
  const scanned = scan(body);
  if (scanned.tooDeep) {
    throw new HttpProblem(400, `JSON is nested deeper than ${MAX_JSON_DEPTH} levels`, { parameter: '(body)', slug: 'invalid-json' });
  }
  let value: unknown;
  try {
    value = JSON.parse(scanned.replaced ?? body);
  } catch (err) {
    const where = /position \d+(?: \(line \d+ column \d+\))?/.exec((err as Error).message)?.[0];
    throw new HttpProblem(400, `request body is not valid JSON${where ? ` (at ${where})` : ''}`, { parameter: '(body)', slug: 'invalid-json' });
  }
  if (scanned.replaced !== undefined) {
    const hit = findNonFinite(value, '');
    if (hit) {
      throw new HttpProblem(
        422,
        `${hit.path} is ${hit.name}; JSON has no NaN or Infinity and only finite numbers are stored (leave out a value that is undefined, e.g. a Sharpe ratio without trades)`,
        { parameter: hit.path, slug: 'non-finite-number' },
      );
    }
  }
  const bad = findUnstorable(value, '', scanned.suspectText, scanned.replaced !== undefined);
  if (bad?.proto) {
    throw new HttpProblem(422, `${bad.path} is not accepted as a field name: it cannot be stored and read back reliably; rename it`, {
      parameter: bad.path,
      slug: 'invalid-body',
    });
  }
  if (bad) throw new HttpProblem(400, `${bad.path} ${bad.reason}, which cannot be stored`, { parameter: bad.path, slug: 'invalid-text' });
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw issuesToProblem(parsed.error.issues, 422);
  return parsed.data;
}
