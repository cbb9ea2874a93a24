import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import * as apiHandler from '../../functions/api/handler.ts';
import { ROUTE_TABLE } from '../../functions/api/routes/index.ts';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { createApp, synthesizeStack, type CfnResource } from './support.ts';

const SYNTH_TIMEOUT = 180_000; // bundles every Lambda with local esbuild

type Json = Record<string, unknown>;
let template: Template;

/** Full path of every API Gateway resource, by logical id. */
function resourcePaths(t: Template): Map<string, string> {
  const resources = t.findResources('AWS::ApiGateway::Resource') as Record<string, { Properties: { PathPart: string; ParentId: Json } }>;
  const paths = new Map<string, string>();
  const pathOf = (id: string): string => {
    const cached = paths.get(id);
    if (cached !== undefined) return cached;
    const r = resources[id]!;
    const parent = (r.Properties.ParentId as { Ref?: string }).Ref;
    const p = `${parent && resources[parent] ? pathOf(parent) : ''}/${r.Properties.PathPart}`;
    paths.set(id, p);
    return p;
  };
  for (const id of Object.keys(resources)) pathOf(id);
  return paths;
}

function methods(t: Template): { method: string; path: string; props: Json }[] {
  const paths = resourcePaths(t);
  return Object.values(t.findResources('AWS::ApiGateway::Method') as Record<string, CfnResource>).map((m) => {
    const props = m.Properties as Json;
    const ref = (props.ResourceId as { Ref?: string }).Ref;
    return { method: props.HttpMethod as string, path: ref ? (paths.get(ref) ?? '?') : '/', props };
  });
}

beforeAll(() => {
  template = synthesizeStack().template;
}, SYNTH_TIMEOUT);

