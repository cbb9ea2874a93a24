/**
 * The AWS side of a local run, taken from the synthesized CDK stack rather than from a second list:
 *
 *   const synth = synthesizeCandlekeep();                      // the same stack `cdk deploy` deploys
 *   const local = localTemplate(synth, { services, inboxes: true });
 *   const deployment = await deployLocalTemplate(cfn, 'Candlekeep-dev', local);
 *
 * LocalStack without a Docker engine cannot run Lambda, so the functions (and what only exists for
 * them: roles, log groups, permissions, the API Gateway in front of them) are taken out of the
 * template; everything else (queues with their redrive policies, the secret, the bus and its rule,
 * schedule groups and schedules, alarm topic and key when LocalStack offers SNS/KMS) is deployed
 * through LocalStack's CloudFormation. References to removed resources become placeholder ARNs.
 * The removed functions are then described (`localFunctions`) so a local process can run their
 * handlers with the environment, batch settings and schedules the template gives them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  UpdateStackCommand,
  type Stack as CfnStack,
} from '@aws-sdk/client-cloudformation';
import { App, type CfnElement } from 'aws-cdk-lib';
import { REPO_ROOT } from './paths.ts';

// ---------------------------------------------------------------------------------------------
// Template shapes

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export interface CfnResource {
  Type: string;
  Properties?: Record<string, Json>;
  DependsOn?: string | string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Metadata?: Record<string, Json>;
  Condition?: string;
}
export interface CfnTemplate {
  Description?: string;
  Parameters?: Record<string, Json>;
  Rules?: Record<string, Json>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: Json; Description?: string; Export?: Json }>;
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Synthesis

/** Which source file each function of the stack runs; checked against the template below. */
const FUNCTION_ENTRIES = {
  writer: 'functions/writer/handler.ts',
  pull: 'functions/pull/handler.ts',
  planner: 'functions/backfill/planner-handler.ts',
  worker: 'functions/backfill/worker-handler.ts',
  api: 'functions/api/handler.ts',
} as const;
export type FunctionRole = keyof typeof FUNCTION_ENTRIES;

