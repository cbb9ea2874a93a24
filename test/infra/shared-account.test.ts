import { Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { createApp, type CfnResource } from './support.ts';

const SYNTH_TIMEOUT = 240_000;
/** These tests read the template, not the bundles: skip esbuild (as dev/template/synthesize.ts does). */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

/** Properties that name a resource in the account (and so must differ between two stages). */
const PHYSICAL_NAME_KEYS = new Set([
  'Name', 'AlarmName', 'DashboardName', 'FunctionName', 'QueueName', 'TopicName', 'RoleName', 'LogGroupName', 'SecretName',
  'PolicyName', 'ManagedPolicyName', 'GroupName', 'ScheduleGroupName', 'EventBusName', 'RuleName', 'AliasName',
]);
/** Resource types with one instance per account and region, whoever creates them. */
const ACCOUNT_SINGLETONS = ['AWS::ApiGateway::Account'];

type Resources = Record<string, CfnResource>;

/** Physical names a template gives literally (a generated name is CloudFormation's, unique per stack). */
function literalNames(template: Template): string[] {
  const names: string[] = [];
  for (const [id, r] of Object.entries(template.toJSON().Resources as Resources)) {
    for (const [key, value] of Object.entries(r.Properties ?? {})) {
      // IAM inline policy names are scoped to their role, schedules' GroupName refers to a group.
      if (!PHYSICAL_NAME_KEYS.has(key) || typeof value !== 'string') continue;
      if (r.Type === 'AWS::IAM::Policy' || (r.Type === 'AWS::Scheduler::Schedule' && key === 'GroupName')) continue;
      names.push(`${r.Type} ${key}=${value} (${id})`.replace(/ \(.*\)$/, ''));
    }
  }
  for (const o of Object.values((template.toJSON().Outputs ?? {}) as Record<string, { Export?: { Name?: unknown } }>)) {
    if (typeof o.Export?.Name === 'string') names.push(`Export ${o.Export.Name}`);
  }
  return names;
}

describe('two stages in one account', () => {
  let dev: Template;
  let prod: Template;
  beforeAll(() => {
    // One app, as `cdk deploy` would see both, with the stage passed per stack.
    const app = createApp(NO_BUNDLING);
    const stacks = [new CandlekeepStack(app, 'Candlekeep-dev', { stage: 'dev' }), new CandlekeepStack(app, 'Candlekeep-prod', { stage: 'prod' })];
    [dev, prod] = stacks.map((s) => Template.fromStack(s)) as [Template, Template];
  }, SYNTH_TIMEOUT);

  it('share no physical name', () => {
    const devNames = literalNames(dev);
    const prodNames = new Set(literalNames(prod));
    expect(devNames.length).toBeGreaterThan(0); // the check sees names at all (event bus, schedule groups, ...)
    expect(devNames.filter((n) => prodNames.has(n))).toEqual([]);
  });

  it('manage nothing account-wide by default', () => {
    for (const t of [dev, prod]) for (const type of ACCOUNT_SINGLETONS) t.resourceCountIs(type, 0);
  });

  it('reserve no concurrency, which an account with the default quota of 10 refuses', () => {
    for (const t of [dev, prod]) {
      for (const fn of Object.values(t.findResources('AWS::Lambda::Function') as Resources)) {
        expect(fn.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
      }
    }
  });
});

describe('candlekeep:apiGatewayLogs', () => {
  it(
    'off (the default): no access logs and no method logging, which would need the account role',
    () => {
      const t = Template.fromStack(new CandlekeepStack(createApp(NO_BUNDLING), 'Candlekeep-dev'));
      const [stage] = Object.values(t.findResources('AWS::ApiGateway::Stage') as Resources);
      expect(stage?.Properties).not.toHaveProperty('AccessLogSetting');
      expect(JSON.stringify(stage?.Properties?.MethodSettings)).toContain('"LoggingLevel":"OFF"');
      t.resourceCountIs('AWS::ApiGateway::Account', 0);
    },
    SYNTH_TIMEOUT,
  );

  it(
    'existing-role: access and error logs, relying on the role the account already has',
    () => {
      const t = Template.fromStack(new CandlekeepStack(createApp({ ...NO_BUNDLING, 'candlekeep:apiGatewayLogs': 'existing-role' }), 'Candlekeep-dev'));
      const [stage] = Object.values(t.findResources('AWS::ApiGateway::Stage') as Resources);
      expect(stage?.Properties).toHaveProperty('AccessLogSetting');
      expect(JSON.stringify(stage?.Properties?.MethodSettings)).toContain('"LoggingLevel":"ERROR"');
      t.resourceCountIs('AWS::ApiGateway::Account', 0);
    },
    SYNTH_TIMEOUT,
  );

  it(
    'create-role: sets the account role, and keeps it when the stack is deleted (another stage may use it)',
    () => {
      const t = Template.fromStack(new CandlekeepStack(createApp({ ...NO_BUNDLING, 'candlekeep:apiGatewayLogs': 'create-role' }), 'Candlekeep-dev'));
      t.resourceCountIs('AWS::ApiGateway::Account', 1);
      t.hasResource('AWS::ApiGateway::Account', { DeletionPolicy: 'Retain' });
    },
    SYNTH_TIMEOUT,
  );

  it('refuses an unknown value, naming the key', () => {
    expect(() => new CandlekeepStack(createApp({ 'candlekeep:apiGatewayLogs': 'yes' }), 'Candlekeep-dev')).toThrow(/candlekeep:apiGatewayLogs/);
  });
});

describe('candlekeep:databaseUrlSecret', () => {
  const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:candlekeep/prod/database-AbC123';

  function secretUse(context: Record<string, unknown>) {
    const app = createApp({ ...NO_BUNDLING, ...context });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
    const stack = new CandlekeepStack(app, 'Candlekeep-dev');
    expect(() => app.synth()).not.toThrow(); // cdk-nag included
    const t = Template.fromStack(stack);
    const envs = Object.values(t.findResources('AWS::Lambda::Function') as Resources).map(
      (f) => (f.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables?.DATABASE_SECRET_ARN,
    );
    const resources = Object.values(t.findResources('AWS::IAM::Policy') as Resources).flatMap((p) =>
      ((p.Properties?.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement ?? [])
        .filter((s) => s.Action === 'secretsmanager:GetSecretValue')
        .map((s) => s.Resource),
    );
    return { t, envs, resources };
  }

  it(
    'by full ARN: the stack makes no secret, and every function reads and may read that one',
    () => {
      const { t, envs, resources } = secretUse({ 'candlekeep:databaseUrlSecret': arn });
      t.resourceCountIs('AWS::SecretsManager::Secret', 0);
      expect(envs.filter((e) => e !== undefined).length).toBeGreaterThanOrEqual(6);
      for (const e of envs.filter((x) => x !== undefined)) expect(e).toBe(arn);
      expect(resources.length).toBeGreaterThanOrEqual(6);
      for (const r of resources) expect(r).toBe(arn);
    },
    SYNTH_TIMEOUT,
  );

  it(
    'by name: the grant covers the six characters Secrets Manager appends to the name',
    () => {
      const { t, resources } = secretUse({ 'candlekeep:databaseUrlSecret': 'candlekeep/prod/database' });
      t.resourceCountIs('AWS::SecretsManager::Secret', 0);
      expect(resources.length).toBeGreaterThanOrEqual(6);
      for (const r of resources) expect(JSON.stringify(r)).toMatch(/secret:candlekeep\/prod\/database-\?\?\?\?\?\?"/);
    },
    SYNTH_TIMEOUT,
  );

  it('refuses a value that is neither an ARN nor a name', () => {
    expect(() => new CandlekeepStack(createApp({ 'candlekeep:databaseUrlSecret': 'has spaces in it' }), 'Candlekeep-dev')).toThrow(
      /candlekeep:databaseUrlSecret/,
    );
  });
});
