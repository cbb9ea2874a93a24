/**
 * The template LocalStack without Docker can host: the synthesized one without the Lambdas (and
 * what exists only for them), references to those replaced by placeholders, an SQS inbox in place
 * of each function an EventBridge rule targets, and outputs that read every name and ARN back.
 */
import { getAttTarget, referencedIds, replaceRemoved } from './references.ts';
import type { CfnResource, CfnTemplate, Json } from './shapes.ts';
import type { SynthesizedCandlekeep } from './synthesize.ts';

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
  'AWS::S3::Bucket': 's3',
  'AWS::S3::BucketPolicy': 's3',
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