export interface SynthesizedCandlekeep {
  stackName: string;
  template: CfnTemplate;
  /** Logical ids of the resources a local run addresses by role. */
  ids: {
    functions: Record<FunctionRole, string>;
    candlesQueue: string;
    deadLetterQueue: string;
    databaseSecret: string;
    backfillBus: string;
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
  const { CandlekeepStack } = await import('../lib/candlekeep-stack.ts');
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
      planner: id(stack.backfill.planner),
      worker: id(stack.backfill.worker),
      api: id(stack.api.handler),
    };
    // A function added to the stack without an entry here would silently not run locally.
    const known = new Set(Object.values(functions));
    const unknown = Object.entries(template.Resources)
      .filter(([lid, r]) => r.Type === 'AWS::Lambda::Function' && !known.has(lid))
      .map(([lid]) => lid);
    if (unknown.length > 0) {
      throw new Error(`dev/template-resources.ts: no local entry for Lambda function(s) ${unknown.join(', ')}; add them to FUNCTION_ENTRIES`);
    }
    return {
      stackName: stack.stackName,
      template,
      ids: {
        functions,
        candlesQueue: id(stack.candlesQueue),
        deadLetterQueue: id(stack.deadLetterQueue),
        databaseSecret: id(stack.databaseSecret),
        backfillBus: id(stack.backfill.bus),
      },
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The local template

/** Resource types deployed to LocalStack, by the LocalStack service that must be up for them. */
const LOCAL_TYPES: Record<string, string> = {
  'AWS::SQS::Queue': 'sqs',
  'AWS::SQS::QueuePolicy': 'sqs',
  'AWS::SecretsManager::Secret': 'secretsmanager',
  'AWS::Events::EventBus': 'events',
  'AWS::Events::Rule': 'events',
  'AWS::Scheduler::ScheduleGroup': 'scheduler',
  'AWS::Scheduler::Schedule': 'scheduler',
  'AWS::SNS::Topic': 'sns',
  'AWS::SNS::TopicPolicy': 'sns',
  'AWS::SNS::Subscription': 'sns',
  'AWS::KMS::Key': 'kms',
  'AWS::CloudWatch::Alarm': 'cloudwatch',
  'AWS::IAM::Role': 'iam',
  'AWS::IAM::Policy': 'iam',
};

/** Attribute outputs added so a local run can read every deployed name, URL and ARN back. */
const ARN_ATTRIBUTE: Record<string, string> = {
  'AWS::SQS::Queue': 'Arn',
  'AWS::Events::EventBus': 'Arn',
  'AWS::Scheduler::ScheduleGroup': 'Arn',
  'AWS::Scheduler::Schedule': 'Arn',
  'AWS::KMS::Key': 'Arn',
  'AWS::IAM::Role': 'Arn',
};
export const refOutput = (logicalId: string) => `LocalRef${logicalId}`;
export const arnOutput = (logicalId: string) => `LocalArn${logicalId}`;
export const inboxId = (functionId: string) => `LocalInbox${functionId}`.slice(0, 255);

export interface LocalTemplateOptions {
  /**
   * LocalStack services that are up (from its health endpoint); resources of other services are
   * left out like the Lambdas. Default: all.
   */
  services?: ReadonlySet<string>;
  /**
   * Give each function an EventBridge rule targets an SQS "inbox" queue in its place, so a local
   * process receives the events the rule matches (LocalStack delivers rule events to SQS without
   * Docker). Default false: the rule keeps a placeholder target.
   */
  inboxes?: boolean;
}

export interface LocalTemplate {
  template: CfnTemplate;
  /** Logical id → type of everything taken out. */
  removed: Map<string, string>;
  /** Function logical id → its inbox queue's logical id (with `inboxes`). */
  inboxes: Map<string, string>;
}

/** Keeps only what LocalStack can host, with references to the rest replaced by placeholders. */
export function localTemplate(synth: SynthesizedCandlekeep, opts: LocalTemplateOptions = {}): LocalTemplate {
  const source = synth.template;
  const removed = new Map<string, string>();
  const kept: Record<string, CfnResource> = {};
  const lambdaRoles = new Set(
    Object.entries(source.Resources)
      .filter(([, r]) => r.Type === 'AWS::IAM::Role' && JSON.stringify(r.Properties?.AssumeRolePolicyDocument ?? '').includes('lambda.amazonaws.com'))
      .map(([id]) => id),
  );
  for (const [id, r] of Object.entries(source.Resources)) {
    const service = LOCAL_TYPES[r.Type];
    const serviceUp = service !== undefined && (opts.services?.has(service) ?? true);
    // Roles that only Lambdas assume, and the policies attached to them, exist only for the functions.
    const forLambda =
      lambdaRoles.has(id) ||
      (r.Type === 'AWS::IAM::Policy' && referencedIds(r.Properties?.Roles ?? []).every((role) => lambdaRoles.has(role)));
    if (serviceUp && !forLambda) kept[id] = structuredClone(r);
    else removed.set(id, r.Type);
  }

  const inboxes = new Map<string, string>();
  if (opts.inboxes) {
    for (const r of Object.values(kept)) {
      if (r.Type !== 'AWS::Events::Rule') continue;
      for (const target of (r.Properties?.Targets ?? []) as { [k: string]: Json }[]) {
        const fn = getAttTarget(target.Arn);
        if (!fn || source.Resources[fn]?.Type !== 'AWS::Lambda::Function') continue;
        const inbox = inboxId(fn);
        inboxes.set(fn, inbox);
        target.Arn = { 'Fn::GetAtt': [inbox, 'Arn'] };
      }
    }
    for (const [fn, inbox] of inboxes) {
      const timeout = Number(source.Resources[fn]?.Properties?.Timeout ?? 30);
      // Six times the function's timeout, the same rule the stack applies to its own queues.
      kept[inbox] = { Type: 'AWS::SQS::Queue', Properties: { VisibilityTimeout: timeout * 6, SqsManagedSseEnabled: true } };
    }
  }

  const stackName = synth.stackName;
  const resources: Record<string, CfnResource> = {};
  for (const [id, r] of Object.entries(kept)) {
    const out: CfnResource = { ...r, Properties: replaceRemoved(r.Properties ?? {}, removed, stackName) as Record<string, Json> };
    const deps = new Set((r.DependsOn === undefined ? [] : Array.isArray(r.DependsOn) ? r.DependsOn : [r.DependsOn]).filter((d) => !removed.has(d)));
    if (deps.size > 0) out.DependsOn = [...deps];
    else delete out.DependsOn;
    // Local stacks are disposable: deleting one (tests, `--reset`) must not leave groups behind.
    out.DeletionPolicy = 'Delete';
    out.UpdateReplacePolicy = 'Delete';
    resources[id] = out;
  }

  const outputs: NonNullable<CfnTemplate['Outputs']> = {};
  for (const [name, o] of Object.entries(source.Outputs ?? {})) {
    // An output about a removed resource (the API URL, a function name) would only be a placeholder.
    if (referencedIds(o.Value).some((id) => removed.has(id))) continue;
    const { Export: _export, ...rest } = o;
    outputs[name] = rest;
  }
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type.endsWith('Policy')) continue;
    outputs[refOutput(id)] = { Value: { Ref: id } };
    const attr = ARN_ATTRIBUTE[r.Type];
    if (attr) outputs[arnOutput(id)] = { Value: { 'Fn::GetAtt': [id, attr] } };
  }

