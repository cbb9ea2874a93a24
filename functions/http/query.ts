import * as z from 'zod';
import { badRequest, HttpProblem, type ProblemIssue } from './problem.ts';
import { iso, parseTime } from './time.ts';

/** Query parameters as API Gateway's `multiValueQueryStringParameters` deliver them: name → values. */
export type QueryValues = ReadonlyMap<string, string[]>;

/** A family of parameters whose names follow a pattern (e.g. `metric.sharpe.gte`), validated by the route itself. */
export interface DynamicParams {
  pattern: RegExp;
  /** How the family is named in messages and the OpenAPI document, e.g. `metric.<name>.<op>`. */
  name: string;
  description: string;
}

// ---- parameter schemas: the same objects validate requests and generate the OpenAPI document ----

/** A time as ISO 8601 or epoch milliseconds, parsed to epoch milliseconds. */
export const timeParam = (description: string) =>
  z
    .string()
    .transform((s, ctx) => {
      const r = parseTime(s);
      if (r.ok) return r.ms;
      ctx.issues.push({ code: 'custom', message: r.message, input: s });
      return z.NEVER;
    })
    .meta({
      minLength: 1,
      description: `${description} ISO 8601 (\`2024-03-01\`, \`2024-03-01T12:00:00Z\`) or epoch milliseconds; times without an offset are UTC. Epoch seconds and microseconds are rejected.`,
      examples: ['2024-03-01T00:00:00Z', '1709251200000'],
    });

/** A bounded whole number; the message for an oversized value says what to do instead. */
export function intParam(opts: { min: number; max: number; default?: number; description: string; tooBig?: string }) {
  return z
    .string()
    .regex(/^\d{1,15}$/, 'must be a whole number')
    .transform(Number)
    .pipe(
      z
        .number()
        .min(opts.min, `must be at least ${opts.min}`)
        .max(opts.max, opts.tooBig ?? `must be at most ${opts.max}`),
    )
    .meta({
      type: 'integer',
      minimum: opts.min,
      maximum: opts.max,
      ...(opts.default !== undefined ? { default: opts.default } : {}),
      description: opts.description,
    });
}

/** The page size: default 1000, at most 10000 (or the given bounds). */
export function limitParam(def = 1000, max = 10_000) {
  return intParam({
    min: 1,
    max,
    default: def,
    description: `Page size, 1 to ${max} (default ${def}). Use \`cursor\` for further pages.`,
    tooBig: `must be at most ${max}; request pages of up to ${max} and follow nextCursor for the rest`,
  })
    .optional()
    .transform((v) => v ?? def);
}

/**
 * A list parameter: repeated (`ids=a&ids=b`) or comma-separated (`ids=a,b`). The item schema
 * validates each entry.
 */
export function listParam<T extends z.ZodType<unknown, string>>(item: T, opts: { min?: number; max: number; description: string }) {
  let arr = z.array(item).max(opts.max, `accepts at most ${opts.max} values`);
  if (opts.min) arr = arr.min(opts.min, `needs at least ${opts.min} values`);
  return arr.meta({ description: `${opts.description} Repeat the parameter or separate values with commas.` });
}

export const cursorParamSchema = z
  .string()
  .max(2048, 'is too long to be a cursor this API issued')
  .optional()
  .meta({ description: 'Opaque position from `nextCursor` of the previous page; repeat every other parameter unchanged.' });

export const formatParam = z
  .enum(['json', 'csv'], { error: (i) => `unknown format ${JSON.stringify(i.input)}; expected json or csv` })
  .optional()
  .meta({ description: 'Response format; overrides the Accept header. `csv` returns text/csv with a header row.' });

// ---- parsing ----

type Shape = z.core.$ZodLooseShape;

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (let i = 0; i < 10; i++) {
    const def = s._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else break;
  }
  return s;
}

export const isListSchema = (schema: z.core.$ZodType) => unwrap(schema)._zod.def.type === 'array';

