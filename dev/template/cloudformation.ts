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
import { deploymentOf, type Deployment } from './deployment.ts';
import type { LocalTemplate } from './local-template.ts';

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
