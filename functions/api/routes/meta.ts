import { json } from '../../http/response.ts';
import { ping } from '../../store/health.ts';
import { API_VERSION, defineRoute, problems } from '../route.ts';
import { healthSchema } from '../schemas.ts';

export const health = defineRoute({
  method: 'GET',
  path: '/v1/health',
  operationId: 'getHealth',
  tag: 'meta',
  scope: 'public',
  summary: 'Liveness and database reachability (no API key needed)',
  responses: { 200: { description: 'Up, and the database answers.', schema: healthSchema }, ...problems(400, 406, 503) },
  async handle({ db }) {
    await ping(await db());
    return json(200, { status: 'ok', database: 'ok', version: API_VERSION }, { 'Cache-Control': 'no-store' });
  },
});

let openApiCache: unknown;
export const openapi = defineRoute({
  method: 'GET',
  path: '/v1/openapi.json',
  operationId: 'getOpenApi',
  tag: 'meta',
  scope: 'read',
  summary: 'This OpenAPI 3.1 document',
  responses: { 200: { description: 'The OpenAPI document.' }, ...problems(400, 401, 403, 406) },
  async handle({ routes }) {
    // Imported on demand: building the document is only needed by this route.
    const { buildOpenApi } = await import('../openapi.ts');
    openApiCache ??= buildOpenApi(routes);
    return json(200, openApiCache);
  },
});