export function issuesToProblem(issues: readonly z.core.$ZodIssue[], status: number, prefix: string[] = []): HttpProblem {
  const list: ProblemIssue[] = issues.map((i) => {
    const path = [...prefix, ...i.path.map(String)];
    const parameter = path.length ? path.join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]') : '(body)';
    let message = i.message;
    if (i.code === 'unrecognized_keys') {
      const keys = (i as { keys: string[] }).keys;
      const at = parameter === '(body)' ? '' : ` in ${parameter}`;
      return { parameter: keys.length ? [...path, keys[0]!].join('.') : parameter, detail: `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(k)).join(', ')}${at}` };
    }
    // zod reports a missing field as a type mismatch against undefined; say it plainly.
    if (i.code === 'invalid_type' && /received undefined$/.test(i.message)) message = 'is required';
    // Messages that already name the field ("unknown interval \"2m\"…") read badly with it twice.
    const field = [...path].reverse().find((p) => /^[A-Za-z_]\w*$/.test(p));
    const named = field !== undefined && new RegExp(`\\b${field}\\b`).test(message);
    return { parameter, detail: named ? message : `${parameter} ${message}` };
  });
  const first = list[0] ?? { parameter: '(unknown)', detail: 'invalid request' };
  return new HttpProblem(status, first.detail, { parameter: first.parameter, errors: list, slug: status === 400 ? 'invalid-parameter' : 'invalid-body' });
}

export interface ParsedQuery<T> {
  values: T;
  /** Parameters that matched one of the route's dynamic families, still unvalidated. */
  dynamic: Map<string, string[]>;
}

/**
 * Validates query parameters against a zod object: unknown names are rejected (a typo such as
 * `interal=1h` must not silently fall back to a default), a scalar given twice is rejected, list
 * parameters accept repeats and commas.
 */
export function parseQuery<S extends Shape>(
  query: QueryValues,
  schema: z.ZodObject<S>,
  dynamic: readonly DynamicParams[] = [],
): ParsedQuery<z.output<z.ZodObject<S>>> {
  const shape = schema.shape;
  const input: Record<string, unknown> = {};
  const dyn = new Map<string, string[]>();
  for (const [name, values] of query) {
    const field = Object.hasOwn(shape, name) ? (shape[name] as z.core.$ZodType) : undefined;
    if (!field) {
      if (dynamic.some((d) => d.pattern.test(name))) {
        dyn.set(name, values);
        continue;
      }
      const accepted = [...Object.keys(shape), ...dynamic.map((d) => d.name)].join(', ');
      throw badRequest(
        `unknown query parameter ${JSON.stringify(name)}; this endpoint accepts ${accepted || 'no query parameters'}`,
        name,
        'unknown-parameter',
      );
    }
    if (isListSchema(field)) {
      const items = values.flatMap((v) => v.split(',')).map((v) => v.trim());
      // `include=` or `a,,b` is a list with an empty value in it, not an empty list: say so rather
      // than answer as if the parameter had not been given.
      if (items.includes('')) throw badRequest(`query parameter ${name} has an empty value; give each value, e.g. ${name}=a,b, or leave ${name} out`, name);
      input[name] = items;
    } else {
      if (values.length > 1) throw badRequest(`query parameter ${name} is given ${values.length} times; give it once`, name);
      input[name] = values[0];
    }
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw issuesToProblem(parsed.error.issues, 400);
  return { values: parsed.data, dynamic: dyn };
}

/** Refuses a range that ends before it starts (a swapped pair of times) instead of answering nothing. */
export function checkTimeRange(q: { start?: number | undefined; end?: number | undefined }): void {
  if (q.start !== undefined && q.end !== undefined && q.end <= q.start) {
    throw badRequest(`end (${iso(q.end)}) must be after start (${iso(q.start)})`, 'end', 'inverted-range');
  }
}