  // No CDK bootstrap on a local endpoint: its version check (an SSM parameter) cannot pass.
  const { Parameters: _p, Rules: _r, Resources: _res, Outputs: _o, ...rest } = source;
  const template: CfnTemplate = {
    ...rest,
    Description: `${source.Description ?? 'candlekeep'} (local: non-Lambda resources only)`,
    Resources: resources,
    Outputs: outputs,
  };
  return { template, removed, inboxes };
}

function getAttTarget(value: Json | undefined): string | undefined {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const att = value['Fn::GetAtt'];
    if (Array.isArray(att) && typeof att[0] === 'string') return att[0];
  }
  return undefined;
}

/** Logical ids a value refers to with Ref, Fn::GetAtt or ${Id} / ${Id.Attr} inside Fn::Sub. */
export function referencedIds(value: Json): string[] {
  const out: string[] = [];
  const walk = (v: Json): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (k === 'Ref' && typeof inner === 'string' && !inner.startsWith('AWS::')) out.push(inner);
        else if (k === 'Fn::GetAtt' && Array.isArray(inner) && typeof inner[0] === 'string') out.push(inner[0]);
        else if (k === 'Fn::Sub') {
          const text = Array.isArray(inner) ? inner[0] : inner;
          if (typeof text === 'string') for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}/g)) out.push(m[1]!);
          if (Array.isArray(inner)) walk(inner[1] ?? null);
        } else walk(inner);
      }
    }
  };
  walk(value);
  return out;
}

const PSEUDO = 'arn:${AWS::Partition}';
/** A syntactically valid ARN (or name, for a Ref) for a resource that is not deployed locally. */
function placeholder(type: string, id: string, stackName: string, attr: string | undefined): string {
  const name = `${stackName}-${id}`.slice(0, 64);
  switch (type) {
    case 'AWS::Lambda::Function':
      return attr ? `${PSEUDO}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${name}` : name;
    case 'AWS::IAM::Role':
      return attr === 'Arn' ? `${PSEUDO}:iam::\${AWS::AccountId}:role/${name}` : name;
    case 'AWS::SNS::Topic':
      return `${PSEUDO}:sns:\${AWS::Region}:\${AWS::AccountId}:${name}`;
    case 'AWS::KMS::Key':
      return attr === 'Arn' ? `${PSEUDO}:kms:\${AWS::Region}:\${AWS::AccountId}:key/${name}` : name;
    case 'AWS::Logs::LogGroup':
      return attr ? `${PSEUDO}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:${name}:*` : name;
    default: {
      const service = type.split('::')[1]?.toLowerCase() ?? 'local';
      return attr ? `${PSEUDO}:${service}:\${AWS::Region}:\${AWS::AccountId}:${name}/${attr}` : name;
    }
  }
}

