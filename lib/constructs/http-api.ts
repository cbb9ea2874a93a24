import { Duration, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import * as z from 'zod';
import { ROUTE_TABLE } from '../../functions/api/routes/index.ts';
import { UNAUTHORIZED_DETAIL } from '../../functions/auth/authorizer.ts';
import { AUTHORIZER_CACHE_SECONDS } from '../../functions/auth/keys.ts';
import type { ApiGatewayLogs } from '../config.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';

const DEFAULT_DATABASE_SESSIONS = 20;

/** API settings from CDK context `candlekeep:api`, checked at synth time. */
export const apiConfigSchema = z
  .strictObject({
    /** Browser origins allowed to call the API; none by default (scripts need no CORS). */
    corsOrigins: z.array(z.url({ error: 'candlekeep:api.corsOrigins entries must be origins such as https://app.example.com' })).default([]),
    /** Steady requests per second and burst, for the stage and the usage plan. */
    throttle: z
      .strictObject({ rateLimit: z.number().positive().max(10_000), burstLimit: z.number().int().positive().max(5_000) })
      .default({ rateLimit: 50, burstLimit: 100 }),
    quota: z
      .strictObject({ limit: z.number().int().positive(), period: z.enum(['DAY', 'WEEK', 'MONTH']) })
      .default({ limit: 1_000_000, period: 'DAY' }),
    /**
     * Database sessions the API may use at once across all its containers, whatever API Gateway
     * lets through: a statement beyond them answers 503 at once, so the writer keeps its connections.
     */
    databaseSessions: z.number().int().min(1).max(1_000).default(DEFAULT_DATABASE_SESSIONS),
  })
  .default({
    corsOrigins: [],
    throttle: { rateLimit: 50, burstLimit: 100 },
    quota: { limit: 1_000_000, period: 'DAY' },
    databaseSessions: DEFAULT_DATABASE_SESSIONS,
  });
export type ApiConfig = z.output<typeof apiConfigSchema>;

export function readApiConfig(scope: Construct): ApiConfig {
  const parsed = apiConfigSchema.safeParse(scope.node.tryGetContext('candlekeep:api'));
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new Error(`cdk.json context candlekeep:api${i.path.length ? `.${i.path.join('.')}` : ''}: ${i.message}`);
  }
  return parsed.data;
}

/** How long API Gateway reuses the authorizer's answer for a key (the bound on a revoked key's last use). */
export const AUTHORIZER_CACHE_TTL = Duration.seconds(AUTHORIZER_CACHE_SECONDS);

/** API Gateway's integration limit is 29 s; the function answers (or times out with a 503) before it. */
export const API_TIMEOUT = Duration.seconds(28);
/** The longest one API statement may run; each also ends a second before the function's own deadline. */
export const API_STATEMENT_TIMEOUT = Duration.seconds(20);

export interface CandlekeepHttpApiProps {
  databaseSecret: secretsmanager.ISecret;
  /** Stage name, also in the URL: https://<id>.execute-api.<region>.amazonaws.com/<stage>/v1/... */
  stageName: string;
  config: ApiConfig;
  /** Whether API Gateway logs, and who owns the account-wide role they need (see ApiGatewayLogs). */
  logs: ApiGatewayLogs;
  logRemovalPolicy: RemovalPolicy;
  /** The bus POST /v1/backfills puts requests on. */
  backfillBus: events.IEventBus;
}

const PROBLEM_TYPE = 'https://candlekeep.dev/problems/';

/** A gateway response body in the API's problem+json shape, so clients parse one error format. */
function problem(status: number, slug: string, title: string, detail: string, parameter?: string): Record<string, string> {
  const body =
    `{"type":"${PROBLEM_TYPE}${slug}","title":"${title}","status":${status},"detail":"${detail}"` +
    `${parameter ? `,"parameter":"${parameter}"` : ''},"requestId":"$context.requestId"}`;
  return { 'application/json': body };
}

/**
 * The HTTPS API: a REST API (v1, which LocalStack also emulates) with one route-dispatching Lambda
 * behind Lambda proxy integrations. Every route but health goes through a REQUEST authorizer that
 * looks the x-api-key up in the api_keys table (or recognises the stack's API Gateway key, an admin
 * key) and hands the key's scope to the function, which checks it against the route. The answer
 * is cached per key for AUTHORIZER_CACHE_TTL. The API's key source is the authorizer: every caller it
 * allows counts against the stack's API key in the usage plan, which keeps throttling and the quota.
 * Access logs go to their own log group; errors the gateway itself produces (bad key, throttling,
 * unknown route, oversized request) use the same problem+json shape as the Lambda's. CORS exists
 * only when origins are configured.
 */
