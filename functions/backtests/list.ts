import * as z from 'zod';
import { Invalid } from '../errors.ts';
import { queryHash, type CursorCodec } from '../http/cursor.ts';
import { cursorParamSchema, limitParam, listParam, formatParam, timeParam, type DynamicParams } from '../http/query.ts';
import { fitPage } from '../http/size.ts';
import { listRuns } from '../store/backtests.ts';
import type { Queryable } from '../store/db.ts';
import { METRIC_NAME_RE, PARAM_KEY_RE, STRATEGY_RE, TAG_RE, type BacktestPage } from './record.ts';

/*
 * Query syntax for GET /v1/backtests (also in the OpenAPI document):
 *
 *   strategy=a,b                 strategy is a or b
 *   strategyVersion=v1,v2        version is v1 or v2
 *   tag=x,y                      has every one of these tags
 *   tag.any=x,y / tag.none=x,y   has at least one / none of them
 *   created.gte=T / created.lt=T created in [T1, T2)  (ISO 8601 or epoch ms)
 *   metric.<name>.<op>=<number>  op: eq ne gt gte lt lte; metric.<name>=<n> means eq
 *   metric.<name>.exists=true    the run reports the metric (false: it does not)
 *   param.<path>=<value>         parameter equals value; <path> is dotted for nested objects.
 *                                10 / 1.5 / true / false / null are JSON; "10" (quoted) is a string
 *   param.<path>.<op>=<value>    op: eq ne (any scalar), gt gte lt lte (numbers), exists (true/false)
 *   or.<n>.<any filter above>    groups: every filter without a prefix must hold, and when groups
 *                                are given, all filters of at least one group must hold
 *   sort=-created | created | -metric.<name> | metric.<name>   (runs lacking the metric come last)
 */

const OPS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'] as const;
type Op = (typeof OPS)[number];

const strategyItem = z.string().regex(STRATEGY_RE, 'is not a strategy name');
const tagItem = z.string().regex(TAG_RE, 'is not a tag (letters, digits and _ . : -)');

/** The filters that have fixed names; `or.<n>.` groups reuse these same schemas. */
const fixedFilters = {
  strategy: listParam(strategyItem, { max: 50, description: 'Runs of any of these strategies.' }).optional(),
  strategyVersion: listParam(z.string().min(1).max(100), { max: 50, description: 'Runs of any of these strategy versions.' }).optional(),
  tag: listParam(tagItem, { max: 20, description: 'Runs having every one of these tags.' }).optional(),
  'tag.any': listParam(tagItem, { max: 20, description: 'Runs having at least one of these tags.' }).optional(),
  'tag.none': listParam(tagItem, { max: 20, description: 'Runs having none of these tags.' }).optional(),
  'created.gte': timeParam('Runs created at or after this time.').optional(),
  'created.lt': timeParam('Runs created before this time.').optional(),
};

const SORT_RE = /^-?(created|metric\.[A-Za-z][A-Za-z0-9_]{0,63})$/;

export const listQuerySchema = z.object({
  ...fixedFilters,
  sort: z
    .string()
    .regex(SORT_RE, 'must be created, -created, metric.<name> or -metric.<name>')
    .optional()
    .meta({ description: 'Order: `-created` (default, newest first), `created`, `-metric.<name>` (highest first) or `metric.<name>`. Runs lacking the metric come last.' }),
  limit: limitParam(100, 1000),
  cursor: cursorParamSchema,
  format: formatParam,
});
export type ListQuery = z.output<typeof listQuerySchema>;

const METRIC_FILTER_RE = /^metric\.([A-Za-z][A-Za-z0-9_]{0,63})(?:\.(eq|ne|gt|gte|lt|lte|exists))?$/;
const PARAM_FILTER_RE = /^param\.([A-Za-z_][A-Za-z0-9_\-]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_\-]{0,63}){0,7})$/;
const GROUP_RE = /^or\.([1-9]\d?)\.(.+)$/;

