import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMarkets } from '../../functions/config/markets.ts';
import { seedDigest } from '../../functions/migrate/migrate-lambda.ts';
import { MIGRATIONS_DIR, migrationsDigest, readMigrationsSync } from '../../functions/store/migrate.ts';
import { bundleDir, exportedNames, logicalIdIn, resourceIn, roleStatementsIn, synthesizeStack, type CfnResource, type SynthesizedStack } from './support.ts';

let synth: SynthesizedStack;

beforeAll(() => {
  synth = synthesizeStack(); // bundles every Lambda with local esbuild
}, 180_000);

describe('deploy-time migrations', () => {
  it('run as a custom resource whose properties carry the digest of migrations/*.sql, invoking the migration function', () => {
    const run = Object.values(synth.template.findResources('Custom::CandlekeepMigrations') as Record<string, CfnResource & { DependsOn?: string[] }>);
    expect(run).toHaveLength(1);
    const fnId = logicalIdIn(synth, synth.stack.migrations.function);
    expect(run[0]!.Properties).toEqual({
      ServiceToken: { 'Fn::GetAtt': [fnId, 'Arn'] },
      MigrationsDigest: migrationsDigest(readMigrationsSync()),
      SeedDigest: seedDigest(JSON.stringify(synth.stack.markets)),
    });
    // Invoked only once the function may read the secret.
    expect(run[0]!.DependsOn).toEqual(expect.arrayContaining([logicalIdIn(synth, synth.stack.migrations.function.serviceRole)]));
    expect(JSON.stringify(run[0]!.DependsOn)).toContain('DefaultPolicy');
  });

  it('change digest whenever a migration is added or edited, so such a deploy runs them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ck-digest-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      const before = migrationsDigest(readMigrationsSync(dir));
      expect(before).toBe(migrationsDigest(readMigrationsSync()));
      writeFileSync(join(dir, '0999_next.sql'), 'SELECT 1;\n');
      const added = migrationsDigest(readMigrationsSync(dir));
      expect(added).not.toBe(before);
      writeFileSync(join(dir, '0999_next.sql'), 'SELECT 2;\n');
      expect(migrationsDigest(readMigrationsSync(dir))).not.toBe(added);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bundle the runner with every migration file, byte for byte, where MIGRATIONS_DIR points', () => {
    const fn = synth.stack.migrations.function;
    expect(exportedNames(fn)).toContain('handler');
    const bundled = join(bundleDir(fn), 'migrations');
    const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).sort();
    expect(readdirSync(bundled).sort()).toEqual(files);
    for (const f of files) expect(readFileSync(join(bundled, f), 'utf8')).toBe(readFileSync(join(MIGRATIONS_DIR, f), 'utf8'));
    expect(resourceIn(synth, fn).Properties).toMatchObject({
      Handler: 'index.handler',
      Timeout: 900,
      Environment: { Variables: { MIGRATIONS_DIR: '/var/task/migrations', DATABASE_SECRET_ARN: { Ref: logicalIdIn(synth, synth.stack.databaseSecret as never) } } },
    });
  });

  it('bundle cdk.json\'s seed markets as a file the function reads after migrating, whose digest the custom resource carries', () => {
    const fn = synth.stack.migrations.function;
    const text = readFileSync(join(bundleDir(fn), 'seed-markets.json'), 'utf8');
    expect(parseMarkets(JSON.parse(text))).toEqual(synth.stack.markets);
    expect(synth.stack.migrations.seedDigest).toBe(seedDigest(text));
    expect(resourceIn(synth, fn).Properties).toMatchObject({ Environment: { Variables: { SEED_MARKETS_PATH: '/var/task/seed-markets.json' } } });
  });

  it('carry a seed of hundreds of markets in the bundle, not in the template, and change the digest with it', () => {
    const many = Array.from({ length: 400 }, (_, i) => ({ exchange: 'binance', symbol: `SEED${i}/USDT`, intervals: ['1m', '1h'], start: '2024-01-01' }));
    const other = synthesizeStack({ 'candlekeep:markets': many });
    expect(JSON.stringify(other.template.toJSON())).not.toContain('SEED399/USDT');
    const bundled = JSON.parse(readFileSync(join(bundleDir(other.stack.migrations.function), 'seed-markets.json'), 'utf8')) as unknown[];
    expect(bundled).toHaveLength(400);
    expect(other.stack.migrations.seedDigest).not.toBe(synth.stack.migrations.seedDigest);
    // A new seed is new code for the function, so CloudFormation updates the function before invoking it.
    const code = (s: SynthesizedStack) => JSON.stringify((resourceIn(s, s.stack.migrations.function).Properties as { Code: unknown }).Code);
    expect(code(other)).not.toBe(code(synth));
  }, 180_000);

  it('give the migration function the secret to read and nothing else but its logs', () => {
    const actions = roleStatementsIn(synth, synth.stack.migrations.function).flatMap((s) => s.Action);
    expect(actions.filter((a) => !String(a).startsWith('logs:')).sort()).toEqual(['secretsmanager:GetSecretValue']);
  });

  it('name the migration function in an output, for invoking it after the URL is first stored', () => {
    synth.template.hasOutput('MigrateFunctionName', { Value: { Ref: logicalIdIn(synth, synth.stack.migrations.function) } });
  });
});

describe('database not configured', () => {
  it('alarms, through the alarm topic, when a pull finds no URL in the secret', () => {
    const alarm = resourceIn(synth, synth.stack.ingestMonitoring.databaseNotConfiguredAlarm);
    expect(alarm.Properties).toMatchObject({
      AlarmName: 'Candlekeep-test-database-not-configured',
      Namespace: 'candlekeep',
      MetricName: 'DatabaseNotConfigured',
      Dimensions: [{ Name: 'service', Value: 'candlekeep-pull' }],
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: logicalIdIn(synth, synth.stack.alarmTopic.topic) }],
    });
    expect(JSON.stringify(alarm.Properties?.AlarmDescription)).toMatch(/Database not configured: .*MigrateFunctionName/);
  });
});
