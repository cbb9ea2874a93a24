import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct, type IConstruct } from 'constructs';
import { buildConsoleSync, CONSOLE_PATH } from '../../console/build.ts';

export interface ConsoleProps {
  /** The public API the console calls, served by the same distribution under /v1/. */
  api: apigw.RestApi;
  removalPolicy: RemovalPolicy;
}

/** Served with every console file: the page may talk only to its own origin and cannot be framed. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The web console: its built files in a private S3 bucket that only this CloudFront distribution
 * reads (origin access control), and the API under the same host (`/v1/*` forwarded to API Gateway,
 * never cached), so the page calls it same-origin with no CORS and no key anywhere but the header
 * the user's browser sends. The key itself is typed into the page and kept in the tab's session.
 */
export class CandlekeepConsole extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly distribution: cloudfront.Distribution;
  /** https://<distribution>/console/ */
  public readonly url: string;
  /** CDK's function that copies the files into the bucket at deploy time (a singleton at the stack's root). */
  public readonly copier: IConstruct;

  constructor(scope: Construct, id: string, props: ConsoleProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Assets', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: props.removalPolicy,
    });

    // `/` and `/console` lead to the console; a folder path serves its index.html (S3 has no index documents behind OAC).
    const paths = new cloudfront.Function(this, 'Paths', {
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      comment: 'candlekeep console: redirect / to /console/, serve index.html for /console/',
      code: cloudfront.FunctionCode.fromInline(
        `function handler(event) {
  var r = event.request;
  if (r.uri === '/' || r.uri === '${CONSOLE_PATH.slice(0, -1)}') return { statusCode: 302, statusDescription: 'Found', headers: { location: { value: '${CONSOLE_PATH}' } } };
  if (r.uri.endsWith('/')) r.uri += 'index.html';
  return r;
}`,
      ),
    });
    const headers = new cloudfront.ResponseHeadersPolicy(this, 'Headers', {
      comment: 'candlekeep console security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: CSP, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
        strictTransportSecurity: { accessControlMaxAge: Duration.days(365), includeSubdomains: true, override: true },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'candlekeep console and API',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        responseHeadersPolicy: headers,
        functionAssociations: [{ function: paths, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      },
      additionalBehaviors: {
        '/v1/*': {
          origin: new origins.RestApiOrigin(props.api),
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
          allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
          // Every answer depends on the key and the query: nothing is cached, everything but Host is forwarded.
          cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
          originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        },
      },
    });
    this.url = `https://${this.distribution.distributionDomainName}${CONSOLE_PATH}`;

    // Built now (esbuild, about a second), lightweight-charts bundled from node_modules.
    const dir = mkdtempSync(join(tmpdir(), 'candlekeep-console-'));
    for (const f of buildConsoleSync()) writeFileSync(join(dir, f.name), f.body);
    new s3deploy.BucketDeployment(this, 'Deploy', {
      sources: [s3deploy.Source.asset(dir)],
      destinationBucket: this.bucket,
      destinationKeyPrefix: CONSOLE_PATH.slice(1),
      // Files are small and change together: browsers revalidate them; the new ones show after a deploy.
      cacheControl: [s3deploy.CacheControl.noCache()],
      distribution: this.distribution,
      distributionPaths: [`${CONSOLE_PATH}*`],
      // The objects go with the deployment, so a dev stack's bucket is empty when it is destroyed.
      retainOnDelete: props.removalPolicy === RemovalPolicy.RETAIN,
      memoryLimit: 256,
    });

    // ── cdk-nag: decisions, each with its reason ──
    Validations.of(this).acknowledge(
      {
        id: 'AwsSolutions-S1',
        reason: 'The bucket holds only the console\'s static files, readable solely by this distribution (origin access control); API requests are logged by API Gateway.',
      },
      {
        id: 'AwsSolutions-CFR3',
        reason: 'The distribution serves static files and forwards /v1/* to API Gateway, whose access log records every API request with its caller and status.',
      },
      {
        id: 'AwsSolutions-CFR4',
        reason:
          'The default *.cloudfront.net certificate cannot carry a minimum protocol version (a custom domain and certificate can: set ' +
          'minimumProtocolVersion then). Current browsers negotiate TLS 1.2 or 1.3 with it.',
      },
      { id: 'AwsSolutions-CFR1', reason: 'Users of a market-data console may be anywhere; restricting countries is a deployment choice, not a default.' },
      {
        id: 'AwsSolutions-CFR2',
        reason: 'No WAF web ACL by default, as for the API stage (see AwsSolutions-APIG3): every API call needs a key and is throttled by the usage plan; the console is static files.',
      },
    );
    const copier = Stack.of(this).node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
    if (!copier) throw new Error('BucketDeployment created no copy function at the stack root; aws-cdk-lib changed how it builds it');
    this.copier = copier;
    Validations.of(copier).acknowledge(
      {
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: 'CDK\'s BucketDeployment function writes its own logs with the managed basic execution policy; it runs only during deploys.',
      },
      ...[
        'Action::s3:GetBucket*',
        'Action::s3:GetObject*',
        'Action::s3:List*',
        'Action::s3:Abort*',
        'Action::s3:DeleteObject*',
        'Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*',
        `Resource::<${Stack.of(this).getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket)}.Arn>/*`,
        'Resource::*',
      ].map((finding) => ({
        id: `AwsSolutions-IAM5[${finding}]`,
        reason:
          'CDK\'s BucketDeployment copies from the CDK asset bucket into the console bucket and replaces what was there (read, list, write, delete ' +
          'of objects it cannot name in advance) and invalidates the distribution (CloudFront takes no resource ARN); it runs only during deploys.',
      })),
      { id: 'AwsSolutions-L1', reason: 'The runtime of CDK\'s BucketDeployment function is chosen by aws-cdk-lib and follows its releases.' },
    );
  }
}