export class CandlekeepHttpApi extends Construct {
  public readonly api: apigw.RestApi;
  public readonly handler: CandlekeepFunction;
  /** The REQUEST authorizer's function: API keys and their scopes. */
  public readonly authorizerFunction: CandlekeepFunction;
  public readonly authorizer: apigw.RequestAuthorizer;
  /** The stack's API Gateway key: an admin key, and the usage-plan key every allowed caller counts against. */
  public readonly apiKey: apigw.IApiKey;
  public readonly usagePlan: apigw.UsagePlan;
  /** Absent when API Gateway logs are off. */
  public readonly accessLogs: logs.LogGroup | undefined;

  constructor(scope: Construct, id: string, props: CandlekeepHttpApiProps) {
    super(scope, id);
    const { config } = props;

    this.handler = new CandlekeepFunction(this, 'Handler', {
      entry: 'functions/api/handler.ts',
      description: 'candlekeep HTTP API: candles, markets, gaps, backtest records',
      // More memory is more CPU: JSON/CSV serialisation of 10k-candle pages is CPU-bound.
      memorySize: 1024,
      timeout: API_TIMEOUT,
      logRemovalPolicy: props.logRemovalPolicy,
      environment: {
        POWERTOOLS_SERVICE_NAME: 'candlekeep-api',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        // One connection for the request, one to cancel its statement when the handler gives up.
        CANDLEKEEP_DB_POOL_MAX: '2',
        CANDLEKEEP_API_STATEMENT_TIMEOUT_MS: String(API_STATEMENT_TIMEOUT.toMilliseconds()),
        CANDLEKEEP_API_DB_SESSIONS: String(config.databaseSessions),
        CANDLEKEEP_CORS_ORIGINS: config.corsOrigins.join(','),
        CANDLEKEEP_BACKFILL_BUS: props.backfillBus.eventBusName,
      },
    });
    this.handler.bindDatabaseSecret(props.databaseSecret);
    props.backfillBus.grantPutEventsTo(this.handler);

    const logging = props.logs !== 'off';
    this.accessLogs = logging
      ? new logs.LogGroup(this, 'AccessLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: props.logRemovalPolicy })
      : undefined;

    this.api = new apigw.RestApi(this, 'Api', {
      restApiName: `candlekeep-${props.stageName}`,
      description: 'candlekeep market data and backtest records (OpenAPI at /v1/openapi.json)',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // The authorizer names the usage-plan key (usageIdentifierKey): keys from the api_keys table are
      // not API Gateway keys, and a HEADER source would refuse them before the authorizer runs.
      apiKeySourceType: apigw.ApiKeySourceType.AUTHORIZER,
      // API Gateway logs need the account's API Gateway CloudWatch role (AWS::ApiGateway::Account),
      // one per account and region: created here only when asked (candlekeep:apiGatewayLogs).
      cloudWatchRole: props.logs === 'create-role',
      // Kept when this stack goes: another stage in the account may log through the same role.
      ...(props.logs === 'create-role' ? { cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN } : {}),
      // Candle pages and CSV compress well (clients send Accept-Encoding); small answers are not worth it.
      minCompressionSize: Size.kibibytes(8),
      deployOptions: {
        stageName: props.stageName,
        ...(this.accessLogs
          ? {
              accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
              accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields({
                caller: false,
                httpMethod: true,
                ip: true,
                protocol: true,
                requestTime: true,
                resourcePath: true,
                responseLength: true,
                status: true,
                user: false,
              }),
              // Errors only, and never request bodies: they may hold strategy parameters users consider private.
              loggingLevel: apigw.MethodLoggingLevel.ERROR,
            }
          : { loggingLevel: apigw.MethodLoggingLevel.OFF }),
        dataTraceEnabled: false,
        metricsEnabled: true,
        // No X-Ray, as for the functions (see CandlekeepFunction).
        tracingEnabled: false,
        throttlingRateLimit: config.throttle.rateLimit,
        throttlingBurstLimit: config.throttle.burstLimit,
      },
      ...(config.corsOrigins.length
        ? {
            defaultCorsPreflightOptions: {
              allowOrigins: config.corsOrigins,
              allowMethods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
              allowHeaders: ['Content-Type', 'Accept', 'x-api-key', 'Idempotency-Key'],
              exposeHeaders: ['X-Next-Cursor', 'X-Resampled-From', 'X-Gap-Policy', 'Location', 'Idempotent-Replayed'],
              maxAge: Duration.hours(1),
            },
          }
        : {}),
    });

    // Structural checks the gateway can do cheaply; the Lambda validates everything in full.
    const validator = new apigw.RequestValidator(this, 'Validator', {
      restApi: this.api,
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const objectBody = new apigw.Model(this, 'JsonObjectModel', {
      restApi: this.api,
      contentType: 'application/json',
      description: 'Any JSON object; the API validates the record itself.',
      schema: { schema: apigw.JsonSchemaVersion.DRAFT4, type: apigw.JsonSchemaType.OBJECT },
    });

    // Where RestApi.addApiKey would put it (same logical id, so a deployed stack keeps its key and
    // value), but not tied to the stage: the authorizer reads the key, and the stage is deployed after
    // the methods that name the authorizer. It reaches the stage through the usage plan.
    this.apiKey = new apigw.ApiKey(this.api, 'DefaultKey', { description: 'candlekeep default API key; read its value with aws apigateway get-api-key --include-value' });

    this.authorizerFunction = new CandlekeepFunction(this, 'Authorizer', {
      entry: 'functions/auth/authorizer-handler.ts',
      description: 'candlekeep API authorizer: API keys from the api_keys table and their scopes',
      memorySize: 512,
      timeout: Duration.seconds(10),
      logRemovalPolicy: props.logRemovalPolicy,
      environment: {
        POWERTOOLS_SERVICE_NAME: 'candlekeep-authorizer',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        CANDLEKEEP_DB_POOL_MAX: '1',
        CANDLEKEEP_USAGE_KEY_ID: this.apiKey.keyId,
      },
    });
    this.authorizerFunction.bindDatabaseSecret(props.databaseSecret);
    // Its own key's value only: the configured admin key, and what allowed callers are metered by.
    this.authorizerFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['apigateway:GET'],
        resources: [this.apiKey.keyArn],
      }),
    );
    this.authorizer = new apigw.RequestAuthorizer(this, 'KeyAuthorizer', {
      handler: this.authorizerFunction,
      identitySources: [apigw.IdentitySource.header('x-api-key')],
      resultsCacheTtl: AUTHORIZER_CACHE_TTL,
    });
    const guarded = (apiKey: boolean): apigw.MethodOptions =>
      apiKey
        ? { apiKeyRequired: true, authorizer: this.authorizer, authorizationType: apigw.AuthorizationType.CUSTOM }
        : { apiKeyRequired: false, authorizationType: apigw.AuthorizationType.NONE };

    const integration = new apigw.LambdaIntegration(this.handler, { proxy: true, allowTestInvoke: false, timeout: Duration.seconds(29) });
    for (const route of ROUTE_TABLE) {
      const resource = this.api.root.resourceForPath(route.path);
      resource.addMethod(route.method, integration, {
        ...guarded(route.apiKey),
        ...(route.method === 'POST' || route.method === 'PATCH' ? { requestValidator: validator, requestModels: { 'application/json': objectBody } } : {}),
      });
    }

    // Another method on a route's path reaches the function too, which answers 405 with an Allow
    // header; the gateway alone would answer 404 (missing authentication token) for it.
    const keyByPath = new Map<string, boolean>();
    for (const route of ROUTE_TABLE) keyByPath.set(route.path, (keyByPath.get(route.path) ?? false) || route.apiKey);
    for (const [path, apiKey] of keyByPath) this.api.root.resourceForPath(path).addMethod('ANY', integration, guarded(apiKey));

    const responses: [string, apigw.ResponseType, number, Record<string, string>][] = [
      // No x-api-key header at all (the authorizer is not called), and the authorizer's Deny for an
      // unknown or revoked key: one 401, word for word the local server's (dev/local-api.ts).
      ['Unauthorized', apigw.ResponseType.UNAUTHORIZED, 401, problem(401, 'unauthorized', 'Unauthorized', UNAUTHORIZED_DETAIL, 'x-api-key')],
      ['AccessDenied', apigw.ResponseType.ACCESS_DENIED, 401, problem(401, 'unauthorized', 'Unauthorized', UNAUTHORIZED_DETAIL, 'x-api-key')],
      // The usage-plan key the authorizer names is not in the plan (it was removed or disabled by hand).
      ['InvalidApiKey', apigw.ResponseType.INVALID_API_KEY, 403, problem(403, 'forbidden', 'Forbidden', "the stack's API key is not enabled in the usage plan; redeploy the stack", 'x-api-key')],
      ['AuthorizerFailure', apigw.ResponseType.AUTHORIZER_FAILURE, 503, problem(503, 'unavailable', 'Service unavailable', 'the API key could not be checked; retry shortly')],
      ['UnknownRoute', apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, 404, problem(404, 'not-found', 'Not found', 'no such route or method; GET /v1/openapi.json lists the routes')],
      ['Throttled', apigw.ResponseType.THROTTLED, 429, problem(429, 'throttled', 'Too many requests', 'request rate above the usage plan limit; retry with backoff')],
      ['QuotaExceeded', apigw.ResponseType.QUOTA_EXCEEDED, 429, problem(429, 'quota-exceeded', 'Too many requests', 'the API key used up its quota for this period')],
      ['TooLarge', apigw.ResponseType.REQUEST_TOO_LARGE, 413, problem(413, 'payload-too-large', 'Payload too large', 'request is larger than API Gateway accepts (10 MB)', '(body)')],
      ['BadBody', apigw.ResponseType.BAD_REQUEST_BODY, 400, problem(400, 'invalid-json', 'Bad request', 'request body must be a JSON object', '(body)')],
      ['UnsupportedMediaType', apigw.ResponseType.UNSUPPORTED_MEDIA_TYPE, 415, problem(415, 'unsupported-media-type', 'Unsupported media type', 'Content-Type must be application/json', 'Content-Type')],
      ['IntegrationTimeout', apigw.ResponseType.INTEGRATION_TIMEOUT, 504, problem(504, 'timeout', 'Gateway timeout', 'the request took too long; narrow the range or lower limit, then retry')],
    ];
    for (const [name, type, status, templates] of responses) {
      this.api.addGatewayResponse(name, {
        type,
        statusCode: String(status),
        templates,
        responseHeaders: { 'Content-Type': "'application/problem+json'" },
      });
    }

    this.usagePlan = this.api.addUsagePlan('UsagePlan', {
      description: 'Per-key throttle and quota for candlekeep clients',
      throttle: { rateLimit: config.throttle.rateLimit, burstLimit: config.throttle.burstLimit },
      quota: { limit: config.quota.limit, period: apigw.Period[config.quota.period] },
      apiStages: [{ api: this.api, stage: this.api.deploymentStage }],
    });
    this.usagePlan.addApiKey(this.apiKey);

    // ── cdk-nag: decisions, each with its reason ──
    Validations.of(this.api).acknowledge(
      {
        id: 'AwsSolutions-APIG4',
        reason:
          'Callers are scripts and notebooks authenticated by API key (a Lambda REQUEST authorizer over the api_keys table, scopes read/write/admin) ' +
          'and metered by the usage plan, as the API contract requires; ' +
          'IAM SigV4 or Cognito tokens are impractical from curl and pandas. GET /v1/health is public by design and reads nothing.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason: 'No Cognito user pool: access is by API key per client (see AwsSolutions-APIG4).',
      },
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'No WAF web ACL by default (it costs more than the rest of the stack for small teams); throttling and quotas are enforced by the ' +
          'usage plan and stage, request sizes by API Gateway and the function. Associate a WAF ACL with the stage for public exposure.',
      },
    );
    if (props.logs === 'create-role') {
      Validations.of(this.api).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason: 'The account-level role API Gateway uses to write access and execution logs; AWS provides exactly this managed policy for it.',
      });
    }
    if (!logging) {
      const reason =
        'API Gateway logs are off (candlekeep:apiGatewayLogs=off, the default) because they need the account-wide API Gateway ' +
        'CloudWatch role, which a stack must not take over in a shared account; the API function logs every request itself. ' +
        'Set candlekeep:apiGatewayLogs to existing-role or create-role to turn them on.';
      Validations.of(this.api).acknowledge({ id: 'AwsSolutions-APIG1', reason }, { id: 'AwsSolutions-APIG6', reason });
    }
  }
}
