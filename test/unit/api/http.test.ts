import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, parseJsonBody } from '../../../functions/http/body.ts';
import { toCsv } from '../../../functions/http/csv.ts';
import { cursorCodec, processCursorKey } from '../../../functions/http/cursor.ts';
import { negotiateFormat } from '../../../functions/http/negotiate.ts';
import { DomainError } from '../../../functions/errors.ts';
import { domainProblem, HttpProblem } from '../../../functions/http/problem.ts';
import { limitParam, listParam, parseQuery, timeParam } from '../../../functions/http/query.ts';

function problemOf(fn: () => unknown): HttpProblem {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpProblem) return err;
    // What the HTTP edge answers for a domain error (a cursor is decoded by domain listings too).
    if (err instanceof DomainError) return domainProblem(err);
    throw err;
  }
  throw new Error('expected an HttpProblem, nothing was thrown');
}

describe('parseJsonBody', () => {
  const schema = z.object({ metrics: z.record(z.string(), z.number()), notes: z.string().optional() });
  const parse = (body: string, type = 'application/json') => parseJsonBody(body, type, schema);

  it('names the field that held NaN or Infinity, which Python writes and JSON lacks', () => {
    const p = problemOf(() => parse('{"metrics": {"sharpe": NaN, "x": 1}}'));
    expect(p).toMatchObject({ status: 422, parameter: 'metrics.sharpe' });
    expect(p.message).toMatch(/^metrics\.sharpe is NaN/);
    expect(problemOf(() => parse('{"metrics": {"a": [1, -Infinity]}}')).parameter).toBe('metrics.a[1]');
  });

  it('leaves NaN and Infinity inside strings alone', () => {
    expect(parse('{"metrics": {"a": 1}, "notes": "NaN and -Infinity are fine here \\" NaN"}')).toEqual({
      metrics: { a: 1 },
      notes: 'NaN and -Infinity are fine here " NaN',
    });
  });

  it('refuses deep nesting before parsing, and NUL characters', () => {
    const deep = `{"metrics": ${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`;
    expect(problemOf(() => parse(deep)).message).toMatch(/nested deeper/);
    expect(problemOf(() => parse('{"metrics": {}, "notes": "a\\u0000"}')).message).toMatch(/NUL/);
  });

  it('wants application/json and a body', () => {
    expect(problemOf(() => parse('{}', 'text/plain')).status).toBe(415);
    expect(problemOf(() => parse('')).status).toBe(400);
    expect(parse('{"metrics": {}}', 'application/json; charset=utf-8')).toEqual({ metrics: {} });
  });
});

const q = (o: Record<string, string[]>) => new Map(Object.entries(o));

describe('parseQuery', () => {
  const schema = z.object({
    start: timeParam('Start.').optional(),
    limit: limitParam(),
    ids: listParam(z.string().regex(/^\w+$/), { max: 3, description: 'Ids.' }).optional(),
  });

  it('applies defaults, splits lists, converts times', () => {
    expect(parseQuery(q({ start: ['2024-03-01'], ids: ['a,b', 'c'] }), schema).values).toEqual({ start: Date.UTC(2024, 2, 1), limit: 1000, ids: ['a', 'b', 'c'] });
  });

  it('rejects unknown and repeated parameters and names the offending one', () => {
    expect(problemOf(() => parseQuery(q({ limt: ['5'] }), schema))).toMatchObject({ status: 400, parameter: 'limt' });
    expect(problemOf(() => parseQuery(q({ limit: ['5', '6'] }), schema))).toMatchObject({ parameter: 'limit' });
    const huge = problemOf(() => parseQuery(q({ limit: ['50000'] }), schema));
    expect(huge.message).toBe('limit must be at most 10000; request pages of up to 10000 and follow nextCursor for the rest');
    expect(problemOf(() => parseQuery(q({ ids: ['a,b,c,d'] }), schema)).message).toMatch(/at most 3/);
  });

  it('refuses a list with an empty value instead of reading it as no list at all', () => {
    for (const given of [[''], ['a,,b'], ['a', ''], ['a,']]) {
      expect(problemOf(() => parseQuery(q({ ids: given }), schema))).toMatchObject({ status: 400, parameter: 'ids', message: expect.stringMatching(/empty value/) });
    }
  });
});

describe('negotiateFormat', () => {
  it('prefers format= over Accept, and CSV only when ranked above JSON', () => {
    expect(negotiateFormat('csv', 'application/json', true)).toBe('csv');
    expect(negotiateFormat(undefined, 'text/csv', true)).toBe('csv');
    expect(negotiateFormat(undefined, 'text/csv;q=0.5, application/json', true)).toBe('json');
    expect(negotiateFormat(undefined, '*/*', true)).toBe('json');
    expect(negotiateFormat(undefined, undefined, true)).toBe('json');
    expect(problemOf(() => negotiateFormat(undefined, 'application/xml', true)).status).toBe(406);
    expect(problemOf(() => negotiateFormat('csv', undefined, false)).status).toBe(400);
  });
});

describe('cursors and CSV', () => {
  it('round-trips a cursor only for the query it came from, and only under the key that signed it', () => {
    const codec = cursorCodec(processCursorKey());
    const c = codec.encode(42, 'q1');
    expect(codec.decode(c, 'q1', z.number())).toBe(42);
    expect(problemOf(() => codec.decode(c, 'q2', z.number())).message).toMatch(/different query/);
    expect(problemOf(() => codec.decode('%%%', 'q1', z.number())).parameter).toBe('cursor');
    // The same position signed under another key, unsigned, or with its payload changed: not issued here.
    const [payload] = c.split('.');
    const forged = Buffer.from(JSON.stringify({ p: 43, q: 'q1' })).toString('base64url');
    for (const bad of [cursorCodec(processCursorKey()).encode(42, 'q1'), payload!, `${forged}.${c.split('.')[1]}`]) {
      expect(problemOf(() => codec.decode(bad, 'q1', z.number())).message).toMatch(/^invalid cursor/);
    }
    expect(() => cursorCodec(Buffer.from('short'))).toThrow(/at least 32 bytes/);
  });

  it('quotes fields that need it and writes nulls as empty', () => {
    expect(toCsv(['a', 'b'], [['x,y', null], ['say "hi"', 1.5], [true, 'line\nbreak']])).toBe('a,b\n"x,y",\n"say ""hi""",1.5\ntrue,"line\nbreak"\n');
  });

  it('prefixes text a spreadsheet would run as a formula with a quote, and leaves numbers as they are', () => {
    const cells = ['=1+1', '+cmd', '-2+3', '@SUM(A1)', '\tx', '-0.5', '+1e-3', '68123.45000000', 'a=b'];
    expect(toCsv(['c'], [...cells.map((c) => [c]), ['\rx'], [-0.5]])).toBe(
      "c\n'=1+1\n'+cmd\n'-2+3\n'@SUM(A1)\n'\tx\n-0.5\n+1e-3\n68123.45000000\na=b\n\"'\rx\"\n-0.5\n",
    );
  });
});
