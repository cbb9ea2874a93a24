/** Deploying the local template through LocalStack's CloudFormation, and deleting it again. */
import {
  CloudFormationClient,
  CreateStackCommand,
  DeleteStackCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  UpdateStackCommand,
  type Stack as CfnStack,
} from '@aws-sdk/client-cloudformation';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { awsClientConfig } from '../localstack/index.ts';
import { deploymentOf, type Deployment } from './deployment.ts';
import type { LocalTemplate } from './local-template.ts';

const TERMINAL_OK = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_ROLLBACK_COMPLETE']);
const TERMINAL_FAILED = new Set(['CREATE_FAILED', 'ROLLBACK_COMPLETE', 'ROLLBACK_FAILED', 'DELETE_FAILED', 'UPDATE_ROLLBACK_FAILED', 'UPDATE_FAILED']);

export interface DeployOptions {
  log?: (msg: string) => void;
  /** Default 180 s; LocalStack usually takes about one. */
  timeoutMs?: number;
  /**
   * LocalStack's endpoint: a template over CloudFormation's 51,200-byte TemplateBody limit is put
   * in a LocalStack S3 bucket and deployed from there (TemplateURL, up to 1 MB), as `cdk deploy`
   * does with its staging bucket.
   */
  endpoint?: string;
}

/** CloudFormation's limit on a template passed inline. */
const TEMPLATE_BODY_LIMIT = 51_200;
const TEMPLATE_BUCKET = 'candlekeep-local-templates';

/** The template as CreateStack/UpdateStack take it: inline, or from LocalStack's S3 when too big. */
async function templateSource(stackName: string, body: string, endpoint: string | undefined): Promise<{ TemplateBody: string } | { TemplateURL: string }> {
  const size = Buffer.byteLength(body);
  if (size <= TEMPLATE_BODY_LIMIT) return { TemplateBody: body };
  if (!endpoint) throw new Error(`the local template is ${size} bytes, above CloudFormation's 51,200-byte TemplateBody limit, and no endpoint was given to upload it to S3`);
  const s3 = new S3Client({ ...awsClientConfig(endpoint), forcePathStyle: true });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: TEMPLATE_BUCKET })).catch((err: unknown) => {
      if (!/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test((err as Error).name)) throw err;
    });
    const key = `${stackName}.json`;
    await s3.send(new PutObjectCommand({ Bucket: TEMPLATE_BUCKET, Key: key, Body: body, ContentType: 'application/json' }));
    return { TemplateURL: `${endpoint.replace(/\/$/, '')}/${TEMPLATE_BUCKET}/${key}` };
  } finally {
    s3.destroy();
  }
}

/**
 * CreateStack, or UpdateStack when it exists (a second `npm run dev` keeps the queues and what is
 * in them). A stack left failed by an earlier attempt is deleted and created again.
 */
export async function deployLocalTemplate(cfn: CloudFormationClient, stackName: string, local: LocalTemplate, opts: DeployOptions = {}): Promise<Deployment> {
  const log = opts.log ?? (() => {});
  const body = JSON.stringify(local.template);
  const source = await templateSource(stackName, body, opts.endpoint);
  if ('TemplateURL' in source) log(`CloudFormation: the template is ${Buffer.byteLength(body)} bytes, over the inline limit; deploying it from ${source.TemplateURL}`);
  const deadline = Date.now() + (opts.timeoutMs ?? 180_000);
  let existing = await describeStack(cfn, stackName);
  if (existing && (TERMINAL_FAILED.has(existing.StackStatus ?? '') || existing.StackStatus === 'CREATE_IN_PROGRESS')) {
    log(`CloudFormation: stack ${stackName} is ${existing.StackStatus}; deleting it first`);
    await deleteLocalStack(cfn, stackName, { timeoutMs: Math.max(10_000, deadline - Date.now()) });
    existing = undefined;
  }
  const started = Date.now();
  if (!existing) {
    await cfn.send(new CreateStackCommand({ StackName: stackName, ...source, Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] }));
  } else {
    try {
      await cfn.send(new UpdateStackCommand({ StackName: stackName, ...source, Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] }));
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