export const listDynamicParams: DynamicParams[] = [
  {
    pattern: /^metric\./,
    name: 'metric.<name>.<op>',
    description:
      'Metric filter: `metric.sharpe.gte=1.5`, `metric.maxDrawdown.lt=0.2`; op is eq, ne, gt, gte, lt or lte (`metric.<name>=<n>` means eq); ' +
      '`metric.<name>.exists=true|false` tests presence.',
  },
  {
    pattern: /^param\./,
    name: 'param.<path>.<op>',
    description:
      'Parameter filter: `param.fast=10` (equality; `10`, `1.5`, `true`, `false`, `null` are JSON values, `"10"` in quotes is the string), ' +
      '`param.risk.stop.lte=0.05` (dotted path into nested objects; ops eq, ne, gt, gte, lt, lte, exists). A parameter literally named like an op is reached with `.eq`.',
  },
  {
    pattern: /^or\./,
    name: 'or.<n>.<filter>',
    description:
      'OR groups: `or.1.metric.sharpe.gte=2&or.2.tag=prod&or.2.metric.sharpe.gte=1` means (sharpe ≥ 2) OR (tagged prod AND sharpe ≥ 1). ' +
      'Filters without a prefix apply to every run; groups 1-99 accept every filter above.',
  },
];

/** One filter of a listing, as the store turns it into SQL. */
export type Clause =
  | { kind: 'strategy' | 'version' | 'tagsAll' | 'tagsAny' | 'tagsNone'; values: string[] }
  | { kind: 'created'; op: 'gte' | 'lt'; ms: number }
  | { kind: 'metric'; name: string; op: Op; value: number }
  | { kind: 'metricExists'; name: string; exists: boolean }
  | { kind: 'param'; path: string[]; op: Op; value: unknown }
  | { kind: 'paramExists'; path: string[]; exists: boolean };

const booleanValue = (v: string, param: string): boolean => {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new Invalid(`${param} must be true or false`, param);
};

const numberValue = (v: string, param: string): number => {
  const n = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new Invalid(`${param} must be a finite number, got ${JSON.stringify(v)}`, param);
  return n;
};

/** A parameter value as JSON when it reads as a scalar literal, else the text itself. */
function scalarValue(v: string, param: string): unknown {
  if (v === 'true' || v === 'false' || v === 'null') return JSON.parse(v);
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return numberValue(v, param);
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    try {
      const s: unknown = JSON.parse(v);
      if (typeof s === 'string') return s;
    } catch {
      // not a JSON string literal: compare as written
    }
  }
  return v;
}

function fixedClause(name: keyof typeof fixedFilters, value: unknown): Clause | undefined {
  if (value === undefined) return undefined;
  switch (name) {
    case 'strategy':
      return { kind: 'strategy', values: value as string[] };
    case 'strategyVersion':
      return { kind: 'version', values: value as string[] };
    case 'tag':
      return { kind: 'tagsAll', values: value as string[] };
    case 'tag.any':
      return { kind: 'tagsAny', values: value as string[] };
    case 'tag.none':
      return { kind: 'tagsNone', values: value as string[] };
    case 'created.gte':
      return { kind: 'created', op: 'gte', ms: value as number };
    case 'created.lt':
      return { kind: 'created', op: 'lt', ms: value as number };
  }
}

/** One dynamic filter (metric.*, param.*) or, inside a group, any filter. */
function dynamicClause(name: string, values: string[], param: string, inGroup: boolean): Clause {
  if (inGroup && Object.hasOwn(fixedFilters, name)) {
    const schema = fixedFilters[name as keyof typeof fixedFilters];
    const input = name === 'created.gte' || name === 'created.lt' ? values[0] : values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    const parsed = schema.safeParse(input);
    if (!parsed.success) throw new Invalid(`${param} ${parsed.error.issues[0]?.message ?? 'is invalid'}`, param);
    return fixedClause(name as keyof typeof fixedFilters, parsed.data)!;
  }
  if (values.length > 1) throw new Invalid(`query parameter ${param} is given ${values.length} times; give it once`, param);
  const value = values[0] ?? '';
  const m = METRIC_FILTER_RE.exec(name);
  if (m) {
    const [, metric, op = 'eq'] = m;
    if (op === 'exists') return { kind: 'metricExists', name: metric!, exists: booleanValue(value, param) };
    return { kind: 'metric', name: metric!, op: op as Op, value: numberValue(value, param) };
  }
  const p = PARAM_FILTER_RE.exec(name);
  if (p) {
    const segments = p[1]!.split('.');
    const last = segments[segments.length - 1]!;
    let op: Op | 'exists' = 'eq';
    if (segments.length > 1 && ((OPS as readonly string[]).includes(last) || last === 'exists')) {
      op = last as Op | 'exists';
      segments.pop();
    }
    if (!segments.every((s) => PARAM_KEY_RE.test(s))) throw new Invalid(`${param} names an invalid parameter path`, param);
    if (op === 'exists') return { kind: 'paramExists', path: segments, exists: booleanValue(value, param) };
    if (op === 'eq' || op === 'ne') return { kind: 'param', path: segments, op, value: scalarValue(value, param) };
    return { kind: 'param', path: segments, op, value: numberValue(value, param) };
  }
  if (name.startsWith('metric.')) {
    throw new Invalid(`${param} is not a metric filter; write metric.<name>.<op>=<number> with op eq, ne, gt, gte, lt, lte or exists`, param);
  }
  if (name.startsWith('param.')) {
    throw new Invalid(`${param} is not a parameter filter; write param.<name>=<value> or param.<path>.<op>=<value>`, param);
  }
  throw new Invalid(
    `unknown filter ${JSON.stringify(param)}; filters are strategy, strategyVersion, tag, tag.any, tag.none, created.gte, created.lt, metric.<name>.<op>, param.<path>.<op>`,
    param,
  );
}

