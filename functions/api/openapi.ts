import * as z from 'zod';
import { backtestPageSchema, backtestSchema, comparisonSchema, createBacktestSchema, equityCurvePageSchema, tradePageSchema } from '../backtests/record.ts';
import { backfillRequestSchema } from '../ingest/backfill-request.ts';
import { exportRequestSchema } from '../exports/request.ts';
import { exportStatusSchema } from '../exports/status.ts';
import { PROBLEM_CONTENT_TYPE } from '../http/problem.ts';
import { isListSchema } from '../http/query.ts';
import { API_VERSION, needsKey, type Route } from './route.ts';
import { problemSchema, requestRegistry, responseRegistry } from './schemas.ts';

type Json = Record<string, unknown>;

const register = (registry: typeof responseRegistry, schema: z.ZodType, id: string) => {
  if (!registry.has(schema)) registry.add(schema, { id });
};
register(responseRegistry, backtestSchema, 'Backtest');
register(responseRegistry, backtestPageSchema, 'BacktestPage');
register(responseRegistry, comparisonSchema, 'Comparison');
register(responseRegistry, tradePageSchema, 'TradePage');
register(responseRegistry, equityCurvePageSchema, 'EquityCurvePage');
register(requestRegistry, createBacktestSchema, 'CreateBacktest');
register(requestRegistry, backfillRequestSchema, 'BackfillRequest');
register(responseRegistry, exportStatusSchema, 'ExportStatus');
register(requestRegistry, exportRequestSchema, 'ExportRequest');

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** JSON Schema of one zod schema, without the `$schema`/`$id` keys OpenAPI 3.1 does not want inline. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _s, $id: _i, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

function components(registry: typeof responseRegistry, io: 'input' | 'output'): Record<string, Json> {
  const out = z.toJSONSchema(registry, { io, unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, Json> };
  return Object.fromEntries(
    Object.entries(out.schemas).map(([id, s]) => {
      const { $schema: _s, $id: _i, ...rest } = s;
      return [id, rest];
    }),
  );
}

function idOf(schema: z.ZodType | undefined): string | undefined {
  return schema ? (responseRegistry.get(schema)?.id ?? requestRegistry.get(schema)?.id) : undefined;
}

const isRequired = (schema: z.ZodType) => !schema.safeParse(undefined).success;

function parameters(route: Route): Json[] {
  const out: Json[] = [];
  for (const [name, field] of Object.entries(route.pathParams?.shape ?? {})) {
    const { description, ...schema } = jsonSchema(field as z.ZodType, 'input');
    out.push({ name, in: 'path', required: true, description, schema });
  }
  for (const [name, field] of Object.entries(route.query?.shape ?? {})) {
    const f = field as z.ZodType;
    const { description, examples, ...schema } = jsonSchema(f, 'input');
    const p: Json = { name, in: 'query', required: isRequired(f), description, schema };
    if (Array.isArray(examples) && examples.length) p.example = examples[0];
    if (isListSchema(f)) Object.assign(p, { style: 'form', explode: true });
    out.push(p);
  }
  for (const d of route.dynamicQuery ?? []) {
    out.push({
      name: d.name,
      in: 'query',
      required: false,
      description: d.description,
      style: 'form',
      explode: true,
      schema: { type: 'object', patternProperties: { [d.pattern.source]: { type: 'string' } }, additionalProperties: false },
    });
  }
  for (const h of route.headers ?? []) {
    const { description: _d, ...schema } = jsonSchema(h.schema, 'input');
    out.push({ name: h.name, in: 'header', required: h.required ?? false, description: h.description, schema });
  }
  return out;
}

function operation(route: Route): Json {
  const responses: Json = {};
  for (const [status, doc] of Object.entries(route.responses)) {
    const content: Json = {};
    const id = idOf(doc.schema);
    if (doc.schema === problemSchema) content[PROBLEM_CONTENT_TYPE] = { schema: ref('Problem') };
    else if (id) content['application/json'] = { schema: ref(id) };
    else if (status !== '204') content['application/json'] = { schema: { type: 'object' } };
    if (route.csv && status === '200') content['text/csv'] = { schema: { type: 'string', description: 'RFC 4180 CSV with a header row.' } };
    const r: Json = { description: doc.description };
    if (Object.keys(content).length) r.content = content;
    if (doc.headers) r.headers = Object.fromEntries(Object.entries(doc.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }]));
    responses[status] = r;
  }
  const op: Json = {
    operationId: route.operationId,
    summary: route.summary,
    tags: [route.tag],
    parameters: parameters(route),
    responses,
    security: needsKey(route) ? [{ apiKey: [] }] : [],
    'x-candlekeep-scope': route.scope,
  };
  if (route.description) op.description = route.description;
  if (route.body) {
    const id = idOf(route.body);
    op.requestBody = { required: true, content: { 'application/json': { schema: id ? ref(id) : jsonSchema(route.body, 'input') } } };
  }
  return op;
}

/** The OpenAPI 3.1 document of these routes, generated from them and the zod schemas that validate them. */
export function buildOpenApi(routes: readonly Route[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(r);
  return {
    openapi: '3.1.0',
    info: {
      title: 'candlekeep',
      version: API_VERSION,
      description:
        'Market-data candles and backtest records. Every route but /v1/health needs the API key in the `x-api-key` header. ' +
        'Times: ISO 8601 or epoch milliseconds in, epoch milliseconds (candles) or ISO 8601 (records) out. Prices and volumes are exact ' +
        'decimal strings. Errors are application/problem+json naming the offending `parameter`; unknown query parameters are rejected.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: 'http://127.0.0.1:8080', description: 'npx candlekeep serve' }],
    tags: [
      { name: 'candles', description: 'Candle history, markets and gaps' },
      { name: 'markets', description: 'Followed markets: add, change, pause, remove; pulled from the next tick on' },
      { name: 'backfills', description: 'Backfill requests and their progress' },
      { name: 'backtests', description: 'Immutable backtest records' },
      { name: 'meta', description: 'Health and this document' },
    ],
    paths,
    components: {
      schemas: { ...components(responseRegistry, 'output'), ...components(requestRegistry, 'input') },
      securitySchemes: {
        apiKey: {
          type: 'apiKey',
          in: 'header',
          name: 'x-api-key',
          description:
            'A key of scope read, write or admin (candlekeep keys create), or the deployment\'s configured key (admin). ' +
            "Each operation's x-candlekeep-scope names the scope it needs: 401 without a known, unrevoked key, 403 (requiredScope) when the key's scope is too weak.",
        },
      },
    },
  };
}