describe('HTTP API', () => {
  it('has every route, each behind the key authorizer except health, all proxied to the API function', () => {
    const all = methods(template);
    const found = all.filter((m) => m.method !== 'ANY');
    expect(found.map((m) => `${m.method} ${m.path}`).sort()).toEqual(ROUTE_TABLE.map((r) => `${r.method} ${r.path}`).sort());
    // Every route path also has an ANY method, so other methods reach the function and answer 405.
    const paths = [...new Set(ROUTE_TABLE.map((r) => r.path))].sort();
    expect(all.filter((m) => m.method === 'ANY').map((m) => m.path).sort()).toEqual(paths);
    const [authorizerId] = Object.keys(template.findResources('AWS::ApiGateway::Authorizer'));
    for (const m of all) {
      const keyed = m.path !== '/v1/health';
      expect(m.props.ApiKeyRequired, `${m.method} ${m.path}`).toBe(keyed);
      expect(m.props.AuthorizationType, `${m.method} ${m.path}`).toBe(keyed ? 'CUSTOM' : 'NONE');
      expect(m.props.AuthorizerId, `${m.method} ${m.path}`).toEqual(keyed ? { Ref: authorizerId } : undefined);
      expect((m.props.Integration as Json).Type).toBe('AWS_PROXY');
    }
    // No OPTIONS methods: CORS is off unless origins are configured.
    expect(found.some((m) => m.method === 'OPTIONS')).toBe(false);
  });

  it('runs the exported handler with a timeout below the gateway limit, bound to the database secret', () => {
    expect(typeof apiHandler.handler).toBe('function');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Description: Match.stringLikeRegexp('HTTP API'),
      Timeout: 28,
      MemorySize: 1024,
      Architectures: ['arm64'],
      Environment: { Variables: Match.objectLike({ DATABASE_SECRET_ARN: Match.anyValue(), CANDLEKEEP_DB_POOL_MAX: '2', CANDLEKEEP_CORS_ORIGINS: '' }) },
    });
    const policies = Object.values(template.findResources('AWS::IAM::Policy') as Record<string, CfnResource>);
    const apiPolicy = policies.find((p) => JSON.stringify(p).includes('ApiHandlerServiceRole'));
    expect(JSON.stringify(apiPolicy)).toContain('secretsmanager:GetSecretValue');
  });

  it('bounds its database use without reserved concurrency: stage throttling, 2 connections per container, 20 sessions in all, 20 s statements', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function') as Record<string, CfnResource>);
    const api = fns.find((f) => /HTTP API/.test(String((f.Properties as Json).Description)))!;
    const props = api.Properties as Json;
    // Accounts with a concurrency quota of 10 refuse any reservation: the bound lives elsewhere.
    expect(props).not.toHaveProperty('ReservedConcurrentExecutions');
    const env = (props.Environment as { Variables: Record<string, string> }).Variables;
    expect(env).toMatchObject({ CANDLEKEEP_DB_POOL_MAX: '2', CANDLEKEEP_API_DB_SESSIONS: '20', CANDLEKEEP_API_STATEMENT_TIMEOUT_MS: '20000' });
    // Every statement ends before the function does, and the function before the gateway's 29 s.
    expect(Number(env.CANDLEKEEP_API_STATEMENT_TIMEOUT_MS)).toBeLessThan((props.Timeout as number) * 1000);
    expect(props.Timeout).toBeLessThan(29);
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      MethodSettings: [Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 })],
    });
  });

  it(
    'takes its database session bound from cdk.json',
    () => {
      const app = createApp({ 'candlekeep:api': { databaseSessions: 8 } });
      Template.fromStack(new CandlekeepStack(app, 'Candlekeep-sessions')).hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ CANDLEKEEP_API_DB_SESSIONS: '8' }) },
      });
      expect(() => new CandlekeepStack(createApp({ 'candlekeep:api': { databaseSessions: 0 } }), 'Candlekeep-nosessions')).toThrow(/databaseSessions/);
    },
    SYNTH_TIMEOUT,
  );

  it('has a usage plan with throttling and a quota, and the API key in it that the authorizer names for every caller', () => {
    template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: 50, BurstLimit: 100 },
      Quota: { Limit: 1_000_000, Period: 'DAY' },
      ApiStages: [Match.objectLike({ Stage: Match.anyValue() })],
    });
    template.resourceCountIs('AWS::ApiGateway::ApiKey', 1);
    template.resourceCountIs('AWS::ApiGateway::UsagePlanKey', 1);
    // Keys from the api_keys table are not API Gateway keys: the authorizer says which usage-plan key a request counts against.
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { ApiKeySourceType: 'AUTHORIZER', MinimumCompressionSize: 8192 });
  });

  it('authorizes with a REQUEST authorizer on x-api-key, cached 60 s, whose function reads the key table and only its own API key', () => {
    template.resourceCountIs('AWS::ApiGateway::Authorizer', 1);
    template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
      Type: 'REQUEST',
      IdentitySource: 'method.request.header.x-api-key',
      AuthorizerResultTtlInSeconds: 60,
    });
    const [keyId] = Object.keys(template.findResources('AWS::ApiGateway::ApiKey'));
    const fns = template.findResources('AWS::Lambda::Function') as Record<string, CfnResource>;
    const [fnId, fn] = Object.entries(fns).find(([, f]) => /authorizer/.test(String((f.Properties as Json).Description)))!;
    expect(fn.Properties).toMatchObject({ Handler: 'index.handler', Timeout: 10, Architectures: ['arm64'] });
    expect((fn.Properties as { Environment: { Variables: Json } }).Environment.Variables).toMatchObject({
      CANDLEKEEP_USAGE_KEY_ID: { Ref: keyId },
      POWERTOOLS_SERVICE_NAME: 'candlekeep-authorizer',
      DATABASE_SECRET_ARN: expect.anything(),
    });
    const authorizer = Object.values(template.findResources('AWS::ApiGateway::Authorizer') as Record<string, CfnResource>)[0]!;
    expect(JSON.stringify((authorizer.Properties as Json).AuthorizerUri)).toContain(fnId);
    // Its role reads the database secret and GETs exactly the stack's API key, nothing else of API Gateway.
    const role = (fn.Properties as { Role: { 'Fn::GetAtt': [string, string] } }).Role['Fn::GetAtt'][0];
    const policy = Object.values(template.findResources('AWS::IAM::Policy') as Record<string, CfnResource>).find((p) =>
      JSON.stringify((p.Properties as Json).Roles).includes(role),
    )!;
    const statements = ((policy.Properties as Json).PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }).Statement;
    const gatewayGet = statements.filter((st) => [st.Action].flat().some((a) => a.startsWith('apigateway:')));
    expect(gatewayGet).toHaveLength(1);
    expect(gatewayGet[0]!.Action).toBe('apigateway:GET');
    expect(JSON.stringify(gatewayGet[0]!.Resource)).toMatch(new RegExp(`/apikeys/"?,?\\{"Ref":"${keyId}"\\}|/apikeys/.*${keyId}`));
    expect(JSON.stringify(statements)).toContain('secretsmanager:GetSecretValue');
    // API Gateway may invoke it.
    template.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunction', FunctionName: Match.objectLike({ 'Fn::GetAtt': [fnId, 'Arn'] }), Principal: 'apigateway.amazonaws.com' });
  });

  it('throttles the stage and, by default, keeps API Gateway logs off (they need the account-wide role)', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'dev',
      MethodSettings: [
        Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', LoggingLevel: 'OFF', DataTraceEnabled: false, ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 }),
      ],
    });
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
  });

  it(
    'with candlekeep:apiGatewayLogs set, logs access to its own log group and errors without request bodies',
    () => {
      const t = Template.fromStack(new CandlekeepStack(createApp({ 'candlekeep:apiGatewayLogs': 'existing-role', 'aws:cdk:bundling-stacks': [] }), 'Candlekeep-logs'));
      t.hasResourceProperties('AWS::ApiGateway::Stage', {
        StageName: 'dev',
        AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
        MethodSettings: [Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', LoggingLevel: 'ERROR', DataTraceEnabled: false })],
      });
    },
    SYNTH_TIMEOUT,
  );

  it('answers gateway errors as problem+json and validates POST bodies structurally', () => {
    const responses = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse') as Record<string, CfnResource>).map((r) => r.Properties as Json);
    const byType = new Map(responses.map((r) => [r.ResponseType, r]));
    for (const [type, status] of [
      ['UNAUTHORIZED', '401'],
      ['ACCESS_DENIED', '401'],
      ['AUTHORIZER_FAILURE', '503'],
      ['INVALID_API_KEY', '403'],
      ['MISSING_AUTHENTICATION_TOKEN', '404'],
      ['THROTTLED', '429'],
      ['QUOTA_EXCEEDED', '429'],
      ['REQUEST_TOO_LARGE', '413'],
    ]) {
      const r = byType.get(type);
      expect(r, type).toBeDefined();
      expect(r!.StatusCode).toBe(status);
      expect(r!.ResponseParameters).toEqual({ 'gatewayresponse.header.Content-Type': "'application/problem+json'" });
      const body = JSON.parse(((r!.ResponseTemplates as Json)['application/json'] as string).replace('$context.requestId', 'x')) as Json;
      expect(body).toMatchObject({ status: Number(status), title: expect.any(String), detail: expect.any(String) });
    }
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    const post = methods(template).find((m) => m.method === 'POST')!;
    expect(post.props.RequestValidatorId).toBeDefined();
    expect(Object.keys(post.props.RequestModels as Json)).toEqual(['application/json']);
  });

  it('outputs the API URL and key id', () => {
    template.hasOutput('ApiUrl', {});
    template.hasOutput('ApiKeyId', {});
  });

  it(
    'adds CORS only for configured origins, with preflight open and the function told the origins',
    () => {
      const app = createApp({ 'candlekeep:api': { corsOrigins: ['https://app.example.com'] } });
      const t = Template.fromStack(new CandlekeepStack(app, 'Candlekeep-cors'));
      const options = methods(t).filter((m) => m.method === 'OPTIONS');
      expect(options.length).toBeGreaterThan(0);
      for (const o of options) expect(o.props.ApiKeyRequired).toBe(false);
      t.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ CANDLEKEEP_CORS_ORIGINS: 'https://app.example.com' }) },
      });
    },
    SYNTH_TIMEOUT,
  );

  it('fails synth with a clear message on a bad API setting', () => {
    const app = createApp({ 'candlekeep:api': { throttle: { rateLimit: -1, burstLimit: 10 } } });
    expect(() => new CandlekeepStack(app, 'Candlekeep-bad')).toThrow(/candlekeep:api\.throttle\.rateLimit/);
    const typo = createApp({ 'candlekeep:api': { corsOrigin: ['https://x.example'] } });
    expect(() => new CandlekeepStack(typo, 'Candlekeep-typo')).toThrow(/candlekeep:api/);
  }, SYNTH_TIMEOUT);
});

