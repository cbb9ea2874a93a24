/** The candlekeep stack synthesized in this process: its template and the logical ids a local run needs. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App, type CfnElement } from 'aws-cdk-lib';
import type { Market } from '../../functions/config/markets.ts';
import { REPO_ROOT } from '../paths.ts';
import type { CfnTemplate } from './shapes.ts';

/** Which source file each function of the stack runs; checked against the template below. */
export const FUNCTION_ENTRIES = {
  writer: 'functions/writer/handler.ts',
  pull: 'functions/pull/handler.ts',
  pullWorker: 'functions/pull/worker-handler.ts',
  planner: 'functions/backfill/planner-handler.ts',
  worker: 'functions/backfill/worker-handler.ts',
  api: 'functions/api/handler.ts',
  authorizer: 'functions/auth/authorizer-handler.ts',
  deadLetterScan: 'functions/dead-letters/handler.ts',
  retention: 'functions/retention/handler.ts',
  migrate: 'functions/migrate/handler.ts',
  exportWorker: 'functions/exports/worker-handler.ts',
} as const;
export type FunctionRole = keyof typeof FUNCTION_ENTRIES;

export interface SynthesizedCandlekeep {
  stackName: string;
  template: CfnTemplate;
  /** cdk.json's seed markets, as the stack validated them; a local deploy applies them to the database. */
  markets: readonly Market[];
  /** Logical ids of the resources a local run addresses by role. */
  ids: {
    functions: Record<FunctionRole, string>;
    candlesQueue: string;
    deadLetterQueue: string;
    databaseSecret: string;
    backfillBus: string;
    exportsBucket: string;
  };
}

export interface SynthesizeOptions {
  /** Default `Candlekeep-<stage>` from cdk.json, as bin/app.ts names it. */
  stackName?: string;
  /** Overrides on top of cdk.json's context (e.g. other markets). */
  context?: Record<string, unknown>;
}

export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return cdkJson.context ?? {};
}

/**
 * Synthesizes the candlekeep stack in this process, exactly as `cdk synth` builds it from cdk.json,
 * but without bundling the Lambdas (nothing here deploys their code) and without the cdk-nag plugin
 * (the infra tests run it).
 */
export async function synthesizeCandlekeep(opts: SynthesizeOptions = {}): Promise<SynthesizedCandlekeep> {
  // Loaded here so importing this module (e.g. for the template types) stays cheap.
  const { CandlekeepStack } = await import('../../lib/candlekeep-stack.ts');
  const context = { ...cdkJsonContext(), ...opts.context, 'aws:cdk:bundling-stacks': [] };
  const outdir = mkdtempSync(path.join(tmpdir(), 'candlekeep-synth-'));
  try {
    const app = new App({ outdir, context });
    const stage = String(app.node.tryGetContext('candlekeep:stage') ?? 'dev');
    const stack = new CandlekeepStack(app, opts.stackName ?? `Candlekeep-${stage}`);
    const template = app.synth().getStackByName(stack.stackName).template as CfnTemplate;
    const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as CfnElement);
    const functions: Record<FunctionRole, string> = {
      writer: id(stack.writer),
      pull: id(stack.ingestion.pull),
      pullWorker: id(stack.ingestion.worker),
      planner: id(stack.backfill.planner),
      worker: id(stack.backfill.worker),
      api: id(stack.api.handler),
      authorizer: id(stack.api.authorizerFunction),
      deadLetterScan: id(stack.deadLetters.scan),
      retention: id(stack.retention.function),
      migrate: id(stack.migrations.function),
      exportWorker: id(stack.exports.worker),
    };
    // A function added to the stack without an entry here would silently not run locally.
    // CDK's own function that copies the console's files into its bucket at deploy time is not one of ours.
    const known = new Set([...Object.values(functions), id(stack.console.copier)]);
    const unknown = Object.entries(template.Resources)
      .filter(([lid, r]) => r.Type === 'AWS::Lambda::Function' && !known.has(lid))
      .map(([lid]) => lid);
    if (unknown.length > 0) {
      throw new Error(`dev/template/synthesize.ts: no local entry for Lambda function(s) ${unknown.join(', ')}; add them to FUNCTION_ENTRIES`);
    }
    return {
      stackName: stack.stackName,
      template,
      markets: stack.markets,
      ids: {
        functions,
        candlesQueue: id(stack.candlesQueue),
        deadLetterQueue: id(stack.deadLetterQueue),
        databaseSecret: id(stack.databaseSecret),
        backfillBus: id(stack.backfill.bus),
        exportsBucket: id(stack.exports.bucket),
      },
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
