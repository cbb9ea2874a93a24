import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
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