function replaceRemoved(value: Json, removed: ReadonlyMap<string, string>, stackName: string): Json {
  if (Array.isArray(value)) return value.map((v) => replaceRemoved(v, removed, stackName));
  if (!value || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const ref = value.Ref;
    if (typeof ref === 'string' && removed.has(ref)) {
      const text = placeholder(removed.get(ref)!, ref, stackName, undefined);
      return text.includes('${') ? { 'Fn::Sub': text } : text;
    }
    const att = value['Fn::GetAtt'];
    if (Array.isArray(att) && typeof att[0] === 'string' && removed.has(att[0])) {
      const text = placeholder(removed.get(att[0])!, att[0], stackName, String(att[1] ?? 'Arn'));
      return text.includes('${') ? { 'Fn::Sub': text } : text;
    }
    const sub = value['Fn::Sub'];
    if (typeof sub === 'string' || Array.isArray(sub)) {
      const text = Array.isArray(sub) ? sub[0] : sub;
      if (typeof text === 'string') {
        const replaced = text.replace(/\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}/g, (whole, id: string, attr: string | undefined) =>
          removed.has(id) ? placeholder(removed.get(id)!, id, stackName, attr) : whole,
        );
        const vars = Array.isArray(sub) ? replaceRemoved(sub[1] ?? {}, removed, stackName) : undefined;
        return { 'Fn::Sub': vars === undefined ? replaced : [replaced, vars] };
      }
    }
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceRemoved(v, removed, stackName)]));
}

// ---------------------------------------------------------------------------------------------
// Deploying through CloudFormation

export interface Deployment {
  stackName: string;
  /** Every stack output: the stack's own and the LocalRef / LocalArn ones added above. */
  outputs: Record<string, string>;
  region: string;
  account: string;
  /** `{Ref}` value of a deployed resource (queue URL, bus name, secret ARN, ...). */
  ref(logicalId: string): string;
  /** ARN of a deployed resource. */
  arn(logicalId: string): string;
  /** Resolves a template value (Ref, Fn::GetAtt Arn, Fn::Join, Fn::Sub, pseudo parameters) against this deployment. */
  resolve(value: Json): string;
}

const TERMINAL_OK = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_ROLLBACK_COMPLETE']);
const TERMINAL_FAILED = new Set(['CREATE_FAILED', 'ROLLBACK_COMPLETE', 'ROLLBACK_FAILED', 'DELETE_FAILED', 'UPDATE_ROLLBACK_FAILED', 'UPDATE_FAILED']);

export interface DeployOptions {
  log?: (msg: string) => void;
  /** Default 180 s; LocalStack usually takes about one. */
  timeoutMs?: number;
}

/**
 * CreateStack, or UpdateStack when it exists (a second `npm run dev` keeps the queues and what is
 * in them). A stack left failed by an earlier attempt is deleted and created again.
 */