export interface Filter {
  all: Clause[];
  any: Clause[][];
}

export function buildFilter(query: ListQuery, dynamic: ReadonlyMap<string, string[]>): Filter {
  const all: Clause[] = [];
  for (const name of Object.keys(fixedFilters) as (keyof typeof fixedFilters)[]) {
    const c = fixedClause(name, query[name]);
    if (c) all.push(c);
  }
  const groups = new Map<number, Clause[]>();
  for (const [param, values] of dynamic) {
    const g = GROUP_RE.exec(param);
    if (g) {
      const n = Number(g[1]);
      if (g[2]!.startsWith('or.')) throw new Invalid(`${param}: groups do not nest`, param);
      const list = groups.get(n) ?? [];
      list.push(dynamicClause(g[2]!, values, param, true));
      groups.set(n, list);
    } else {
      all.push(dynamicClause(param, values, param, false));
    }
  }
  return { all, any: [...groups.entries()].sort(([a], [b]) => a - b).map(([, c]) => c) };
}

/** The creation time as the listing writes it into a cursor (microseconds, UTC), a real instant. */
const createdText = z.string().refine((t) => {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/.exec(t);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const back = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return y >= 2000 && y < 2100 && back.getUTCMonth() === mo - 1 && back.getUTCDate() === d && back.getUTCHours() === h && back.getUTCMinutes() === mi && back.getUTCSeconds() === s;
});
// Every value of a cursor reaches SQL, so each is checked for the sort it belongs to.
const createdKey = z.tuple([createdText, z.uuid()]);
const metricKey = z.tuple([z.number().nullable(), z.uuid()]);

/**
 * Lists runs newest first (or by a metric) with keyset pagination. A page holds up to `limit` runs,
 * fewer when `fits` says the answer would be too big: it then ends at the longest prefix that
 * fits, and its cursor continues after that prefix's last run.
 */
export async function listBacktests(
  db: Queryable,
  cursors: CursorCodec,
  query: ListQuery,
  dynamic: ReadonlyMap<string, string[]>,
  fits: (page: BacktestPage) => boolean = () => true,
): Promise<BacktestPage> {
  const filter = buildFilter(query, dynamic);
  const sort = query.sort ?? '-created';
  const desc = sort.startsWith('-');
  const field = desc ? sort.slice(1) : sort;
  const metric = field.startsWith('metric.') ? field.slice('metric.'.length) : undefined;
  if (metric && !METRIC_NAME_RE.test(metric)) throw new Invalid('sort names an invalid metric', 'sort');
  const hash = queryHash(['backtests', sort, filter]);
  let after: [number | string | null, string] | undefined;
  if (query.cursor) after = metric ? cursors.decode(query.cursor, hash, metricKey) : cursors.decode(query.cursor, hash, createdKey);
  const rows = await listRuns(db, { filter, metric, desc, after, limit: query.limit + 1 });
  const pageOf = (k: number): BacktestPage => {
    const last = rows[k - 1];
    return { runs: rows.slice(0, k).map((r) => r.run), nextCursor: rows.length > k && last ? cursors.encode([last.sortValue, last.run.id], hash) : null };
  };
  // One run always fits: its stored parts are capped (MAX_PARAMETERS_BYTES; curve and trades are not listed).
  return fitPage(Math.min(rows.length, query.limit), pageOf, fits);
}
