/** A deployed local stack read back: its outputs, and template values resolved against them. */
import type { Stack as CfnStack } from '@aws-sdk/client-cloudformation';
import { arnOutput, refOutput } from './local-template.ts';
import type { Json } from './shapes.ts';

export interface Deployment {
  stackName: string;
  /** Every stack output: the stack's own and the LocalRef / LocalArn ones localTemplate adds. */
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
