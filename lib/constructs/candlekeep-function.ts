import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';

/** Repository root: bundling resolves entries, the lock file and tsconfig from here, whatever the cwd. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of a file under the repository root, e.g. `functions/writer/handler.ts`. */
export function projectPath(relative: string): string {
  return fileURLToPath(new URL(relative, new URL('../../', import.meta.url)));
}

export const DEFAULT_MEMORY_MB = 512;
export const DEFAULT_TIMEOUT = Duration.seconds(30);

// ESM bundles still meet CJS dependencies that call `require` (e.g. `ws` optional natives);
// ESM has no `require`, so define one for them.
const REQUIRE_BANNER = "import { createRequire } from 'node:module';const require = createRequire(import.meta.url);";
const DIRNAME_BANNER = "import { fileURLToPath as __ckFileUrlToPath } from 'node:url';const __dirname = __ckFileUrlToPath(new URL('.', import.meta.url));";

export interface CandlekeepFunctionProps {
  /** Entry file relative to the repository root, e.g. `functions/writer/handler.ts`. */
  readonly entry: string;
  /** Exported function name in the entry; the Lambda handler becomes `index.<handler>`. @default 'handler' */
  readonly handler?: string;
  readonly description?: string;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default 30 seconds */
  readonly timeout?: Duration;
  readonly environment?: Record<string, string>;
  /** @default one month */
  readonly logRetention?: logs.RetentionDays;
  /** What happens to the log group when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Folders of the repository copied next to the bundle (e.g. `migrations`), for files the code reads at run time. */
  readonly bundleFolders?: readonly string[];
  /** Files written next to the bundle at synth time (name → content), for data the code reads at run time. */
  readonly bundleFiles?: Readonly<Record<string, string>>;
  /**
   * Files of the repository copied into the bundle's folder, for a dependency that reads a file
   * beside its own code through `__dirname` (parquet-wasm's .wasm): `__dirname` is then defined as
   * the bundle's folder, which an ESM bundle otherwise lacks.
   */
  readonly bundleAssets?: readonly string[];
}

/**
 * A Node.js Lambda with candlekeep's defaults: Node 24 on ARM64, an ESM esbuild bundle built locally
 * (no Docker), source maps, no X-Ray tracing, and its own log group with a fixed retention. The role
 * is created here so it holds only what is granted: log writes to its own group and the bind/grant
 * helpers' permissions (no AWSLambdaBasicExecutionRole, which allows every log group).
 */
export class CandlekeepFunction extends NodejsFunction {
  /** The execution role; add statements with `addToRolePolicy` or the grant helpers. */
  public readonly serviceRole: iam.Role;

  constructor(scope: Construct, id: string, props: CandlekeepFunctionProps) {
    // Created beside the function because a subclass cannot add children before super().
    const logGroup = new logs.LogGroup(scope, `${id}LogGroup`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(scope, `${id}ServiceRole`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${id}`,
    });

    super(scope, id, {
      entry: projectPath(props.entry),
      handler: props.handler ?? 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: projectPath('package-lock.json'),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? DEFAULT_MEMORY_MB,
      timeout: props.timeout ?? DEFAULT_TIMEOUT,
      // No X-Ray: bare segments without a Tracer cost money and say little, and the Powertools Tracer
      // (the X-Ray SDK) would add tens of ms to every cold start, against a 150 ms init budget.
      // Logs and metrics carry what is needed.
      tracing: lambda.Tracing.DISABLED,
      role,
      logGroup,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        banner: props.bundleAssets?.length ? REQUIRE_BANNER + DIRNAME_BANNER : REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        // Line mapping is what stack traces need; embedding sources would double the bundle.
        sourcesContent: false,
        // The Node.js runtime ships the AWS SDK v3 service clients; which other @aws-sdk packages
        // it has is not documented, so those (the S3 request presigner) are bundled.
        externalModules: ['@aws-sdk/client-*'],
        ...(props.bundleFolders?.length || Object.keys(props.bundleFiles ?? {}).length || props.bundleAssets?.length
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (inputDir: string, outputDir: string) => [
                  ...(props.bundleFolders ?? []).map((folder) => `cp -R "${inputDir}/${folder}" "${outputDir}/${folder}"`),
                  // Written by node (which runs the synth anyway) from base64, so no content needs shell quoting.
                  ...Object.entries(props.bundleFiles ?? {}).map(([name, content]) => {
                    if (!/^[\w.-]+$/.test(name)) throw new Error(`bundle file name ${JSON.stringify(name)} must be a plain file name`);
                    const b64 = Buffer.from(content, 'utf8').toString('base64');
                    return `node -e "require('node:fs').writeFileSync(process.argv[1], Buffer.from(process.argv[2], 'base64'))" "${outputDir}/${name}" "${b64}"`;
                  }),
                  ...(props.bundleAssets ?? []).map((file) => `cp "${inputDir}/${file}" "${outputDir}/"`),
                ],
              },
            }
          : {}),
      },
    });

    this.serviceRole = role;
    logGroup.grantWrite(role);
  }

  /**
   * Lets the function read the database secret and tells it where the secret is, in one step, so
   * the permission and the `DATABASE_SECRET_ARN` variable cannot drift apart.
   */
  bindDatabaseSecret(secret: secretsmanager.ISecret): void {
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        // A secret known by name or partial ARN: its real ARN ends in '-' and six characters.
        resources: [secret.secretFullArn ?? `${secret.secretArn}-??????`],
      }),
    );
    secret.encryptionKey?.grantDecrypt(this);
    this.addEnvironment('DATABASE_SECRET_ARN', secret.secretArn);
  }
}
