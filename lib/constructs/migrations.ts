import { CustomResource, Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { Market } from '../../functions/config/markets.ts';
import { MIGRATIONS_DIGEST_PROPERTY, SEED_DIGEST_PROPERTY, SEED_MARKETS_FILE, seedDigest } from '../../functions/migrate/migrate-lambda.ts';
import { migrationsDigest, readMigrationsSync } from '../../functions/store/migrate.ts';
import { CandlekeepFunction } from './candlekeep-function.ts';

/** Migrations run inside one invocation; Lambda's longest, since a large one may rewrite a table. */
export const MIGRATE_TIMEOUT = Duration.minutes(15);
/** Where the bundle carries migrations/*.sql (Lambda unpacks the asset in /var/task). */
export const BUNDLED_MIGRATIONS_DIR = '/var/task/migrations';

export interface MigrationsProps {
  readonly databaseSecret: secretsmanager.ISecret;
  /**
   * cdk.json's seed markets, applied after the migrations (markets the database has never seen are
   * followed). Carried as a file in the function's bundle, never in an environment or the template:
   * a list of hundreds of markets fits neither. @default none
   */
  readonly seedMarkets?: readonly Market[];
  /** @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * Deploy-time migrations: a function carrying the project's migration runner and migrations/*.sql,
 * and a custom resource that invokes it whenever the migrations' digest changes, that is on every
 * deploy that ships a new or changed migration. A failed migration fails the resource, so the deploy
 * fails and rolls back. The function can also be invoked by hand (stack output MigrateFunctionName),
 * e.g. right after the URL is first put in the secret. Either way it then applies the seed markets.
 */
export class Migrations extends Construct {
  public readonly function: CandlekeepFunction;
  public readonly resource: CustomResource;
  /** sha-256 over the migrations' names and contents, as the function computes it from its bundle. */
  public readonly digest: string;
  /** sha-256 of the bundled seed markets file. */
  public readonly seedDigest: string;

  constructor(scope: Construct, id: string, props: MigrationsProps) {
    super(scope, id);

    this.digest = migrationsDigest(readMigrationsSync());
    const seedText = JSON.stringify(props.seedMarkets ?? []);
    this.seedDigest = seedDigest(seedText);

    this.function = new CandlekeepFunction(this, 'Function', {
      entry: 'functions/migrate/handler.ts',
      handler: 'handler',
      description: 'Applies the bundled candlekeep migrations (on deploy, or when invoked)',
      timeout: MIGRATE_TIMEOUT,
      environment: {
        MIGRATIONS_DIR: BUNDLED_MIGRATIONS_DIR,
        SEED_MARKETS_PATH: `/var/task/${SEED_MARKETS_FILE}`,
        POWERTOOLS_SERVICE_NAME: 'candlekeep-migrate',
      },
      bundleFolders: ['migrations'],
      bundleFiles: { [SEED_MARKETS_FILE]: seedText },
      logRemovalPolicy: props.logRemovalPolicy,
    });
    this.function.bindDatabaseSecret(props.databaseSecret);

    this.resource = new CustomResource(this, 'Run', {
      serviceToken: this.function.functionArn,
      resourceType: 'Custom::CandlekeepMigrations',
      properties: { [MIGRATIONS_DIGEST_PROPERTY]: this.digest, [SEED_DIGEST_PROPERTY]: this.seedDigest },
    });
    // The function must be able to read the secret when CloudFormation invokes it.
    this.resource.node.addDependency(this.function.serviceRole);
  }
}
