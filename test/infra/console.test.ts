import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthesizeStack, type CfnResource } from './support.ts';

const SYNTH_TIMEOUT = 180_000; // bundles every Lambda and the console with local esbuild

let template: Template;
beforeAll(() => {
  template = synthesizeStack().template;
}, SYNTH_TIMEOUT);

describe('console', () => {
  it('keeps its files in a private, encrypted bucket that only the distribution reads (origin access control)', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: Match.anyValue(),
    });
    template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 's3:GetObject', Principal: { Service: 'cloudfront.amazonaws.com' }, Condition: { StringEquals: { 'AWS:SourceArn': Match.anyValue() } } }),
        ]),
      },
    });
  });

  it('serves the API under /v1/* of the same host, uncached, with the key header forwarded', () => {
    const dist = Object.values(template.findResources('AWS::CloudFront::Distribution'))[0] as CfnResource;
    const config = (dist.Properties as { DistributionConfig: { CacheBehaviors: Record<string, unknown>[]; DefaultCacheBehavior: Record<string, unknown> } }).DistributionConfig;
    expect(config.CacheBehaviors).toHaveLength(1);
    expect(config.CacheBehaviors[0]).toMatchObject({
      PathPattern: '/v1/*',
      ViewerProtocolPolicy: 'https-only',
      AllowedMethods: expect.arrayContaining(['GET', 'POST', 'DELETE']),
      CachePolicyId: '4135ea2d-6df8-44a3-9df3-4b5a84be39ad', // Managed-CachingDisabled
      OriginRequestPolicyId: 'b689b0a8-53d0-40ab-baf2-68738e2966ac', // Managed-AllViewerExceptHostHeader
    });
    expect(config.DefaultCacheBehavior).toMatchObject({ ViewerProtocolPolicy: 'redirect-to-https', FunctionAssociations: [expect.objectContaining({ EventType: 'viewer-request' })] });
  });

  it('sends a content security policy that allows only its own origin, and forbids framing', () => {
    template.hasResourceProperties('AWS::CloudFront::ResponseHeadersPolicy', {
      ResponseHeadersPolicyConfig: {
        SecurityHeadersConfig: Match.objectLike({
          ContentSecurityPolicy: { ContentSecurityPolicy: Match.stringLikeRegexp("default-src 'self'.*connect-src 'self'.*frame-ancestors 'none'"), Override: true },
          FrameOptions: { FrameOption: 'DENY', Override: true },
          ReferrerPolicy: { ReferrerPolicy: 'no-referrer', Override: true },
        }),
      },
    });
  });

  it('uploads the built console under console/ and invalidates it on deploy', () => {
    template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketKeyPrefix: 'console/',
      DistributionPaths: ['/console/*'],
      Prune: true,
    });
    template.hasOutput('ConsoleUrl', { Value: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('^https://$'), '/console/'])] } });
  });

  it('gives the API function the backfill bus for POST /v1/backfills, with PutEvents on it alone', () => {
    const fns = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { POWERTOOLS_SERVICE_NAME: 'candlekeep-api' } } } });
    const api = Object.values(fns)[0] as CfnResource;
    const vars = (api.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables;
    expect(vars.CANDLEKEEP_BACKFILL_BUS).toEqual({ Ref: expect.stringMatching(/^BackfillBus/) });
    const role = ((api.Properties as { Role: { 'Fn::GetAtt': [string] } }).Role['Fn::GetAtt'][0]);
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify((p as CfnResource).Properties?.Roles).includes(role),
    ) as CfnResource[];
    const statements = policies.flatMap((p) => (p.Properties as { PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] } }).PolicyDocument.Statement);
    const put = statements.filter((s) => JSON.stringify(s.Action).includes('events:PutEvents'));
    expect(put).toHaveLength(1);
    expect(put[0]!.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^BackfillBus/), 'Arn'] });
  });
});
