import { Stack, Validations, type App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { createApp } from './support.ts';

// cdk-nag 3 is a policy-validation plugin, not an aspect: its findings are not annotations but a
// report. Registered with Validations.of(app) (as bin/app.ts does), an error finding makes
// app.synth() throw; validateScope() returns every finding, warnings included.
const SYNTH_TIMEOUT = 120_000; // bundles the writer with local esbuild

function nagFindings(app: App) {
  return new AwsSolutionsChecks().validateScope(app).violations.map((v) => ({
    rule: v.ruleName,
    severity: v.severity,
    resources: v.violatingResources.map((r) => r.constructPath),
  }));
}

function appWithNag(context: Record<string, unknown> = {}): App {
  const app = createApp(context);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return app;
}

describe('cdk-nag AwsSolutions', () => {
  it(
    'passes the dev stack with no error or warning',
    () => {
      const app = appWithNag();
      const stack = new CandlekeepStack(app, 'Candlekeep-dev');
      expect(() => app.synth()).not.toThrow();
      expect(nagFindings(app)).toEqual([]);
      expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))).toEqual([]);
      expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
    },
    SYNTH_TIMEOUT,
  );

  it(
    'passes a prod stack with an alarm email subscription and API Gateway logs through a role it creates',
    () => {
      const app = appWithNag({ 'candlekeep:stage': 'prod', 'candlekeep:alarmEmail': 'ops@example.com', 'candlekeep:apiGatewayLogs': 'create-role' });
      const stack = new CandlekeepStack(app, 'Candlekeep-prod');
      expect(() => app.synth()).not.toThrow();
      expect(nagFindings(app)).toEqual([]);
      const template = Template.fromStack(stack);
      template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain' });
      template.hasResource('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
      template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
      template.resourceCountIs('AWS::ApiGateway::Account', 1);
    },
    SYNTH_TIMEOUT,
  );

  it('fails synth on a finding, so the passes above are meaningful', () => {
    const app = appWithNag();
    const stack = new Stack(app, 'Probe');
    new sqs.Queue(stack, 'Plain', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    expect(nagFindings(app).map((f) => f.rule)).toEqual(expect.arrayContaining(['AwsSolutions-SQS3', 'AwsSolutions-SQS4']));
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
  });
});