export async function deployLocalTemplate(cfn: CloudFormationClient, stackName: string, local: LocalTemplate, opts: DeployOptions = {}): Promise<Deployment> {
  const log = opts.log ?? (() => {});
  const body = JSON.stringify(local.template);
  if (Buffer.byteLength(body) > 51_200) {
    throw new Error(`the local template is ${Buffer.byteLength(body)} bytes, above CloudFormation's 51,200-byte TemplateBody limit`);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  let existing = await describeStack(cfn, stackName);
  if (existing && (TERMINAL_FAILED.has(existing.StackStatus ?? '') || existing.StackStatus === 'CREATE_IN_PROGRESS')) {
    log(`CloudFormation: stack ${stackName} is ${existing.StackStatus}; deleting it first`);
    await deleteLocalStack(cfn, stackName, { timeoutMs: Math.max(10_000, deadline - Date.now()) });
    existing = undefined;
  }
  const started = Date.now();
  if (!existing) {
    await cfn.send(new CreateStackCommand({ StackName: stackName, TemplateBody: body, Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] }));
  } else {
    try {
      await cfn.send(new UpdateStackCommand({ StackName: stackName, TemplateBody: body, Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] }));
    } catch (err) {
      if (!/No updates are to be performed/i.test((err as Error).message)) throw err;
    }
  }
  const stack = await waitForStack(cfn, stackName, deadline);
  log(`CloudFormation: stack ${stackName} ${stack.StackStatus} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return deploymentOf(stack);
}

export async function describeStack(cfn: CloudFormationClient, stackName: string): Promise<CfnStack | undefined> {
  try {
    const out = await cfn.send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = out.Stacks?.[0];
    return stack && stack.StackStatus !== 'DELETE_COMPLETE' ? stack : undefined;
  } catch (err) {
    if (/does not exist/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

async function waitForStack(cfn: CloudFormationClient, stackName: string, deadline: number): Promise<CfnStack> {
  for (;;) {
    const stack = await describeStack(cfn, stackName);
    const status = stack?.StackStatus ?? 'DELETE_COMPLETE';
    if (stack && TERMINAL_OK.has(status)) {
      if (status === 'UPDATE_ROLLBACK_COMPLETE') throw new Error(`stack ${stackName} update rolled back: ${await failureReasons(cfn, stackName)}`);
      return stack;
    }
    if (TERMINAL_FAILED.has(status) || !stack) {
      throw new Error(`stack ${stackName} is ${status}: ${await failureReasons(cfn, stackName)}`);
    }
    if (Date.now() > deadline) throw new Error(`stack ${stackName} still ${status} at the deadline`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function failureReasons(cfn: CloudFormationClient, stackName: string): Promise<string> {
  try {
    const out = await cfn.send(new DescribeStackEventsCommand({ StackName: stackName }));
    const failed = (out.StackEvents ?? []).filter((e) => /FAILED/.test(e.ResourceStatus ?? '') && e.ResourceStatusReason);
    return failed.slice(0, 5).map((e) => `${e.LogicalResourceId} (${e.ResourceType}): ${e.ResourceStatusReason}`).join('; ') || 'no reason given';
  } catch (err) {
    return `(could not read stack events: ${(err as Error).message})`;
  }
}

export async function deleteLocalStack(cfn: CloudFormationClient, stackName: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  if (!(await describeStack(cfn, stackName))) return;
  await cfn.send(new DeleteStackCommand({ StackName: stackName }));
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let retried = false;
  for (;;) {
    const stack = await describeStack(cfn, stackName);
    if (!stack) return;
    if (stack.StackStatus === 'DELETE_FAILED') {
      // LocalStack can fail deleting a resource an earlier failed create never made; a second
      // delete skips it.
      if (retried) throw new Error(`deleting stack ${stackName} failed: ${stack.StackStatusReason ?? (await failureReasons(cfn, stackName))}`);
      retried = true;
      await cfn.send(new DeleteStackCommand({ StackName: stackName }));
    }
    if (Date.now() > deadline) throw new Error(`stack ${stackName} still ${stack.StackStatus} at the deadline`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export function deploymentOf(stack: CfnStack): Deployment {
  const outputs = Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
  const [, , , region = 'us-east-1', account = '000000000000'] = (stack.StackId ?? '').split(':');
  const need = (key: string, what: string) => {
    const v = outputs[key];
    if (v === undefined) throw new Error(`stack ${stack.StackName} has no ${what} (output ${key}); is it deployed from this template?`);
    return v;
  };
  const ref = (id: string) => need(refOutput(id), `resource ${id}`);
  const arn = (id: string) => need(arnOutput(id), `ARN of ${id}`);
  const pseudo: Record<string, string> = { 'AWS::Region': region, 'AWS::AccountId': account, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com', 'AWS::StackName': stack.StackName ?? '' };
  const resolve = (value: Json): string => {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      if (typeof value.Ref === 'string') return pseudo[value.Ref] ?? ref(value.Ref);
      const att = value['Fn::GetAtt'];
      if (Array.isArray(att) && typeof att[0] === 'string') {
        if (att[1] !== 'Arn') throw new Error(`cannot resolve Fn::GetAtt ${att.join('.')} locally`);
        return arn(att[0]);
      }
      const join = value['Fn::Join'];
      if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) return join[1].map(resolve).join(join[0]);
      const sub = value['Fn::Sub'];
      if (typeof sub === 'string') {
        return sub.replace(/\$\{([A-Za-z0-9:]+)(?:\.(Arn))?\}/g, (_, id: string, attr: string | undefined) => pseudo[id] ?? (attr ? arn(id) : ref(id)));
      }
    }
    throw new Error(`cannot resolve ${JSON.stringify(value)} locally`);
  };
  return { stackName: stack.StackName ?? '', outputs, region, account, ref, arn, resolve };
}

// ---------------------------------------------------------------------------------------------
// What the removed functions need to run locally

export interface LocalFunction {
  role: FunctionRole;
  logicalId: string;
  /** Source file, relative to the repository root. */
  entry: string;
  timeoutSeconds: number;
  reservedConcurrency: number | undefined;
  /** The function's environment as the template has it (intrinsics unresolved). */
  environment: Record<string, Json>;
}

export interface LocalEventSource {
  functionId: string;
  queueId: string;
  batchSize: number;
  maxBatchingWindowMs: number;
  maxConcurrency: number;
  reportBatchItemFailures: boolean;
}

export interface LocalSchedule {
  logicalId: string;
  functionId: string;
  expression: string;
  everyMs: number;
  input: Json;
}

export interface LocalFunctions {
  functions: LocalFunction[];
  eventSources: LocalEventSource[];
  schedules: LocalSchedule[];
}

/** Reads the functions, their SQS event source mappings and their schedules out of the full template. */
export function localFunctions(synth: SynthesizedCandlekeep): LocalFunctions {
  const resources = synth.template.Resources;
  const functions = (Object.entries(synth.ids.functions) as [FunctionRole, string][]).map(([role, logicalId]): LocalFunction => {
    const p = resources[logicalId]?.Properties ?? {};
    const env = ((p.Environment as { Variables?: Record<string, Json> } | undefined)?.Variables ?? {}) as Record<string, Json>;
    return {
      role,
      logicalId,
      entry: FUNCTION_ENTRIES[role],
      timeoutSeconds: Number(p.Timeout ?? 3),
      reservedConcurrency: p.ReservedConcurrentExecutions === undefined ? undefined : Number(p.ReservedConcurrentExecutions),
      environment: env,
    };
  });
  const eventSources: LocalEventSource[] = [];
  const schedules: LocalSchedule[] = [];
  for (const [logicalId, r] of Object.entries(resources)) {
    const p = r.Properties ?? {};
    if (r.Type === 'AWS::Lambda::EventSourceMapping') {
      const functionId = (p.FunctionName as { Ref?: string } | undefined)?.Ref;
      const queueId = getAttTarget(p.EventSourceArn);
      if (!functionId || !queueId) continue;
      eventSources.push({
        functionId,
        queueId,
        batchSize: Number(p.BatchSize ?? 10),
        maxBatchingWindowMs: Number(p.MaximumBatchingWindowInSeconds ?? 0) * 1000,
        maxConcurrency: Number((p.ScalingConfig as { MaximumConcurrency?: number } | undefined)?.MaximumConcurrency ?? 1),
        reportBatchItemFailures: ((p.FunctionResponseTypes ?? []) as Json[]).includes('ReportBatchItemFailures'),
      });
    } else if (r.Type === 'AWS::Scheduler::Schedule') {
      const target = (p.Target ?? {}) as Record<string, Json>;
      const functionId = getAttTarget(target.Arn);
      const expression = String(p.ScheduleExpression ?? '');
      if (!functionId) continue;
      schedules.push({
        logicalId,
        functionId,
        expression,
        everyMs: rateMs(expression),
        input: typeof target.Input === 'string' ? (JSON.parse(target.Input) as Json) : {},
      });
    }
  }
  return { functions, eventSources, schedules };
}

/** `rate(5 minutes)` → 300000. Cron schedules are not used by the stack. */
export function rateMs(expression: string): number {
  const m = /^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$/.exec(expression.trim());
  if (!m) throw new Error(`schedule expression ${expression} is not a rate(); the local scheduler only runs rates`);
  const unit = m[2]!.startsWith('minute') ? 60_000 : m[2]!.startsWith('hour') ? 3_600_000 : 86_400_000;
  return Number(m[1]) * unit;
}

// ---------------------------------------------------------------------------------------------
// LocalStack services

/** Services LocalStack reports as usable, from its health endpoint. */
export async function localStackServices(endpoint: string): Promise<Set<string>> {
  const res = await fetch(`${endpoint.replace(/\/+$/, '')}/_localstack/health`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`LocalStack health at ${endpoint} answered ${res.status}`);
  const body = (await res.json()) as { services?: Record<string, string> };
  return new Set(Object.entries(body.services ?? {}).filter(([, s]) => s === 'available' || s === 'running').map(([name]) => name));
}
