import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, AssetStaging, CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { CandlekeepStack } from '../../lib/candlekeep-stack.ts';
import { projectPath } from '../../lib/constructs/candlekeep-function.ts';

/** The context in cdk.json (feature flags + candlekeep settings), so tests see what `cdk synth` sees. */
export const cdkJsonContext = (JSON.parse(readFileSync(projectPath('cdk.json'), 'utf8')) as { context: Record<string, unknown> })
  .context;

export function createApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...cdkJsonContext, ...context } });
}

export interface SynthesizedStack {
  app: App;
  stack: CandlekeepStack;
  template: Template;
}

/** Builds the stack from cdk.json context plus `context` overrides; bundles the Lambdas with local esbuild. */
export function synthesizeStack(context: Record<string, unknown> = {}): SynthesizedStack {
  const app = createApp(context);
  const stack = new CandlekeepStack(app, 'Candlekeep-test');
  return { app, stack, template: Template.fromStack(stack) };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type CfnResource = { Type: string; Properties?: Record<string, Json> };

export function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** Logical id of a construct's CloudFormation resource in the synthesized stack. */
export function logicalIdIn(synth: SynthesizedStack, construct: IConstruct): string {
  const child = construct.node.defaultChild;
  if (!(child instanceof CfnElement)) throw new Error(`${construct.node.path} has no L1 resource`);
  return synth.stack.getLogicalId(child);
}

export function resourceIn(synth: SynthesizedStack, construct: IConstruct): CfnResource {
  const found = synth.template.toJSON().Resources[logicalIdIn(synth, construct)] as CfnResource | undefined;
  if (!found) throw new Error(`no resource for ${construct.node.path}`);
  return found;
}

export type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

/** Every statement of the policies attached to a function's role. */
export function roleStatementsIn(synth: SynthesizedStack, fnConstruct: { serviceRole: IConstruct }): Statement[] {
  const roleId = logicalIdIn(synth, fnConstruct.serviceRole);
  const policies = Object.values(synth.template.findResources('AWS::IAM::Policy')) as CfnResource[];
  return policies
    .filter((p) => asArray(p.Properties?.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId })))
    .flatMap((p) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** The folder a function's bundle was staged in (index.mjs and whatever the bundling copied beside it). */
export function bundleDir(fn: IConstruct): string {
  return (fn.node.findChild('Code').node.findChild('Stage') as AssetStaging).absoluteStagedPath;
}

/** Names the function's ESM bundle exports: the Lambda handler name must be one of them. */
export function exportedNames(fn: IConstruct): string[] {
  const bundle = readFileSync(join(bundleDir(fn), 'index.mjs'), 'utf8');
  return [...bundle.matchAll(/export\s*\{([^}]*)\}/g)].flatMap((m) => (m[1] ?? '').split(',').map((part) => part.trim().split(/\s+as\s+/).pop() ?? ''));
}
